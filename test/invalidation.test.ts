// remove, set and clear across a cluster of child processes, including the
// races they exist to win: a load in flight when they are called.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Ring } from '../src/ring.js'
import { type Cluster, type RemoteError, startCluster, type TestNode } from './helpers/cluster.js'
import { rawRequest } from './helpers/raw.js'
import { waitFor } from './helpers/wait.js'

const SECRET = 'invalidation-secret'

async function loadsOf(nodes: TestNode[], key: string): Promise<number[]> {
  return Promise.all(nodes.map(async (n) => (await n.stats()).loads[key] ?? 0))
}

describe('remove, set and clear on a 3-node cluster', () => {
  let cluster: Cluster
  let ring: Ring
  /** roles picks a key whose owner, a non-owner asker and a third node are distinct. */
  let roles: (prefix: string) => { key: string; owner: TestNode; asker: TestNode; other: TestNode }

  before(async () => {
    cluster = await startCluster(3, () => ({ secret: SECRET, numbered: true, promote: true }))
    ring = new Ring(cluster.urls)
    roles = (prefix) => {
      for (let i = 0; ; i++) {
        const key = `${prefix}${i}`
        const owner = cluster.nodes.find((n) => n.url === ring.owner(key))!
        const [asker, other] = cluster.nodes.filter((n) => n !== owner) as [TestNode, TestNode]
        return { key, owner, asker, other }
      }
    }
  })
  after(async () => {
    await cluster?.stop()
  })

  test('remove drops the value on the owner and the hot copies; every node then loads anew, once', async () => {
    const { key, owner, asker, other } = roles('rm-')
    assert.equal(await asker.get(key), `value-of:${key}#1`)
    assert.equal(await other.get(key), `value-of:${key}#1`)
    assert.ok(((await asker.stats()).hot.items ?? 0) > 0, 'the asker kept a hot copy')
    await other.remove(key)
    const again = await Promise.all([asker.get(key), other.get(key), owner.get(key)])
    assert.deepEqual(again, [`value-of:${key}#2`, `value-of:${key}#2`, `value-of:${key}#2`])
    assert.deepEqual(
      await loadsOf(cluster.nodes, key),
      cluster.nodes.map((n) => (n === owner ? 2 : 0)),
    )
  })

  test('a load in flight when remove is called answers its caller but is not stored', async () => {
    const { key, owner, asker, other } = roles('race-rm-')
    await owner.hold(key)
    const inFlight = asker.get(key)
    await waitFor('the load to start on the owner', async () => (await loadsOf([owner], key))[0] === 1)
    await other.remove(key)
    await owner.release(key)
    assert.equal(await inFlight, `value-of:${key}#1`)
    for (const node of cluster.nodes) assert.equal(await node.get(key), `value-of:${key}#2`, node.url)
    assert.equal((await loadsOf([owner], key))[0], 2)
  })

  test('set stores the value on the owner and replaces every copy', async () => {
    const { key, owner, asker, other } = roles('set-')
    await asker.get(key)
    await other.set(key, 'manual')
    for (const node of [asker, other, owner]) assert.equal(await node.get(key), 'manual', node.url)
    assert.deepEqual(
      await loadsOf(cluster.nodes, key),
      cluster.nodes.map((n) => (n === owner ? 1 : 0)),
    )
  })

  test('a load that began before set and finishes after it does not overwrite the set value', async () => {
    const { key, owner, asker, other } = roles('race-set-')
    await owner.hold(key)
    const inFlight = asker.get(key)
    await waitFor('the load to start on the owner', async () => (await loadsOf([owner], key))[0] === 1)
    await other.set(key, 'newer')
    await owner.release(key)
    assert.equal(await inFlight, `value-of:${key}#1`)
    for (const node of cluster.nodes) assert.equal(await node.get(key), 'newer', node.url)
  })

  test('clear drops every entry on every node, and a load in flight during it is not stored', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `clr-${i}`)
    for (const node of cluster.nodes) for (const key of keys) await node.get(key)
    const { key: held, owner } = roles('clr-held-')
    await owner.hold(held)
    const inFlight = cluster.nodes.find((n) => n !== owner)!.get(held)
    await waitFor('the held load to start', async () => (await loadsOf([owner], held))[0] === 1)
    await cluster.nodes[0]!.clear()
    await owner.release(held)
    assert.equal(await inFlight, `value-of:${held}#1`)
    for (const node of cluster.nodes) {
      for (const key of keys) assert.match(await node.get(key), /#2$/, `${key} on ${node.url}`)
      assert.equal(await node.get(held), `value-of:${held}#2`)
    }
  })

  test('a DELETE without the secret is refused with 401 and removes nothing', async () => {
    const { key, owner } = roles('auth-')
    await owner.get(key)
    const port = Number(new URL(owner.url).port)
    const res = await rawRequest(port, `/_groupcache/test/${key}`, { method: 'DELETE' })
    assert.equal(res.status, 401)
    const clear = await rawRequest(port, '/_groupcache/test', { method: 'DELETE', headers: { 'x-groupcache-generation': '99' } })
    assert.equal(clear.status, 401)
    assert.equal(await owner.get(key), `value-of:${key}#1`)
    assert.equal((await loadsOf([owner], key))[0], 1)
  })
})

describe('remove with a peer down', () => {
  test('rejects naming the unreachable peer, after clearing the reachable ones', async () => {
    const cluster = await startCluster(3, () => ({ secret: SECRET, numbered: true, promote: true }))
    try {
      const ring = new Ring(cluster.urls)
      const [a, b, c] = cluster.nodes as [TestNode, TestNode, TestNode]
      let key = ''
      for (let i = 0; ; i++) {
        key = `down-${i}`
        if (ring.owner(key) === a.url) break
      }
      assert.equal(await b.get(key), `value-of:${key}#1`)
      await c.kill()
      const err = (await b.remove(key).then(
        () => assert.fail('remove resolved with a peer down'),
        (e: unknown) => e,
      )) as RemoteError
      assert.equal(err.code, 'ERR_GROUPCACHE_PEERS_UNREACHABLE')
      assert.deepEqual(err.peers, [c.url])
      assert.match(err.message, new RegExp(c.url.replaceAll('.', '\\.')))
      assert.equal(await b.get(key), `value-of:${key}#2`, 'the owner and the hot copy were cleared')
      assert.equal(await a.get(key), `value-of:${key}#2`)
    } finally {
      await cluster.stop()
    }
  })
})

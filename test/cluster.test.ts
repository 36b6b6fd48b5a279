import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Ring } from '../src/ring.js'
import { type Cluster, type RemoteError, startCluster, type TestNode } from './helpers/cluster.js'
import { waitFor } from './helpers/wait.js'

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0)

/**
 * together runs `gets` (each node asked `perNode` times for `key`) with the
 * owner's load of `key` held until every get has joined a load: each node
 * has taken its gets (its answer to a later stats call proves it), and the
 * owner has the peer request of each other node. So the gets overlap however
 * slowly they arrive, and the loader can run only once.
 */
async function together(cluster: Cluster, key: string, perNode: number): Promise<PromiseSettledResult<string>[]> {
  const owner = cluster.nodes.find((n) => n.url === new Ring(cluster.urls).owner(key)) as TestNode
  const served = (await owner.stats()).stats.serverRequests ?? 0
  await owner.hold(key)
  const gets = Promise.allSettled(cluster.nodes.flatMap((n) => Array.from({ length: perNode }, () => n.get(key))))
  try {
    await Promise.all(cluster.nodes.map((n) => n.stats()))
    const others = cluster.nodes.length - 1
    await waitFor(
      `the owner to have ${others} peer requests for ${key}`,
      async () => ((await owner.stats()).stats.serverRequests ?? 0) - served >= others,
    )
  } finally {
    await owner.release(key)
  }
  return gets
}

describe('a 3-node cluster of child processes', () => {
  let cluster: Cluster

  before(async () => {
    cluster = await startCluster(3, () => ({ loadDelayMs: 50 }))
  })
  after(async () => {
    await cluster?.stop()
  })

  test('300 concurrent gets over 30 keys load each key exactly once, on its owner', async () => {
    const keys = Array.from({ length: 30 }, (_, i) => `key-${i}`)
    const gets = Array.from({ length: 300 }, (_, i) => {
      const key = keys[i % keys.length] as string
      const node = cluster.nodes[i % 3]!
      return node.get(key).then((value) => ({ key, value }))
    })
    for (const { key, value } of await Promise.all(gets)) assert.equal(value, `value-of:${key}`)

    const ring = new Ring(cluster.urls)
    const all = await Promise.all(cluster.nodes.map((node) => node.stats()))
    let total = 0
    all.forEach((s, i) => {
      for (const [key, count] of Object.entries(s.loads)) {
        assert.equal(count, 1, `${key} loaded ${count} times on node ${i}`)
        assert.equal(ring.owner(key), cluster.urls[i], `${key} loaded on node ${i}, which does not own it`)
        total += count
      }
    })
    assert.equal(total, 30)
    assert.equal(sum(all.map((s) => s.stats.peerErrors ?? 0)), 0)
    assert.ok(sum(all.map((s) => s.stats.peerLoads ?? 0)) > 0, 'some gets went to their owner')
  })

  test("every node agrees with the test's ring on each key's owner", async () => {
    const ring = new Ring(cluster.urls)
    for (let i = 0; i < 20; i++) {
      const key = `agree-${i}`
      const owners = await Promise.all(cluster.nodes.map((n) => n.owner(key)))
      assert.deepEqual(owners, [ring.owner(key), ring.owner(key), ring.owner(key)])
    }
  })

  test('a loader error on the owner reaches callers on every node as a GroupcacheError, after one load', async () => {
    const key = 'fail:boom'
    const results = await together(cluster, key, 2)
    for (const r of results) {
      assert.equal(r.status, 'rejected')
      const err = (r as PromiseRejectedResult).reason as RemoteError
      assert.equal(err.code, 'ERR_GROUPCACHE_LOAD_FAILED')
      assert.match(err.message, /loader failed for fail:boom/)
    }
    const all = await Promise.all(cluster.nodes.map((n) => n.stats()))
    assert.equal(sum(all.map((s) => s.loads[key] ?? 0)), 1, 'the loader ran once in the whole cluster')
  })

  test('a not-found verdict on the owner reaches callers as ERR_GROUPCACHE_NOT_FOUND without a second load', async () => {
    const key = 'missing:thing'
    const results = await together(cluster, key, 1)
    for (const r of results) {
      assert.equal(r.status, 'rejected')
      assert.equal(((r as PromiseRejectedResult).reason as RemoteError).code, 'ERR_GROUPCACHE_NOT_FOUND')
    }
    const all = await Promise.all(cluster.nodes.map((n) => n.stats()))
    assert.equal(sum(all.map((s) => s.loads[key] ?? 0)), 1)
  })

  test('errors are not cached: the next get loads again', async () => {
    const key = 'fail:again'
    const node = cluster.nodes[0]!
    await assert.rejects(node.get(key))
    await assert.rejects(node.get(key))
    const all = await Promise.all(cluster.nodes.map((n) => n.stats()))
    assert.equal(sum(all.map((s) => s.loads[key] ?? 0)), 2)
  })
})

describe('a cluster that loses a node', () => {
  test("gets for a dead owner's keys still succeed by loading locally", async () => {
    const cluster = await startCluster(3)
    try {
      const ring = new Ring(cluster.urls)
      const dead = cluster.nodes[2]!
      const keys = Array.from({ length: 200 }, (_, i) => `k${i}`).filter((k) => ring.owner(k) === dead.url)
      assert.ok(keys.length > 10)
      await dead.kill()
      const survivor = cluster.nodes[0]!
      for (const key of keys.slice(0, 10)) assert.equal(await survivor.get(key), `value-of:${key}`)
      const s = await survivor.stats()
      assert.equal(s.stats.peerErrors, 10)
      assert.equal(s.stats.localLoads, 10)
      for (const key of keys.slice(0, 10)) assert.equal(s.loads[key], 1)
    } finally {
      await cluster.stop()
    }
  })
})

describe('two nodes whose peer lists disagree', () => {
  test('every get completes: a peer request is never forwarded again', async () => {
    // Different replica counts give rings that disagree on many keys, some
    // of them in both directions: A thinks B owns the key and B thinks A does.
    // A forwarded request would wait out the peer timeout and count a peer
    // error; the timeout is long so that only that, and no slow machine, does.
    const cluster = await startCluster(2, (i) => ({ replicas: i === 0 ? 50 : 3, peerTimeoutMs: 20_000 }))
    try {
      const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]]
      const ringA = new Ring(cluster.urls, 50)
      const ringB = new Ring(cluster.urls, 3)
      const keys = Array.from({ length: 300 }, (_, i) => `d${i}`)
      const crossed = keys.filter((k) => ringA.owner(k) === b.url && ringB.owner(k) === a.url)
      assert.ok(crossed.length >= 5, `only ${crossed.length} keys where the rings point at each other`)
      const values = await Promise.all(crossed.flatMap((k) => [a.get(k), b.get(k)]))
      assert.deepEqual(
        values,
        crossed.flatMap((k) => [`value-of:${k}`, `value-of:${k}`]),
      )
      const [sa, sb] = await Promise.all([a.stats(), b.stats()])
      assert.equal((sa.stats.peerErrors ?? 0) + (sb.stats.peerErrors ?? 0), 0, 'no get waited for a peer timeout')
    } finally {
      await cluster.stop()
    }
  })
})

// Keeping the cache through membership changes: a new owner peeks at a
// moved key's previous owner, a leaving node hands its entries over, and a
// rolling restart of every node reloads almost nothing.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { startCluster, startNode, type Cluster, type TestNode } from './helpers/cluster.js'
import { reservePorts, urlsFor } from './helpers/ports.js'
import { decodeHandoff, encodeHandoff, HandoffError, MAX_HANDOFF_BODY_BYTES } from '../src/handoff.js'

const KEYS = Array.from({ length: 3000 }, (_, i) => `key-${i}`)
// Peeks answer from memory in well under 50 ms; a busy CI machine may not,
// and a timed-out peek is a load: the tests count loads, so they give peeks
// room. The deadline itself is a tunable, not what is tested here.
const PEEK_TIMEOUT_MS = 5_000

/** loadsOf sums every node's loader runs for `keys`. */
async function loadsOf(nodes: readonly TestNode[], keys: readonly string[]): Promise<number> {
  let total = 0
  for (const node of nodes) {
    const { loads } = await node.stats()
    for (const key of keys) total += loads[key] ?? 0
  }
  return total
}

/** getAll gets `keys` on `node` in chunks (each IPC call has a deadline); resolves to the failures. */
async function getAll(node: TestNode, keys: readonly string[]): Promise<number> {
  let failed = 0
  for (let i = 0; i < keys.length; i += 250) failed += await node.getAll(keys.slice(i, i + 250))
  return failed
}

async function sumStat(nodes: readonly TestNode[], name: string): Promise<number> {
  let total = 0
  for (const node of nodes) total += (await node.stats()).stats[name] ?? 0
  return total
}

describe('encodeHandoff and decodeHandoff', () => {
  test('round-trip keys, values and expiries, values copied out of the body', () => {
    const entries = [
      { key: 'a', value: Buffer.from('one'), expire: 0 },
      { key: 'ключ 🔑', value: new Uint8Array(0), expire: 1_800_000_000_000 },
    ]
    const body = encodeHandoff(entries)
    const decoded = decodeHandoff(body, 4096)
    assert.deepEqual(
      decoded.map((e) => ({ key: e.key, value: Buffer.from(e.value).toString(), expire: e.expire })),
      [
        { key: 'a', value: 'one', expire: 0 },
        { key: 'ключ 🔑', value: '', expire: 1_800_000_000_000 },
      ],
    )
    body.fill(0)
    assert.equal(Buffer.from(decoded[0]!.value).toString(), 'one')
  })

  test('refuse truncated bodies, long keys, keys that are not UTF-8 and malformed values', () => {
    const body = encodeHandoff([{ key: 'abc', value: Buffer.from('xyz'), expire: 5 }])
    for (let cut = 1; cut < body.length; cut++) {
      assert.throws(() => decodeHandoff(body.subarray(0, cut), 4096), Error, `cut at ${cut}`)
    }
    assert.throws(() => decodeHandoff(body, 2), HandoffError)
    const badKey = Buffer.from([0, 0, 0, 1, 0xff, 0, 0, 0, 2, 0x0a, 0x00])
    assert.throws(() => decodeHandoff(badKey, 4096), HandoffError)
    const huge = Buffer.from([0xff, 0xff, 0xff, 0xff])
    assert.throws(() => decodeHandoff(huge, 4096), HandoffError)
    const badMsg = Buffer.from([0, 0, 0, 1, 0x61, 0, 0, 0, 1, 0x0f])
    assert.throws(() => decodeHandoff(badMsg, 4096))
    assert.ok(MAX_HANDOFF_BODY_BYTES >= 1024 * 1024)
  })
})

describe('peek on join (real processes)', () => {
  let cluster: Cluster | undefined
  let joined: TestNode | undefined
  after(async () => {
    await Promise.all([cluster?.stop(), joined?.stop()])
  })

  test('a 4th node joins 3 nodes holding 3,000 warm keys: the keys that moved to it are taken from their previous owners, not loaded', async () => {
    // No hot copies: every get of a moved key reaches its new owner.
    cluster = await startCluster(3, () => ({ peekTimeoutMs: PEEK_TIMEOUT_MS, promote: false }))
    const { nodes, urls } = cluster
    assert.equal(await getAll(nodes[0]!, KEYS), 0)
    const [port] = await reservePorts(1)
    const url = urlsFor([port!])[0]!
    const all = [...urls, url]
    joined = await startNode({ self: url, peers: all, port: port!, peekTimeoutMs: PEEK_TIMEOUT_MS, promote: false })
    await Promise.all(nodes.map((node) => node.setPeers(all)))
    const moved: string[] = []
    for (const key of KEYS) if ((await joined.owner(key)) === url) moved.push(key)
    assert.ok(moved.length > 300, `expected a quarter of the keys to move, got ${moved.length}`)
    const before = await loadsOf(nodes, moved)
    assert.equal(before, moved.length)
    const everyone = [...nodes, joined]
    // Gets arrive anywhere, as behind a load balancer.
    const failed = await Promise.all(everyone.map((node, i) => getAll(node, KEYS.filter((_, k) => k % 4 === i))))
    assert.deepEqual(failed, [0, 0, 0, 0])
    const reloaded = (await loadsOf(everyone, moved)) - before
    assert.ok(reloaded <= moved.length * 0.05, `${reloaded} of ${moved.length} moved keys were loaded again`)
    // A moved key asked of its previous owner is a hit there; the rest
    // reach the new owner, which takes them from the previous owner.
    const { peekHits } = (await joined.stats()).stats
    assert.ok(peekHits! >= moved.length / 2, `${peekHits} peek hits for ${moved.length} moved keys`)
  })
})

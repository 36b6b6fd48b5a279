// getMany, loadMany, batchWindowMs and notFoundTtlMs across real processes:
// three nodes in child processes on 127.0.0.1, each behind a counting proxy
// (its peers know it by the proxy's URL), so the test sees every peer
// request a node receives.
import assert from 'node:assert/strict'
import { after, before, describe, type TestContext, test } from 'node:test'
import { type Cluster, type NodeStats as NodeSnapshot, startCluster } from './helpers/cluster.js'
import { type CountingProxy, startCountingProxy } from './helpers/counting-proxy.js'
import type { NodeConfig } from './helpers/node-main.js'
import { reservePorts } from './helpers/ports.js'

/**
 * proxiedCluster starts `n` nodes that listen on ports of their own, with a
 * counting proxy on each node's peer URL in front of it.
 */
async function proxiedCluster(
  n: number,
  config: Partial<NodeConfig> = {},
): Promise<{ cluster: Cluster; proxies: CountingProxy[]; stop: () => Promise<void> }> {
  const inner = await reservePorts(n)
  const cluster = await startCluster(n, (i) => ({ ...config, port: inner[i] as number }))
  const proxies: CountingProxy[] = []
  try {
    for (let i = 0; i < n; i++) proxies.push(await startCountingProxy(Number(new URL(cluster.urls[i] as string).port), inner[i] as number))
  } catch (err) {
    await Promise.all([cluster.stop(), ...proxies.map((p) => p.close())])
    throw err
  }
  return { cluster, proxies, stop: () => Promise.all([cluster.stop(), ...proxies.map((p) => p.close())]).then(() => {}) }
}

/** loadsPerKey sums every node's load counts per key. */
async function loadsPerKey(cluster: Cluster): Promise<Map<string, number>> {
  const total = new Map<string, number>()
  for (const node of cluster.nodes) {
    for (const [key, n] of Object.entries((await node.stats()).loads)) total.set(key, (total.get(key) ?? 0) + n)
  }
  return total
}

const KEYS = Array.from({ length: 1000 }, (_, i) => `item-${i}`)

// These tests count every peer request of a cluster that has just started.
// For handoffMs after its start, a node peeks at its keys' previous owners
// (one batch of peeks per previous owner for the misses of one turn; see
// test/handoff.test.ts): requests between owners that these counts are not
// about, so peeks are off here.
const NO_PEEKS = { handoffMs: 0 }

/** since counts what each proxy received after `marks` (earlier counts). */
function since(proxies: CountingProxy[], marks: number[]): Array<{ all: number; posts: number; kinds: string }> {
  return proxies.map((p, i) => {
    const seen = p.requests.slice(marks[i])
    return { all: seen.length, posts: seen.filter((r) => r.startsWith('POST ')).length, kinds: seen.map((r) => r.split(' ')[0]).join('+') }
  })
}

/**
 * coldGetMany runs the acceptance check: a cold getMany of KEYS on node 0
 * sends each remote owner at most 2 requests (the protocol probe and one
 * batch) and loads each key exactly once, on its owner.
 */
async function coldGetMany(t: TestContext, cluster: Cluster, proxies: CountingProxy[]): Promise<NodeSnapshot[]> {
  const [asker] = cluster.nodes
  const marks = proxies.map((p) => p.requests.length)
  const found = await asker!.getMany(KEYS)
  assert.deepEqual(
    found,
    KEYS.map((key) => [key, `value-of:${key}`]),
  )

  const owners = await Promise.all(KEYS.map((key) => asker!.owner(key)))
  const perOwner = cluster.urls.map((url) => owners.filter((o) => o === url).length)
  const received = since(proxies, marks)
  t.diagnostic(`keys per owner ${perOwner.join(' / ')}; peer requests received ${received.map((r) => `${r.all} (${r.kinds})`).join(' / ')}`)
  assert.equal(received[0]!.all, 0, 'nobody asked the asker')
  for (let i = 1; i < 3; i++) {
    assert.ok(perOwner[i]! > 0, `node ${i} owns some keys`)
    assert.ok(received[i]!.all <= 2, `node ${i} got ${received[i]!.all} peer requests (${received[i]!.kinds})`)
    assert.equal(received[i]!.posts, 1, `node ${i} got one batch`)
  }
  const loads = await loadsPerKey(cluster)
  assert.equal(KEYS.filter((key) => loads.get(key) !== 1).length, 0, 'every key loaded exactly once')
  const stats = await Promise.all(cluster.nodes.map((node) => node.stats()))
  stats.forEach((s, i) => {
    assert.equal(
      KEYS.filter((key, k) => s.loads[key] !== undefined && owners[k] !== cluster.urls[i]).length,
      0,
      `node ${i} loaded only keys it owns`,
    )
    assert.equal(s.stats.peerErrors, 0)
  })
  return stats
}

describe('3 nodes with a single-key loader and batchWindowMs 5', () => {
  let env: Awaited<ReturnType<typeof proxiedCluster>>
  before(async () => {
    env = await proxiedCluster(3, { ...NO_PEEKS, batchWindowMs: 5 })
  })
  after(() => env?.stop())

  test('a cold getMany of 1,000 keys on one node: at most 2 peer requests per remote owner, each key loaded once cluster-wide', async (t) => {
    await coldGetMany(t, env.cluster, env.proxies)
    // Warm: answered from the asker's own keys and hot copies, or by one
    // more batch per owner, and nothing loads again.
    await env.cluster.nodes[0]!.getMany(KEYS)
    assert.equal([...(await loadsPerKey(env.cluster)).values()].filter((n) => n !== 1).length, 0)
  })

  test('300 concurrent single gets on one node share one batch per remote owner', async (t) => {
    const keys = Array.from({ length: 300 }, (_, i) => `single-${i}`)
    const marks = env.proxies.map((p) => p.requests.length)
    const got = await env.cluster.nodes[1]!.getEach(keys)
    assert.deepEqual(
      got,
      keys.map((key) => ({ value: `value-of:${key}` })),
    )
    const received = since(env.proxies, marks)
    t.diagnostic(`peer requests received: ${received.map((r) => r.kinds || '-').join(' / ')}`)
    assert.equal(received[1]!.all, 0)
    for (const i of [0, 2]) {
      assert.equal(received[i]!.posts, 1, `node ${i}: one batch`)
      assert.ok(received[i]!.all <= 2, `node ${i}: the batch and at most a protocol probe (${received[i]!.kinds})`)
    }
  })
})

describe('3 nodes with loadMany', () => {
  let env: Awaited<ReturnType<typeof proxiedCluster>>
  before(async () => {
    env = await proxiedCluster(3, { ...NO_PEEKS, loadMany: true, loadDelayMs: 20 })
  })
  after(() => env?.stop())

  test('a cold getMany of 1,000 keys on one node: at most 2 peer requests and 2 loader calls per owner, each key loaded once', async (t) => {
    const stats = await coldGetMany(t, env.cluster, env.proxies)
    t.diagnostic(`loader calls per node: ${stats.map((s) => s.calls).join(' / ')}`)
    for (const s of stats) assert.ok(s.calls >= 1 && s.calls <= 2, `${s.calls} loader calls`)
  })

  test('300 keys asked by all three nodes at once load once each, in at most 2 batches per owner', async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `shared-${i}`)
    const marks = env.proxies.map((p) => p.requests.length)
    const answers = await Promise.all(env.cluster.nodes.map((node) => node.getMany(keys)))
    for (const found of answers) assert.equal(found.length, 300)
    const stats = await Promise.all(env.cluster.nodes.map((node) => node.stats()))
    assert.deepEqual(
      stats.map((s) => s.stats.peerErrors),
      [0, 0, 0],
      'no fetch failed (a failed one loads the key a second time)',
    )
    const loads = await loadsPerKey(env.cluster)
    assert.equal(keys.filter((key) => loads.get(key) !== 1).length, 0)
    for (const r of since(env.proxies, marks)) assert.ok(r.posts <= 2, `${r.posts} batches`)
  })
})

describe('3 nodes with notFoundTtlMs', () => {
  test('a missing key, 600 gets from 3 nodes within notFoundTtlMs: 1 loader call, every get rejects ERR_GROUPCACHE_NOT_FOUND', async (t) => {
    const { cluster, proxies, stop } = await proxiedCluster(3, { notFoundTtlMs: 600_000 })
    try {
      const key = 'missing:user-404'
      const owner = await cluster.nodes[0]!.owner(key)
      // Ten waves of 20 concurrent gets on each node: the first wave shares
      // flights; the later ones find the owner's remembered verdict.
      const outcomes: Array<{ value: string } | { code: string | undefined }> = []
      for (let wave = 0; wave < 10; wave++) {
        const answers = await Promise.all(cluster.nodes.map((node) => node.getEach(Array.from({ length: 20 }, () => key))))
        outcomes.push(...answers.flat())
      }
      assert.equal(outcomes.length, 600)
      assert.deepEqual(
        outcomes.filter((o) => !('code' in o) || o.code !== 'ERR_GROUPCACHE_NOT_FOUND'),
        [],
      )
      const stats = await Promise.all(cluster.nodes.map((node) => node.stats()))
      assert.equal(
        stats.reduce((n, s) => n + s.calls, 0),
        1,
        'one loader call in the cluster',
      )
      assert.deepEqual(
        stats.map((s) => s.loads[key] ?? 0),
        cluster.urls.map((url) => (url === owner ? 1 : 0)),
      )
      const asked = proxies[cluster.urls.indexOf(owner)]!.count('GET')
      t.diagnostic(`the owner answered ${asked} peer GETs, all but the first from its remembered verdict`)
      assert.ok(asked >= 2 * 10, 'every wave of each non-owner asked the owner')
      for (const s of stats) assert.equal(s.stats.peerErrors, 0)
    } finally {
      await stop()
    }
  })
})

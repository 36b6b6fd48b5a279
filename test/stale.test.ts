// Stale-while-revalidate and stale-if-error (`staleMs`): on one node with an
// injected clock, on nodes in this process over real HTTP, and on a cluster
// of child processes.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  type Group,
  Groupcache,
  InvalidOptionError,
  type LoadContext,
  LoadError,
  LoadTimeoutError,
  NotFoundError,
  REFRESH_HEADER,
} from '../src/index.js'
import { Ring } from '../src/ring.js'
import { type Cluster, startCluster, type TestNode } from './helpers/cluster.js'
import { deferred, keyOwnedBy, startLocalNodes } from './helpers/local.js'
import type { HammerReport } from './helpers/node-main.js'
import { waitFor } from './helpers/wait.js'

const SELF = 'http://127.0.0.1:1'
const PENDING = Symbol('pending')

/**
 * settledSoon resolves to the promise's value if it settles within 5 s of
 * real time, else to PENDING: a get that waits on a held loader never
 * settles, so PENDING means it waited.
 */
async function settledSoon<T>(promise: Promise<T>): Promise<T | typeof PENDING> {
  let timer: NodeJS.Timeout | undefined
  const pending = new Promise<typeof PENDING>((resolve) => {
    timer = setTimeout(() => resolve(PENDING), 5_000)
  })
  try {
    return await Promise.race([promise, pending])
  } finally {
    clearTimeout(timer)
  }
}

/** isPending says whether a promise is still unsettled after a few turns of the event loop. */
async function isPending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false
  promise.then(
    () => (settled = true),
    () => (settled = true),
  )
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
  return !settled
}

/**
 * Source is a loader whose runs are counted and numbered (`v1`, `v2`, …);
 * `hold(n)` makes run n wait until released, `failing` makes runs throw.
 */
class Source {
  calls = 0
  failing: Error | undefined
  readonly #gates = new Map<number, ReturnType<typeof deferred<void>>>()

  hold(run: number): () => void {
    const gate = deferred<void>()
    this.#gates.set(run, gate)
    return () => gate.resolve()
  }

  /** releaseAll lets every held run go, so that nothing is left for close() to wait on. */
  releaseAll(): void {
    for (const gate of this.#gates.values()) gate.resolve()
  }

  readonly load = async (_key: string, _ctx?: LoadContext): Promise<string> => {
    const n = ++this.calls
    await this.#gates.get(n)?.promise
    if (this.failing !== undefined) throw this.failing
    return `v${n}`
  }
}

function oneNode(
  options: { ttlMs?: number; staleMs?: number; refreshRetryMs?: number; load?: (key: string, ctx: LoadContext) => Promise<string> } = {},
): { gc: Groupcache; g: Group<string>; source: Source; clock: { now: number } } {
  const clock = { now: 1_000_000 }
  const gc = new Groupcache({ self: SELF, peers: [SELF], now: () => clock.now })
  const source = new Source()
  const g = gc.newGroup<string>({
    name: 'g',
    maxBytes: 1 << 20,
    codec: 'string',
    ttlMs: options.ttlMs ?? 1_000,
    staleMs: options.staleMs ?? 10_000,
    ...(options.refreshRetryMs === undefined ? {} : { refreshRetryMs: options.refreshRetryMs }),
    load: options.load ?? source.load,
  })
  return { gc, g, source, clock }
}

describe('stale values on one node, with an injected clock', () => {
  test('a get past ttlMs answers the stale value at once while one refresh runs; the next get after it sees the new value', async () => {
    const { gc, g, source, clock } = oneNode()
    assert.equal(await g.get('k'), 'v1')
    clock.now += 1_000
    const release = source.hold(2)
    const answers = await settledSoon(Promise.all(Array.from({ length: 50 }, () => g.getWithSource('k'))))
    assert.notEqual(answers, PENDING, 'stale gets waited for the held refresh')
    assert.deepEqual(answers, Array(50).fill({ value: 'v1', source: 'stale' }))
    assert.equal(source.calls, 2, 'one refresh for 50 stale gets')
    assert.equal(g.stats.staleHits, 50)
    assert.equal(g.stats.refreshes, 1)
    release()
    await waitFor('the refresh', () => g.stats.localLoads === 2)
    assert.deepEqual(await g.getWithSource('k'), { value: 'v2', source: 'hit' })
    assert.equal(g.stats.refreshErrors, 0)
    assert.equal(g.stats.loads, 1, 'stale gets are hits, not loads')
    await gc.close()
  })

  test('past ttlMs + staleMs a get is a miss and waits for the load', async () => {
    const { gc, g, source, clock } = oneNode({ ttlMs: 1_000, staleMs: 2_000 })
    assert.equal(await g.get('k'), 'v1')
    clock.now += 2_999
    assert.deepEqual(await g.getWithSource('k'), { value: 'v1', source: 'stale' })
    const release = source.hold(3)
    // The refresh started at the stale get above finished (v2 stored with a
    // new TTL); move past that one's window too.
    await waitFor('the first refresh', () => g.stats.localLoads === 2)
    clock.now += 3_000
    const miss = g.getWithSource('k')
    assert.equal(await isPending(miss), true, 'a get past the stale window waits for the load')
    release()
    assert.deepEqual(await miss, { value: 'v3', source: 'load' })
    await gc.close()
  })

  test('stale-if-error: a failing refresh keeps the stale value and retries after refreshRetryMs, doubling up to 30 s', async () => {
    const { gc, g, source, clock } = oneNode({ ttlMs: 1_000, staleMs: Infinity, refreshRetryMs: 1_000 })
    assert.equal(await g.get('k'), 'v1')
    source.failing = new Error('database down')
    clock.now += 1_000
    assert.equal(await g.get('k'), 'v1')
    await waitFor('the first failed refresh', () => g.stats.refreshErrors === 1)
    assert.equal(source.calls, 2)
    let calls = 2
    for (const delay of [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]) {
      clock.now += delay - 1
      for (let i = 0; i < 20; i++) assert.equal(await g.get('k'), 'v1')
      assert.equal(source.calls, calls, `no loader call ${delay - 1} ms after a failure`)
      clock.now += 1
      assert.equal(await g.get('k'), 'v1')
      calls++
      assert.equal(source.calls, calls, `one loader call ${delay} ms after a failure`)
      await waitFor('the failed refresh', () => g.stats.refreshErrors === calls - 1)
    }
    source.failing = undefined
    clock.now += 30_000
    assert.equal(await g.get('k'), 'v1')
    await waitFor('the successful refresh', () => g.stats.localLoads === 2)
    assert.equal(await g.get('k'), `v${calls + 1}`)
    assert.equal(g.stats.localLoadErrs, calls - 1)
    await gc.close()
  })

  test('a refresh that outlives loadTimeoutMs is a failed refresh: the stale value is still served, and the refresh is tried again after refreshRetryMs', {
    timeout: 120_000,
  }, async () => {
    const clock = { now: 1_000_000 }
    const gc = new Groupcache({ self: SELF, peers: [SELF], now: () => clock.now })
    const signals: AbortSignal[] = []
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      ttlMs: 1_000,
      staleMs: Infinity,
      refreshRetryMs: 1_000,
      loadTimeoutMs: 50,
      load: (_key, ctx) => {
        signals.push(ctx.signal)
        // The first refresh hangs, as a query on a stuck connection would.
        return signals.length === 2 ? new Promise<string>(() => {}) : `v${signals.length}`
      },
    })
    assert.equal(await g.get('k'), 'v1')
    clock.now += 1_000
    assert.deepEqual(await g.getWithSource('k'), { value: 'v1', source: 'stale' })
    await waitFor('the refresh to be given up', () => g.stats.refreshErrors === 1)
    assert.equal(signals[1]?.aborted, true)
    assert.ok(signals[1]?.reason instanceof LoadTimeoutError)
    clock.now += 999
    assert.deepEqual(await g.getWithSource('k'), { value: 'v1', source: 'stale' })
    assert.equal(signals.length, 2, 'a refresh again before refreshRetryMs')
    clock.now += 1
    assert.deepEqual(await g.getWithSource('k'), { value: 'v1', source: 'stale' })
    await waitFor('the second refresh', () => g.stats.localLoads === 2)
    assert.deepEqual(await g.getWithSource('k'), { value: 'v3', source: 'hit' })
    assert.equal(g.stats.refreshErrors, 1)
    await gc.close()
  })

  test("past the stale window the loader's error reaches callers, as it does without staleMs", async () => {
    const { gc, g, source, clock } = oneNode({ ttlMs: 1_000, staleMs: 2_000 })
    assert.equal(await g.get('k'), 'v1')
    source.failing = new Error('database down')
    clock.now += 1_500
    assert.equal(await g.get('k'), 'v1')
    await waitFor('the failed refresh', () => g.stats.refreshErrors === 1)
    clock.now += 1_500
    await assert.rejects(g.get('k'), { code: 'ERR_GROUPCACHE_LOAD_FAILED', message: /database down/ })
    await gc.close()
  })

  test('a refresh whose loader says not found drops the stale value', async () => {
    const { gc, g, source, clock } = oneNode()
    assert.equal(await g.get('k'), 'v1')
    source.failing = new NotFoundError('deleted')
    clock.now += 1_000
    assert.equal(await g.get('k'), 'v1')
    await waitFor('the refresh', () => g.stats.localLoadErrs === 1)
    await assert.rejects(g.get('k'), NotFoundError)
    assert.equal(g.stats.refreshErrors, 0, 'not found is an answer, not a failure to fall back from')
    await gc.close()
  })

  test('a refresh whose value is not to be kept (ctx.cache = false) keeps the stale value and backs off', async () => {
    let calls = 0
    const { gc, g, clock } = oneNode({
      load: async (_key, ctx) => {
        calls++
        if (calls > 1) ctx.cache = false
        return `v${calls}`
      },
    })
    assert.equal(await g.get('k'), 'v1')
    clock.now += 1_000
    assert.equal(await g.get('k'), 'v1')
    await waitFor('the refresh', () => g.stats.refreshErrors === 1)
    assert.equal(await g.get('k'), 'v1')
    assert.equal(calls, 2, 'backing off')
    await gc.close()
  })

  for (const [what, change] of [
    ['remove', (g: Group<string>) => g.remove('k')],
    ['clear', (g: Group<string>) => g.clear()],
    ['set', (g: Group<string>) => g.set('k', 'set')],
  ] as const) {
    test(`once ${what} resolves the stale value is never served, and a refresh in flight is not kept`, async () => {
      const { gc, g, source, clock } = oneNode()
      assert.equal(await g.get('k'), 'v1')
      clock.now += 1_000
      const release = source.hold(2)
      assert.equal(await g.get('k'), 'v1')
      await change(g)
      const after = what === 'set' ? 'set' : 'v3'
      assert.equal(await g.get('k'), after)
      release()
      await waitFor('the refresh', () => source.calls >= 2 && g.stats.localLoads === (what === 'set' ? 2 : 3))
      assert.equal(await g.get('k'), after, 'the refresh begun before the change was not stored')
      await gc.close()
    })
  }

  test('a loader sets staleMs per key with ctx.staleMs; set takes staleMs too', async () => {
    const { gc, g, clock } = oneNode({
      staleMs: 0,
      load: async (key, ctx) => {
        if (key === 'long') ctx.staleMs = 5_000
        return `${key}@${clock.now}`
      },
    })
    const start = clock.now
    assert.equal(await g.get('long'), `long@${start}`)
    assert.equal(await g.get('short'), `short@${start}`)
    await g.set('set', 'x', { ttlMs: 1_000, staleMs: 5_000 })
    clock.now += 1_000
    assert.deepEqual(await g.getWithSource('long'), { value: `long@${start}`, source: 'stale' })
    assert.deepEqual(await g.getWithSource('set'), { value: 'x', source: 'stale' })
    assert.deepEqual(await g.getWithSource('short'), { value: `short@${clock.now}`, source: 'load' })
    await gc.close()
  })

  test('a stale window of Infinity serves the stale value until a refresh replaces it', async () => {
    const { gc, g, source, clock } = oneNode({ staleMs: Infinity })
    assert.equal(await g.get('k'), 'v1')
    source.failing = new Error('down')
    clock.now += 10 * 365 * 24 * 3600 * 1000
    assert.deepEqual(await g.getWithSource('k'), { value: 'v1', source: 'stale' })
    await gc.close()
  })

  test('bad staleMs and refreshRetryMs fail at construction; a bad ctx.staleMs fails the load', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const load = (): string => 'v'
    for (const staleMs of [-1, Number.NaN, '5' as unknown as number]) {
      assert.throws(() => gc.newGroup({ name: `s${String(staleMs)}`, maxBytes: 1, staleMs, load }), InvalidOptionError)
    }
    for (const refreshRetryMs of [0, -5, 1.5]) {
      assert.throws(() => gc.newGroup({ name: `r${refreshRetryMs}`, maxBytes: 1, refreshRetryMs, load }), InvalidOptionError)
    }
    const g = gc.newGroup({ name: 'bad-ctx', maxBytes: 1 << 20, ttlMs: 1_000, load: (_k, ctx) => ((ctx.staleMs = -1), 'v') })
    await assert.rejects(g.get('k'), LoadError)
    assert.equal(g.cacheStats('main').items, 0)
    await assert.rejects(g.set('k', 'v', { staleMs: -1 }), InvalidOptionError)
    await gc.close()
  })
})

describe('stale values in getMany', () => {
  test('getMany answers stale values at once and starts one refresh per key', async () => {
    const { gc, g, source, clock } = oneNode()
    assert.deepEqual(
      [...(await g.getMany(['a', 'b']))],
      [
        ['a', 'v1'],
        ['b', 'v2'],
      ],
    )
    clock.now += 1_000
    const releases = [source.hold(3), source.hold(4)]
    const got = await settledSoon(g.getMany(['a', 'b', 'a']))
    assert.notEqual(got, PENDING, 'getMany waited for the held refreshes')
    assert.deepEqual(
      [...(got as Map<string, string>)],
      [
        ['a', 'v1'],
        ['b', 'v2'],
      ],
    )
    assert.equal(await settledSoon(g.getMany(['a', 'b'])).then((m) => (m === PENDING ? m : m.size)), 2)
    assert.equal(source.calls, 4, 'one refresh per key')
    for (const release of releases) release()
    await waitFor('both refreshes', () => g.stats.localLoads === 4)
    assert.deepEqual([...(await g.getMany(['a', 'b']))].map(([, v]) => v).sort(), ['v3', 'v4'])
    await gc.close()
  })
})

describe('stale values across nodes in this process, over real HTTP', () => {
  /** cluster starts 3 nodes sharing an injected clock, each with a group whose loads are counted per node. */
  async function cluster(promote: boolean): Promise<{
    nodes: Groupcache[]
    urls: string[]
    groups: Array<Group<string>>
    sources: Source[]
    clock: { now: number }
    key: string
    closeAll: () => Promise<void>
  }> {
    const clock = { now: 1_000_000 }
    const { nodes, urls, closeAll } = await startLocalNodes(3, () => ({ now: () => clock.now }))
    const sources = nodes.map(() => new Source())
    const groups = nodes.map((gc, i) =>
      gc.newGroup<string>({
        name: 'g',
        maxBytes: 1 << 20,
        codec: 'string',
        promote,
        ttlMs: 1_000,
        staleMs: 10_000,
        load: sources[i]!.load,
      }),
    )
    return { nodes, urls, groups, sources, clock, key: keyOwnedBy(nodes[0]!, urls[0]!), closeAll }
  }

  test('one refresh for the cluster: non-owners serve their stale copies and ask the owner, which alone runs the loader', async () => {
    const { groups, sources, clock, key, closeAll } = await cluster(true)
    try {
      const [owner, a, b] = groups as [Group<string>, Group<string>, Group<string>]
      for (const g of groups) assert.equal(await g.get(key), 'v1')
      assert.equal(a.cacheStats('hot').items, 1)
      const asked = owner.stats.serverRequests
      clock.now += 1_000
      const release = sources[0]!.hold(2)
      for (let i = 0; i < 10; i++) {
        for (const g of groups) {
          const answer = await settledSoon(g.getWithSource(key))
          assert.deepEqual(answer, { value: 'v1', source: 'stale' })
        }
      }
      await waitFor("the non-owners' asks to reach the owner", () => owner.stats.serverRequests === asked + 2)
      assert.deepEqual(
        sources.map((s) => s.calls),
        [2, 0, 0],
        'the owner alone runs the loader, once',
      )
      assert.deepEqual(
        groups.map((g) => g.stats.refreshes),
        [1, 1, 1],
      )
      release()
      // Each non-owner's one ask was held by the owner until its refresh
      // ended, and brought the new value back.
      await waitFor('every node to see v2', async () => (await Promise.all(groups.map((g) => g.get(key)))).every((v) => v === 'v2'))
      assert.deepEqual(
        sources.map((s) => s.calls),
        [2, 0, 0],
      )
      assert.equal(owner.stats.serverRequests, asked + 2, 'one ask per non-owner')
      assert.deepEqual([a.stats.refreshErrors, b.stats.refreshErrors], [0, 0])
    } finally {
      for (const source of sources) source.releaseAll()
      await closeAll()
    }
  })

  test("a non-owner without a copy gets the owner's stale value at once, marked stale", async () => {
    const { groups, sources, clock, key, closeAll } = await cluster(false)
    try {
      const asker = groups[1]!
      assert.equal(await asker.get(key), 'v1')
      assert.equal(asker.cacheStats('hot').items, 0)
      clock.now += 1_000
      sources[0]!.hold(2)
      assert.deepEqual(await settledSoon(asker.getWithSource(key)), { value: 'v1', source: 'stale' })
      assert.deepEqual(await settledSoon(asker.getWithSource(key)), { value: 'v1', source: 'stale' })
      assert.deepEqual(
        sources.map((s) => s.calls),
        [2, 0, 0],
      )
      assert.equal(groups[0]!.stats.staleHits, 2)
    } finally {
      for (const source of sources) source.releaseAll()
      await closeAll()
    }
  })

  test('with the owner down a non-owner keeps serving its stale copy without loading; past the window it loads, as Go does', async () => {
    const { nodes, groups, sources, clock, key, closeAll } = await cluster(true)
    try {
      const asker = groups[1]!
      assert.equal(await asker.get(key), 'v1')
      await nodes[0]!.close({ graceMs: 0 })
      clock.now += 1_000
      for (let i = 0; i < 20; i++) assert.equal(await asker.get(key), 'v1')
      await waitFor('the failed ask', () => asker.stats.refreshErrors === 1)
      assert.equal(asker.stats.peerErrors, 1)
      assert.equal(sources[1]!.calls, 0, 'a non-owner never refreshes on its own')
      clock.now += 10_000
      assert.equal(await asker.get(key), 'v1', "the non-owner's own load")
      assert.equal(sources[1]!.calls, 1)
    } finally {
      for (const source of sources) source.releaseAll()
      await closeAll()
    }
  })

  test("a non-owner's getMany gets the owner's stale values in one batch, with their stale window, and the owner refreshes them", async () => {
    const { groups, sources, clock, key, nodes, urls, closeAll } = await cluster(true)
    try {
      const [owner, asker] = groups as [Group<string>, Group<string>]
      const other = keyOwnedBy(nodes[0]!, urls[0]!, 'batch-')
      // The owner loads both keys; the asker has no copy of either.
      assert.deepEqual([await owner.get(key), await owner.get(other)], ['v1', 'v2'])
      clock.now += 1_000
      sources[0]!.hold(3)
      sources[0]!.hold(4)
      const asked = owner.stats.serverRequests
      const got = await settledSoon(asker.getMany([key, other]))
      assert.notEqual(got, PENDING)
      assert.deepEqual(
        [...(got as Map<string, string>)],
        [
          [key, 'v1'],
          [other, 'v2'],
        ],
      )
      assert.equal(owner.stats.serverRequests - asked, 2, 'one batch of two keys')
      assert.equal(sources[0]!.calls, 4, 'the owner refreshes each key once')
      assert.deepEqual(
        sources.slice(1).map((s) => s.calls),
        [0, 0],
      )
      // The answers carried their stale window, so the asker kept its copies and serves them stale itself.
      assert.equal(asker.cacheStats('hot').items, 2, 'both stale answers were kept as hot copies')
      assert.deepEqual(await asker.getWithSource(key), { value: 'v1', source: 'stale' })
      assert.equal(asker.stats.staleHits, 1)
      await waitFor("the asker's ask to the owner", () => owner.stats.serverRequests - asked === 3)
    } finally {
      for (const source of sources) source.releaseAll()
      await closeAll()
    }
  })

  test('the refresh marker is read strictly: garbage or a fresh key gets an answer at once', async () => {
    const { nodes, groups, sources, clock, key, closeAll } = await cluster(false)
    try {
      assert.equal(await groups[0]!.get(key), 'v1')
      clock.now += 1_000
      sources[0]!.hold(2)
      assert.equal(await groups[0]!.get(key), 'v1')
      const url = `${nodes[0]!.self}${nodes[0]!.basePath}g/${encodeURIComponent(key)}`
      for (const value of ['garbage', '-5', '1e9', '', '0']) {
        const res = await settledSoon(fetch(url, { headers: { [REFRESH_HEADER]: value }, signal: AbortSignal.timeout(10_000) }))
        assert.notEqual(res, PENDING, `${REFRESH_HEADER}: ${value} was held`)
        assert.equal((res as Response).status, 200)
        await (res as Response).arrayBuffer()
      }
      const other = keyOwnedBy(nodes[0]!, nodes[0]!.self, 'fresh-')
      const res = await settledSoon(fetch(`${nodes[0]!.self}${nodes[0]!.basePath}g/${other}`, { headers: { [REFRESH_HEADER]: '50000' } }))
      assert.notEqual(res, PENDING)
      assert.equal((res as Response).status, 200)
      await (res as Response).arrayBuffer()
    } finally {
      for (const source of sources) source.releaseAll()
      await closeAll()
    }
  })
})

describe('stale values on a 3-node cluster of child processes (300 ms loader, ttlMs 1000, staleMs 20000)', () => {
  const LOAD_MS = 300
  const TTL_MS = 1_000
  let cluster: Cluster
  let ring: Ring
  /** roles names a key's owner and the other two nodes. */
  const roles = (key: string): { owner: TestNode; others: TestNode[] } => ({
    owner: cluster.nodes.find((n) => n.url === ring.owner(key))!,
    others: cluster.nodes.filter((n) => n.url !== ring.owner(key)),
  })
  /**
   * maxExpiries bounds how many times a value can have expired within
   * `elapsedMs` of its first load starting: it lives ttlMs after its load
   * ends, and a refresh (a load) takes at least LOAD_MS.
   */
  const maxExpiries = (elapsedMs: number): number => Math.floor((elapsedMs - TTL_MS) / (TTL_MS + LOAD_MS)) + 1
  const loadsOf = async (key: string): Promise<number[]> => Promise.all(cluster.nodes.map(async (n) => (await n.stats()).loads[key] ?? 0))

  before(async () => {
    cluster = await startCluster(3, () => ({ loadDelayMs: LOAD_MS, ttlMs: TTL_MS, staleMs: 20_000, numbered: true }))
    ring = new Ring(cluster.urls)
  })
  after(async () => {
    await cluster?.stop()
  })

  test('gets from every node every 10 ms for 4.5 s across expiries: one loader run per expiry, on the owner, and no error', async (t) => {
    const key = 'swr-steady'
    const { owner, others } = roles(key)
    const started = Date.now()
    assert.deepEqual(await Promise.all(cluster.nodes.map((n) => n.get(key))), Array(3).fill(`value-of:${key}#1`))
    const reports = await Promise.all(cluster.nodes.map((n) => n.hammer(key, 4_500, 10)))
    const elapsed = Date.now() - started
    const loads = await loadsOf(key)
    const ownerLoads = loads[cluster.nodes.indexOf(owner)]!
    const ownerStats = (await owner.stats()).stats
    t.diagnostic(`slowest get per node: ${reports.map((r) => `${r.maxMs.toFixed(1)} ms`).join(', ')} (not asserted: wall clock)`)
    t.diagnostic(`owner loads ${ownerLoads} in ${elapsed} ms; sources ${JSON.stringify(reports.map((r) => r.sources))}`)
    assert.deepEqual(
      reports.flatMap((r) => r.errors),
      [],
    )
    for (const other of others) assert.equal(loads[cluster.nodes.indexOf(other)], 0, 'a non-owner never runs the loader')
    assert.equal(ownerStats.refreshes, ownerLoads - 1, 'every load after the first was the one refresh of an expiry')
    assert.ok(ownerLoads >= 2, 'the value expired and was refreshed')
    assert.ok(ownerLoads - 1 <= maxExpiries(elapsed), `${ownerLoads - 1} refreshes, at most ${maxExpiries(elapsed)} expiries`)
    assert.ok(
      reports.some((r) => (r.sources.stale ?? 0) > 0),
      'stale values were served',
    )
    for (const r of reports) {
      for (const value of Object.keys(r.values)) {
        const n = Number(value.slice(`value-of:${key}#`.length))
        assert.ok(value.startsWith(`value-of:${key}#`) && n >= 1 && n <= ownerLoads, `${value} is one of the owner's loads`)
      }
    }
  })

  test('with the refresh held on the owner, gets on every node go on answering the stale value', async () => {
    const key = 'swr-held'
    const { owner } = roles(key)
    await Promise.all(cluster.nodes.map((n) => n.get(key)))
    await owner.hold(key)
    try {
      // The gets cross the expiry; were any to wait on the held refresh, the
      // hammer would not return until the release below.
      const reports = await Promise.all(cluster.nodes.map((n) => n.hammer(key, 2_000, 10)))
      assert.deepEqual(
        reports.flatMap((r) => r.errors),
        [],
      )
      for (const r of reports) assert.deepEqual(Object.keys(r.values), [`value-of:${key}#1`])
      assert.ok(
        reports.some((r) => (r.sources.stale ?? 0) > 0),
        'the value expired during the gets',
      )
      assert.deepEqual(
        await loadsOf(key),
        cluster.nodes.map((n) => (n === owner ? 2 : 0)),
      )
    } finally {
      await owner.release(key)
    }
  })

  test('with the loader failing for 4 s: no get fails, and the owner calls it about once a second at most', async (t) => {
    const key = 'swr-failing'
    const { owner, others } = roles(key)
    const started = Date.now()
    await Promise.all(cluster.nodes.map((n) => n.get(key)))
    await Promise.all(cluster.nodes.map((n) => n.failing(true)))
    let reports: HammerReport[] = []
    try {
      reports = await Promise.all(cluster.nodes.map((n) => n.hammer(key, 4_000, 10)))
    } finally {
      await Promise.all(cluster.nodes.map((n) => n.failing(false)))
    }
    const elapsed = Date.now() - started
    const loads = await loadsOf(key)
    const ownerLoads = loads[cluster.nodes.indexOf(owner)]!
    t.diagnostic(`owner loader calls ${ownerLoads} in ${elapsed} ms; gets ${reports.map((r) => r.gets).join(', ')}`)
    assert.deepEqual(
      reports.flatMap((r) => r.errors),
      [],
    )
    for (const r of reports) assert.deepEqual(Object.keys(r.values), [`value-of:${key}#1`])
    for (const other of others) assert.equal(loads[cluster.nodes.indexOf(other)], 0)
    // Attempts are at least a load plus refreshRetryMs (1 s) apart.
    assert.ok(ownerLoads - 1 <= maxExpiries(elapsed), `${ownerLoads - 1} loader calls in ${elapsed} ms`)
    assert.ok((await owner.stats()).stats.refreshErrors! >= 1)
    // The loader is back: a later attempt replaces the stale value.
    await waitFor('a refreshed value', async () => (await owner.get(key)) !== `value-of:${key}#1`, 15_000)
  })
})

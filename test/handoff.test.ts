// Keeping the cache through membership changes: a new owner peeks at a
// moved key's previous owner, a leaving node hands its entries over, and a
// rolling restart of every node reloads almost nothing. Neither may ever
// bring back a value older than a `remove`, `set` or `clear` allows.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, describe, test } from 'node:test'
import {
  CHANGE_GUARD_MS,
  decodeHandoff,
  encodeHandoff,
  type HandoffEntry,
  HandoffError,
  MAX_HANDOFF_BODY_BYTES,
  RecentChanges,
} from '../src/handoff.js'
import {
  GENERATION_HEADER,
  type Group,
  Groupcache,
  type GroupcacheOptions,
  type PeerRequest,
  type PeerTransport,
  type PeerValue,
  toPeerRequest,
  writePeerResponse,
} from '../src/index.js'
import { encodeGetResponse } from '../src/wire.js'
import { startCluster, startNode, type TestNode } from './helpers/cluster.js'
import { deferred, keyOwnedBy, startLocalNodes } from './helpers/local.js'
import { reservePorts, urlsFor } from './helpers/ports.js'
import { getAll, keysOf, loadsOf, PEEK_TIMEOUT_MS, roll, rollingConfig } from './helpers/rolling.js'
import { PEER_TIMEOUT_MS, waitFor } from './helpers/wait.js'

describe('encodeHandoff and decodeHandoff', () => {
  test('round-trip keys, values, expiries and stale windows, values copied out of the body', () => {
    const entries: HandoffEntry[] = [
      { key: 'a', value: Buffer.from('one'), expire: 0, staleUntil: 0 },
      { key: 'ключ 🔑', value: new Uint8Array(0), expire: 1_800_000_000_000, staleUntil: 1_800_000_060_000 },
    ]
    const body = encodeHandoff(entries)
    const decoded = decodeHandoff(body, 4096)
    assert.deepEqual(
      decoded.map((e) => ({ key: e.key, value: Buffer.from(e.value).toString(), expire: e.expire, staleUntil: e.staleUntil })),
      [
        { key: 'a', value: 'one', expire: 0, staleUntil: 0 },
        { key: 'ключ 🔑', value: '', expire: 1_800_000_000_000, staleUntil: 1_800_000_060_000 },
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

describe('RecentChanges', () => {
  test('guards a changed key for CHANGE_GUARD_MS, and no other key', () => {
    const changes = new RecentChanges()
    changes.note('a', 1_000)
    assert.equal(changes.has('a', 1_000), true)
    assert.equal(changes.has('a', 1_000 + CHANGE_GUARD_MS - 1), true)
    assert.equal(changes.has('a', 1_000 + CHANGE_GUARD_MS), false)
    assert.equal(changes.has('b', 1_000), false)
    changes.note('a', 2_000)
    assert.equal(changes.has('a', 1_000 + CHANGE_GUARD_MS), true, 'a later change renews the guard')
  })

  test('past its byte budget it guards every key rather than forget one', () => {
    const changes = new RecentChanges(1_000, 10 * (64 + 3))
    for (let i = 0; i < 10; i++) changes.note(`k${i.toString().padStart(2, '0')}`, 0)
    assert.equal(changes.has('other', 0), false)
    changes.note('k10', 0)
    assert.equal(changes.has('other', 999), true)
    assert.equal(changes.has('k00', 999), true)
    assert.equal(changes.has('other', 1_000), false)
  })
})

const SECRET = 'handoff-test-secret'
const AUTH = { authorization: `Bearer ${SECRET}` }

/**
 * Pair is two nodes in this process, `a` and `b`, over real HTTP, with a
 * shared loader whose values are numbered (`key#n`, n counting every run of
 * either node), so that a test can tell an old value from a new one. `a`
 * answers through a server of the test's own, which notes each request.
 */
interface Pair {
  a: Groupcache
  b: Groupcache
  ga: Group<string>
  gb: Group<string>
  urls: string[]
  loads: string[]
  /** calls are the key lists of each loadMany call (with `loadMany`). */
  calls: string[][]
  /** toA are the requests `a` got, as `METHOD path`. */
  toA: string[]
  /** moved are keys `a` owned alone and holds, which `b` owns once it joined. */
  moved: string[]
  closeAll(): Promise<void>
}

/** countingGroups makes group 'g' on every node, loading `v:{key}` and noting each load in `loads`. */
function countingGroups(nodes: Groupcache[], loads: string[]): Array<Group<string>> {
  return nodes.map((gc) =>
    gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', promote: false, load: (key) => (loads.push(key), `v:${key}`) }),
  )
}

/**
 * pair starts `a` alone (it loads `count` keys), then `b` joins: both take
 * the two-node list, so `b` owns some of `a`'s keys and, within
 * `handoffMs`, peeks at `a` for them.
 */
async function pair(
  count: number,
  options: Partial<GroupcacheOptions> = {},
  group: { loadMany?: boolean; ttlMs?: number; staleMs?: number } = {},
): Promise<Pair> {
  const loads: string[] = []
  const calls: string[][] = []
  const toA: string[] = []
  let runs = 0
  const ports = await reservePorts(2)
  const urls = urlsFor(ports)
  const [a, b] = urls.map(
    (self) =>
      new Groupcache({ self, peers: urls, secret: SECRET, peekTimeoutMs: PEEK_TIMEOUT_MS, peerTimeoutMs: PEER_TIMEOUT_MS, ...options }),
  ) as [Groupcache, Groupcache]
  const server = createServer((req, res) => {
    toA.push(`${req.method} ${req.url}`)
    void a.handler(toPeerRequest(req, res)).then((answer) => writePeerResponse(res, answer))
  })
  const closeAll = async (): Promise<void> => {
    await Promise.all([a.close(), b.close()])
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  await new Promise<void>((resolve) => server.listen(ports[0], '127.0.0.1', resolve))
  await b.listen({ port: ports[1]!, host: '127.0.0.1' })
  const value = (key: string): string => {
    loads.push(key)
    return `${key}#${++runs}`
  }
  const [ga, gb] = [a, b].map((gc) =>
    gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      promote: false,
      ttlMs: group.ttlMs,
      staleMs: group.staleMs,
      ...(group.loadMany === true
        ? {
            loadMany: (keys: readonly string[]) => {
              calls.push([...keys])
              return new Map(keys.map((key) => [key, value(key)]))
            },
          }
        : { load: value }),
    }),
  ) as [Group<string>, Group<string>]
  a.setPeers([urls[0]!])
  const moved: string[] = []
  for (let i = 0; moved.length < count; i++) {
    const key = `key-${i}`
    if (b.ownerOf(key) === urls[1]) moved.push(key)
  }
  for (const key of moved) await ga.get(key)
  a.setPeers(urls)
  loads.length = 0
  calls.length = 0
  return { a, b, ga, gb, urls, loads, calls, toA, moved, closeAll }
}

describe('peek on join (in process)', () => {
  test("a new owner takes a moved key from its previous owner's cache instead of loading it", async () => {
    const { gb, loads, moved, closeAll } = await pair(5)
    try {
      for (const key of moved) assert.match(await gb.get(key), /#\d+$/)
      assert.deepEqual(loads, [])
      assert.equal(gb.stats.peekHits, 5)
      assert.equal(gb.cacheStats('main').items, 5, 'kept as if loaded here')
    } finally {
      await closeAll()
    }
  })

  test('with handoffMs: 0 a new owner never peeks', async () => {
    const { gb, loads, moved, closeAll } = await pair(5, { handoffMs: 0 })
    try {
      for (const key of moved) await gb.get(key)
      assert.deepEqual(loads, moved)
      assert.equal(gb.stats.peekHits + gb.stats.peekMisses, 0)
    } finally {
      await closeAll()
    }
  })

  test('a getMany peeks at the previous owner in one batch, and its misses reach loadMany in one call', async () => {
    const p = await pair(10, {}, { loadMany: true })
    const calls = p.calls
    try {
      // The previous owner forgets half of them (a remove that reached only it).
      for (const key of p.moved.slice(0, 5)) await p.a.handler({ method: 'DELETE', url: `/_groupcache/g/${key}`, headers: AUTH })
      p.toA.length = 0
      const got = await p.gb.getMany(p.moved)
      assert.equal(got.size, 10)
      assert.deepEqual(p.toA, ['GET /_groupcache/', 'POST /_groupcache/g'], 'the marker probe, then one batch of peeks')
      assert.deepEqual(calls, [p.moved.slice(0, 5)])
      assert.equal(p.gb.stats.peekHits, 5)
      assert.equal(p.gb.stats.peekMisses, 5)
    } finally {
      await p.closeAll()
    }
  })

  test('a refresh never peeks: the owner of a stale key runs its loader even though the previous owner holds a fresh copy', async () => {
    let now = 1_000_000
    const p = await pair(1, { now: () => now }, { ttlMs: 1_000, staleMs: 60_000 })
    try {
      const [key] = p.moved as [string]
      await p.gb.get(key) // peeked: b holds a's copy, which expires at 1_001_000
      assert.deepEqual(p.loads, [])
      // a gets a newer value (say, a set that reached only it); b's copy goes stale.
      now += 500
      const put: PeerRequest = {
        method: 'PUT',
        url: `/_groupcache/g/${key}`,
        headers: AUTH,
        readBody: async () => encodeGetResponse({ value: Buffer.from('newer-on-a'), expire: now + 1_000 }),
      }
      assert.equal((await p.a.handler(put)).status, 204)
      now += 600
      const stale = await p.gb.getWithSource(key)
      assert.equal(stale.source, 'stale')
      await waitFor('the refresh', async () => (await p.gb.getWithSource(key)).source === 'hit')
      assert.deepEqual(p.loads, [key], 'the refresh ran the loader on the owner')
      assert.equal(await p.gb.get(key), `${key}#2`)
      assert.equal(p.gb.stats.peekHits, 1, 'only the first miss peeked')
    } finally {
      await p.closeAll()
    }
  })
})

describe('hand-off on close (in process)', () => {
  test("close() hands the main cache to each key's next owner, which then serves it without loading; handoff: false does not", async () => {
    for (const handoff of [true, false]) {
      const loads: string[] = []
      const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ secret: SECRET, handoffMs: 0 }))
      try {
        const groups = countingGroups(nodes, loads)
        const keys = Array.from({ length: 20 }, (_, i) => keyOwnedBy(nodes[0]!, urls[0]!, `k${i}-`))
        for (const key of keys) await groups[1]!.get(key)
        assert.equal(loads.length, 20)
        await nodes[0]!.close({ handoff })
        nodes[1]!.setPeers([urls[1]!])
        for (const key of keys) assert.equal(await groups[1]!.get(key), `v:${key}`)
        assert.equal(loads.length, handoff ? 20 : 40)
        assert.equal(groups[0]!.stats.handoffsSent, handoff ? 20 : 0)
        assert.equal(groups[1]!.stats.handoffsReceived, handoff ? 20 : 0)
      } finally {
        await closeAll()
      }
    }
  })

  test('a node that still lists an owner that closed takes its keys from the node they were handed to, not from its loader', async () => {
    const loads: string[] = []
    const { nodes, urls, closeAll } = await startLocalNodes(3, () => ({ secret: SECRET, peekTimeoutMs: PEEK_TIMEOUT_MS }))
    try {
      const groups = countingGroups(nodes, loads)
      const a = nodes[0]!
      // Keys a owns, which go to b once a is gone.
      const rest = new Groupcache({ self: urls[1]!, peers: [urls[1]!, urls[2]!] })
      const keys: string[] = []
      for (let i = 0; keys.length < 5; i++) {
        const key = `key-${i}`
        if (a.ownerOf(key) === urls[0] && rest.ownerOf(key) === urls[1]) keys.push(key)
      }
      await rest.close()
      for (const key of keys) assert.equal(await groups[0]!.get(key), `v:${key}`)
      assert.equal(loads.length, 5)
      await a.close()
      assert.equal(groups[1]!.stats.handoffsReceived, 5)
      // c has not heard that a left (DNS has not caught up): its gets find a
      // gone, and take the keys from b, which a handed them to.
      for (const key of keys) assert.equal(await groups[2]!.get(key), `v:${key}`)
      assert.equal(loads.length, 5, 'no key loaded again')
      assert.equal(groups[2]!.stats.peerErrors, 5)
      assert.equal(groups[2]!.stats.peekHits, 5)
    } finally {
      await closeAll()
    }
  })

  test('handoffBytes bounds the hand-off, most recently used entries first', async () => {
    const loads: string[] = []
    const { nodes, urls, closeAll } = await startLocalNodes(2, (i) => ({
      secret: SECRET,
      handoffMs: 0,
      ...(i === 0 ? { handoffBytes: 300 } : {}),
    }))
    try {
      const groups = countingGroups(nodes, loads)
      const keys = Array.from({ length: 10 }, (_, i) => keyOwnedBy(nodes[0]!, urls[0]!, `k${i}-`))
      for (const key of keys) await groups[0]!.get(key)
      await nodes[0]!.close()
      const sent = groups[0]!.stats.handoffsSent
      assert.ok(sent > 0 && sent < 10, `sent ${sent}`)
      nodes[1]!.setPeers([urls[1]!])
      loads.length = 0
      for (const key of keys) await groups[1]!.get(key)
      assert.deepEqual(loads, keys.slice(0, 10 - sent), 'the least recently used were left behind')
    } finally {
      await closeAll()
    }
  })

  test('without a secret, close() hands nothing over and says so once; dangerouslyAllowUnauthenticatedChanges lets it through', async () => {
    const warnings: Array<{ code: string | undefined; message: string }> = []
    const onWarning = (warning: Error & { code?: string }): void => {
      warnings.push({ code: warning.code, message: warning.message })
    }
    process.on('warning', onWarning)
    try {
      for (const dangerous of [false, true]) {
        const loads: string[] = []
        const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({
          handoffMs: 0,
          dangerouslyAllowUnauthenticatedChanges: dangerous,
        }))
        try {
          const groups = countingGroups(nodes, loads)
          const keys = Array.from({ length: 5 }, (_, i) => keyOwnedBy(nodes[0]!, urls[0]!, `k${i}-`))
          for (const key of keys) await groups[0]!.get(key)
          await nodes[0]!.close()
          await nodes[0]!.close()
          assert.equal(groups[0]!.stats.handoffsSent, dangerous ? 5 : 0)
          assert.equal(groups[1]!.stats.handoffsReceived, dangerous ? 5 : 0)
        } finally {
          await closeAll()
        }
        // The warning is emitted on the next tick.
        await new Promise((resolve) => setImmediate(resolve))
        const said = warnings.filter((w) => w.code === 'GROUPCACHE_NO_HANDOFF')
        assert.equal(said.length, 1, 'said once, by the node without a secret that held entries')
        assert.match(said[0]!.message, /options\.secret/)
      }
    } finally {
      process.off('warning', onWarning)
    }
  })
})

describe('remove, set and clear against peeks and hand-offs', () => {
  const drop = (gc: Groupcache, key: string): Promise<unknown> =>
    gc.handler({ method: 'DELETE', url: `/_groupcache/g/${key}`, headers: AUTH })

  test('a key removed on its new owner before the remove reached its previous owner is loaded, not peeked back', async () => {
    const { a, b, gb, loads, moved, closeAll } = await pair(3)
    try {
      const [key] = moved as [string]
      // remove() reaches every node at once; here the new owner hears it first.
      await drop(b, key)
      assert.equal(await gb.get(key), `${key}#4`, 'a fresh load, not the copy the previous owner still holds')
      assert.deepEqual(loads, [key])
      await drop(a, key)
      // The other keys are still taken from the previous owner.
      for (const other of moved.slice(1)) assert.match(await gb.get(other), /#[23]$/)
      assert.deepEqual(loads, [key])
    } finally {
      await closeAll()
    }
  })

  test('a set that reached the new owner first is not undone by the previous owner’s copy', async () => {
    const { b, gb, loads, moved, closeAll } = await pair(1)
    try {
      const [key] = moved as [string]
      const put: PeerRequest = {
        method: 'PUT',
        url: `/_groupcache/g/${key}`,
        headers: AUTH,
        readBody: async () => encodeGetResponse({ value: Buffer.from('set-value'), expire: 0 }),
      }
      assert.equal((await b.handler(put)).status, 204)
      assert.equal(await gb.get(key), 'set-value')
      // Even once the set value is gone here (evicted, say), the old copy is not taken.
      await drop(b, key)
      assert.equal(await gb.get(key), `${key}#2`)
      assert.deepEqual(loads, [key])
    } finally {
      await closeAll()
    }
  })

  test('a hand-off that arrives after a remove of one of its keys does not bring the key back', async () => {
    const { a, b, gb, urls, loads, moved, closeAll } = await pair(3, { handoffMs: 0 })
    try {
      const [key, ...others] = moved as [string, string, string]
      // The hand-off snapshot holds the key; the remove reached the receiver first.
      await drop(b, key)
      await a.close()
      b.setPeers([urls[1]!])
      assert.equal(gb.stats.handoffsReceived, 2)
      assert.equal(await gb.get(key), `${key}#4`)
      for (const other of others) assert.match(await gb.get(other), /#[23]$/)
      assert.deepEqual(loads, [key])
    } finally {
      await closeAll()
    }
  })

  test('a remove while a peek is in flight: the peeked copy is dropped, and neither it nor its key is kept', async () => {
    const held = deferred<PeerValue | undefined>()
    const asked: string[] = []
    const transport: PeerTransport = {
      fetch: () => Promise.reject(new Error('no fetches here')),
      peek: (_peer, _group, key) => {
        asked.push(key)
        return asked.length === 1 ? held.promise : Promise.resolve({ value: Buffer.from('old'), expire: 0, generation: 0 })
      },
      remove: () => Promise.resolve(),
    }
    const self = 'http://127.0.0.1:1'
    const other = 'http://127.0.0.1:2'
    const gc = new Groupcache({ self, peers: [self, other], secret: SECRET, transport })
    const loads: string[] = []
    const group = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => (loads.push(key), 'new') })
    try {
      const key = keyOwnedBy(gc, self)
      const first = group.get(key)
      while (asked.length === 0) await new Promise((resolve) => setImmediate(resolve))
      await group.remove(key)
      held.resolve({ value: Buffer.from('old'), expire: 0, generation: 0 })
      assert.equal(await first, 'new', 'the copy may predate the remove: the get in flight loads instead')
      assert.equal(await group.get(key), 'new')
      assert.deepEqual(asked, [key], 'no second peek: the key was removed here lately')
      // The first load belonged to a flight the remove forgot: answered, not kept.
      assert.deepEqual(loads, [key, key])
    } finally {
      await gc.close()
    }
  })

  test('a peek brings a previous owner that missed a clear up to date, so the key loads afresh', async () => {
    const { b, ga, gb, moved, closeAll } = await pair(2)
    try {
      const [key] = moved as [string]
      // The new owner cleared; the previous owner did not hear of it.
      const generation = Date.now()
      const clear: PeerRequest = { method: 'DELETE', url: '/_groupcache/g', headers: { ...AUTH, [GENERATION_HEADER]: String(generation) } }
      assert.equal((await b.handler(clear)).status, 204)
      assert.equal(ga.generation, 0)
      assert.equal(await gb.get(key), `${key}#3`)
      assert.equal(ga.generation, generation, 'the peek carried the new generation')
      assert.equal(ga.cacheStats('main').items, 0, 'and the previous owner dropped what it held')
      assert.equal(gb.stats.peekMisses, 1)
    } finally {
      await closeAll()
    }
  })

  test('a peeked copy older than the generation here is a miss', async () => {
    const transport: PeerTransport = {
      fetch: () => Promise.reject(new Error('no fetches here')),
      peek: () => Promise.resolve({ value: Buffer.from('before the clear'), expire: 0, generation: 1 }),
      clear: () => Promise.resolve(),
    }
    const self = 'http://127.0.0.1:1'
    const gc = new Groupcache({ self, peers: [self, 'http://127.0.0.1:2'], secret: SECRET, transport })
    const group = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: () => 'after the clear' })
    try {
      await group.clear()
      assert.equal(await group.get(keyOwnedBy(gc, self)), 'after the clear')
      assert.deepEqual([group.stats.peekHits, group.stats.peekMisses], [0, 1])
    } finally {
      await gc.close()
    }
  })
})

// The acceptance tests of issue 16, with real processes, as one scenario
// on one cluster (each test starts where the one before left it, which
// saves starting processes): a 4th node joins 3, one of the 4 leaves, and
// the 3 left restart one by one under steady gets. ACCEPTANCE_KEYS keeps it
// quick while the ratios still mean something (a quarter to a third of the
// keys move at each change, well over a hundred); without peek and hand-off
// each step reloads about all of them. The full size, 3,000 keys with and
// without, is the soak row (test/soak/rolling.ts).
const ACCEPTANCE_KEYS = keysOf(600)

// The keys that move at each step are whichever the ring gives the node that
// joins or leaves: with random ports about a quarter, but a joining node can
// get as few as one in eight (about once in 75 runs), so a precondition on
// that share is a coin toss. The steps below need only enough keys for their
// ratios to mean something (MIN_MOVED; fewer is about once in 4,000 runs),
// and the node that leaves is the one of the first three that owns the most.
const MIN_MOVED = 40

describe('membership changes with real processes: join, leave, rolling restart', () => {
  // The peek window is a tunable whose default (60 s) a step of this test can
  // outlast on a machine this busy; the test is of what happens inside it.
  const config = { ...rollingConfig(true, PEEK_TIMEOUT_MS), handoffMs: 600_000 }
  const keys = ACCEPTANCE_KEYS
  let nodes: TestNode[] = []
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()))
  })

  test('a 4th node joins 3 nodes holding warm keys: at most 5 % of the keys that moved to it are loaded again', async () => {
    // No hot copies (see rollingConfig): every get of a moved key reaches its new owner.
    const cluster = await startCluster(3, () => config)
    nodes = [...cluster.nodes]
    assert.equal(await getAll(nodes[0]!, keys), 0)
    const [port] = await reservePorts(1)
    const url = urlsFor([port!])[0]!
    const all = [...cluster.urls, url]
    const joined = await startNode({ ...config, self: url, peers: all, port: port! })
    const old = [...nodes]
    nodes.push(joined)
    await Promise.all(old.map((node) => node.setPeers(all)))
    const moved: string[] = []
    for (const key of keys) if ((await joined.owner(key)) === url) moved.push(key)
    assert.ok(moved.length >= MIN_MOVED, `expected about a quarter of the keys to move, got ${moved.length}`)
    const before = await loadsOf(old, moved)
    assert.equal(before, moved.length)
    // Gets arrive anywhere, as behind a load balancer.
    const failed = await Promise.all(
      nodes.map((node, i) =>
        getAll(
          node,
          keys.filter((_, k) => k % 4 === i),
        ),
      ),
    )
    assert.deepEqual(failed, [0, 0, 0, 0])
    const reloaded = (await loadsOf(nodes, moved)) - before
    assert.ok(reloaded <= moved.length * 0.05, `${reloaded} of ${moved.length} moved keys were loaded again`)
    // A moved key asked of its previous owner is a hit there; the rest
    // reach the new owner, which takes them from the previous owner.
    const { peekHits } = (await joined.stats()).stats
    assert.ok(peekHits! >= moved.length / 2, `${peekHits} peek hits for ${moved.length} moved keys`)
  })

  test('one of the 4 closes and the others drop it: at most 5 % of its keys are loaded again', async () => {
    assert.equal(nodes.length, 4, 'the cluster the test before left')
    const owned = new Map<string, string[]>(nodes.map((node) => [node.url, []]))
    for (const key of keys) owned.get(await nodes[0]!.owner(key))?.push(key)
    // Of the first three, the node that owns the most keys leaves. Not the
    // one that joined: its keys' heirs are their previous owners, which still
    // hold them, so there would be nothing to hand over.
    const leaving = nodes.slice(0, 3).reduce((a, b) => (owned.get(b.url)!.length > owned.get(a.url)!.length ? b : a))
    const stayers = nodes.filter((node) => node !== leaving)
    const its = owned.get(leaving.url)!
    assert.ok(its.length >= MIN_MOVED, `the leaving node owns ${its.length} keys`)
    const before = await loadsOf(stayers, its)
    const received = async (): Promise<number> => {
      let n = 0
      for (const node of stayers) n += (await node.stats()).stats.handoffsReceived!
      return n
    }
    const receivedBefore = await received()
    await leaving.close()
    nodes = stayers
    await Promise.all(stayers.map((node) => node.setPeers(stayers.map((n) => n.url))))
    const failed = await Promise.all(
      stayers.map((node, i) =>
        getAll(
          node,
          keys.filter((_, k) => k % 3 === i),
        ),
      ),
    )
    assert.deepEqual(failed, [0, 0, 0])
    const reloaded = (await loadsOf(stayers, its)) - before
    assert.ok(reloaded <= its.length * 0.05, `${reloaded} of the leaving node's ${its.length} keys were loaded again`)
    const handed = (await received()) - receivedBefore
    assert.ok(handed >= its.length * 0.95, `${handed} of ${its.length} entries were handed over`)
  })

  test('restarting the 3 nodes one at a time under steady gets loads at most 10 % of the keys and fails no get', async () => {
    assert.equal(nodes.length, 3, 'the cluster the test before left')
    const { loads, failed, errors } = await roll(nodes, keys, config, true)
    assert.deepEqual(errors, [])
    assert.equal(failed, 0)
    assert.ok(loads <= keys.length * 0.1, `${loads} loads for ${keys.length} keys`)
  })
})

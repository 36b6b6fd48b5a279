// Memory scenarios, each run in a child process of its own so that its
// heap starts clean: `node --expose-gc --import tsx
// test/hardening/memory-scenarios.ts <scenario> <json options>` prints one
// JSON line with what the scenario's caches count and what the process
// holds, both after forced collections. memory.test.ts runs them at a size
// the suite can afford; bench B10 runs them at full size. They use the built
// package (dist/), as users run it: `npm run build` first.
import { LRUCache } from 'lru-cache'
import { type Captured, RouteCaches } from '../../dist/adapters/route-cache.js'
import { type CodecName, type Group, Groupcache } from '../../dist/src/index.js'
import { Prng } from '../helpers/prng.js'

declare const gc: () => void

/** Memory is heap in use plus ArrayBuffer memory: what a cache can grow. */
export interface Memory {
  heapUsed: number
  arrayBuffers: number
}

/** Result is one scenario's outcome, as printed. */
export interface Result {
  scenario: string
  /** counted is what the caches report as `bytes`, main + hot, at the end. */
  counted: number
  items: number
  evictions: number
  /** growth is the settled memory at the end minus the settled memory at the start. */
  growth: Memory
  ops: number
  seconds: number
}

/**
 * settled forces full collections until memory stops falling, and returns
 * the lowest reading of three rounds: what is still reachable, with as
 * little of the collector's timing in it as a process can manage.
 */
async function settled(): Promise<Memory> {
  let best: Memory | undefined
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise((resolve) => setTimeout(resolve, Number(process.env.SETTLE_MS ?? 0)))
    }
    const { heapUsed, arrayBuffers } = process.memoryUsage()
    if (best === undefined || heapUsed + arrayBuffers < best.heapUsed + best.arrayBuffers) best = { heapUsed, arrayBuffers }
  }
  return best as Memory
}

const minus = (a: Memory, b: Memory): Memory => ({ heapUsed: a.heapUsed - b.heapUsed, arrayBuffers: a.arrayBuffers - b.arrayBuffers })

function totals(group: Group<unknown>): { counted: number; items: number; evictions: number } {
  const main = group.cacheStats('main')
  const hot = group.cacheStats('hot')
  return { counted: main.bytes + hot.bytes, items: main.items + hot.items, evictions: main.evictions + hot.evictions }
}

/** valueFor makes a value of the codec's type that encodes to about `size` bytes. */
function valueFor(codec: CodecName, i: number, size: number, r: Prng): unknown {
  switch (codec) {
    case 'string':
      return `${i}:`.padEnd(size, 'abcdefghij'[i % 10])
    case 'bytes':
      return Buffer.from(Array.from({ length: size }, () => r.int(0, 255)))
    default:
      // An object with a number and a string: about 15 bytes of framing.
      return { id: i, name: `n${i}`.padEnd(Math.max(2, size - 16), 'x') }
  }
}

/**
 * Workload is one scenario's traffic against a fresh node: `run` does `n`
 * operations and returns the group whose caches are counted.
 */
type Workload = (node: Groupcache, n: number) => Promise<Group<unknown>>

/**
 * measure runs the workload once small on a node of its own (so that the
 * code, the inline caches and the libraries' own buffers are in place),
 * then takes the settled memory, runs it at full size on a fresh node, and
 * takes the settled memory again.
 */
async function measure(scenario: string, n: number, workload: Workload): Promise<Result> {
  const warm = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
  await workload(warm, Math.min(n, 5_000))
  await warm.close()
  const node = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
  const before = await settled()
  const started = performance.now()
  const group = await workload(node, n)
  const seconds = (performance.now() - started) / 1000
  const after = await settled()
  const result = { scenario, ...totals(group), growth: minus(after, before), ops: n, seconds }
  await node.close()
  return result
}

/**
 * inserts: `n` gets of distinct keys, each loaded once, with values of
 * 10–100 encoded bytes, into one group of `maxBytes`. Every get keeps its
 * decoded value where the codec shares it, as a local caller's get does.
 */
function inserts(options: { codec: CodecName; n: number; maxBytes: number }): Promise<Result> {
  const { codec, n, maxBytes } = options
  const r = new Prng(0x14)
  return measure(`inserts ${codec}`, n, async (node, count) => {
    const group = node.newGroup<unknown>({
      name: 'g',
      maxBytes,
      codec,
      load: (key) => valueFor(codec, Number(key.slice(4)), r.int(10, 100), r),
    })
    for (let i = 0; i < count; i++) await group.get(`key:${i}`)
    return group
  })
}

/**
 * sharedBuffers: msgpackr encodes into a buffer it hands out slices of, and
 * once one large value has passed, each new buffer it starts is as large.
 * One 256 KiB value (served, too large to keep), then `n` inserts of 10–100
 * bytes (one in ten 1–2 KiB), while `hot` keys, introduced one by one along
 * the way, are read again after every insert and so stay cached: each one
 * taken from a different encoder buffer.
 */
function sharedBuffers(options: { n: number; hot: number; maxBytes: number }): Promise<Result> {
  const { n, hot, maxBytes } = options
  const r = new Prng(0x22)
  return measure('shared buffers', n, async (node, count) => {
    const group = node.newGroup<unknown>({
      name: 'g',
      maxBytes,
      load: (key) => ({ key, text: 'x'.repeat(key === 'large' ? 256 * 1024 : r.chance(0.1) ? r.int(1024, 2048) : r.int(10, 100)) }),
    })
    await group.get('large')
    let introduced = 0
    for (let i = 0; i < count; i++) {
      await group.get(`cold:${i}`)
      if (introduced < hot && i % Math.floor(count / hot) === 0) introduced++
      await group.get(`hot:${r.int(0, introduced - 1)}`)
    }
    return group
  })
}

/**
 * routes: `n` distinct URLs (random query strings) on one cached route, with
 * a `maxBytes` budget for the route group, through the framework-neutral
 * route cache with a renderer that answers as a small app would.
 */
function routes(options: { n: number; maxBytes: number }): Promise<Result> {
  const { n, maxBytes } = options
  const r = new Prng(0x33)
  return measure('routes', n, async (node, count) => {
    const caches = new RouteCaches(node)
    const decide = caches.route({ maxBytes, ttlMs: 3_600_000 })
    caches.setRenderer(async (url, headers): Promise<Captured> => {
      const d = await decide({ method: 'GET', url, headers })
      if (d.action !== 'next') throw new Error('the replay was not let through')
      return {
        status: 200,
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: Buffer.from(JSON.stringify({ url, ok: true })),
      }
    })
    for (let i = 0; i < count; i++) {
      const query = Math.floor(r.next() * 2 ** 52).toString(36)
      const d = await decide({ method: 'GET', url: `/search?q=${query}&page=${i}`, headers: {} })
      if (d.action !== 'reply' || d.status !== 200) throw new Error(`request ${i} was not answered from the route cache`)
    }
    return node.getGroup('_routes') as Group<unknown>
  })
}

/**
 * perEntry: what one cached entry of `size`-byte values costs, at the
 * steady state of a full cache: a store sized for about `n` entries takes
 * 3n distinct keys. `store` is lru-cache holding the same values as
 * strings (its own size accounting counting key + value), or a group with
 * the 'bytes', 'string' or default codec, read through `get` as a caller
 * would (so the string and msgpack codecs keep the decoded value too).
 */
async function perEntry(options: { store: 'lru-cache' | CodecName; n: number; size: number }): Promise<Result> {
  const { store, n, size } = options
  const keys = 3 * n
  const value = (i: number): string => `${i}:`.padEnd(size, 'x')
  if (store === 'lru-cache') {
    let lru = fill(new LRUCache<string, string>({ maxSize: n * (size + 8), sizeCalculation: (v, k) => v.length + k.length }), 5_000)
    lru.clear()
    const before = await settled()
    const started = performance.now()
    lru = fill(new LRUCache<string, string>({ maxSize: n * (size + 8), sizeCalculation: (v, k) => v.length + k.length }), keys)
    const seconds = (performance.now() - started) / 1000
    const after = await settled()
    return {
      scenario: 'per entry lru-cache',
      counted: lru.calculatedSize,
      items: lru.size,
      evictions: keys - lru.size,
      growth: minus(after, before),
      ops: keys,
      seconds,
    }
  }
  // Sized from one entry's counted cost, so that about n entries fit.
  const probe = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
  const one = probe.newGroup<unknown>({
    name: 'g',
    maxBytes: 1 << 20,
    codec: store,
    load: (key) => encodable(store, value(Number(key.slice(4)))),
  })
  await one.get('key:100000')
  const maxBytes = n * one.cacheStats('main').bytes
  await probe.close()
  return measure(`per entry ${store}`, keys, async (node, count) => {
    const group = node.newGroup<unknown>({
      name: 'g',
      maxBytes,
      codec: store,
      load: (key) => encodable(store, value(Number(key.slice(4)))),
    })
    for (let i = 0; i < count; i++) await group.get(`key:${100_000 + i}`)
    return group
  })
  function fill(lru: LRUCache<string, string>, count: number): LRUCache<string, string> {
    for (let i = 0; i < count; i++) lru.set(`key:${100_000 + i}`, Buffer.from(value(i)).toString('latin1'))
    return lru
  }
}

/** encodable is a string as the codec takes it: bytes for 'bytes', the string itself otherwise. */
function encodable(codec: CodecName, s: string): unknown {
  return codec === 'bytes' ? Buffer.from(s) : s
}

const scenarios: Record<string, (options: never) => Promise<Result>> = { inserts, sharedBuffers, routes, perEntry }

const [name, json] = process.argv.slice(2)
const scenario = scenarios[name ?? '']
if (scenario === undefined || typeof gc !== 'function') {
  console.error(`usage: node --expose-gc --import tsx ${process.argv[1]} ${Object.keys(scenarios).join('|')} '<json options>'`)
  process.exit(2)
}
console.log(JSON.stringify(await scenario(JSON.parse(json ?? '{}') as never)))

// One replica of an app in a child process, for the multi-process scenarios
// (B5, B6, B9), driven by the parent over IPC. It caches with one of:
//   groupcache — the built package, peers served by gc.listen() on a port of
//                their own or by the Express / Fastify / Koa adapter on the
//                app's port;
//   lru        — a per-replica lru-cache fetch() (no sharing between replicas);
//   bento      — bentocache, an L1 in memory and an L2 in Redis (or, without
//                `redisPort`, the L1 alone).
// Every system runs the same loader (it waits `loadDelayMs`, counts itself
// and returns `valueFor(key)`), and serves `GET /item/:key` on `appPort`.
import { subscribe } from 'node:diagnostics_channel'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisDriver } from 'bentocache/drivers/redis'
import express from 'express'
import Fastify from 'fastify'
import { type Group, Groupcache } from 'groupcache'
import { groupcache as expressGroupcache } from 'groupcache/express'
import fastifyGroupcache from 'groupcache/fastify'
import { groupcache as koaGroupcache } from 'groupcache/koa'
import { Redis } from 'ioredis'
import Koa from 'koa'
import { LRUCache } from 'lru-cache'
import { closeServer, listenOn } from './lib.js'
import { type ValueSizes, valueFor, valueSize } from './workload.js'

/** ReplicaConfig is what the parent passes as argv[2] (JSON). */
export interface ReplicaConfig {
  system: 'groupcache' | 'lru' | 'bento'
  /** server: how groupcache serves its peers (ignored by the baselines). */
  server: 'listen' | 'express' | 'fastify' | 'koa'
  /** self is this replica's peer URL (groupcache); with an adapter it is the app's URL. */
  self: string
  peers: string[]
  appPort: number
  /** peerPort is where gc.listen() binds (server 'listen' only). */
  peerPort: number
  loadDelayMs: number
  /** maxBytes is the cache budget of this replica (groupcache and lru-cache). */
  maxBytes: number
  /**
   * promote: groupcache's hot-cache policy; undefined is the default (by the
   * rate owners report), 'random' the 1 in 10 coin flip (Go's rule, the
   * default before rates).
   */
  promote?: boolean | 'random'
  redisPort?: number
  sizes: ValueSizes
  /** ttlMs: how long a value lives (default: groupcache until evicted, bento 1 h). */
  ttlMs?: number
  /** staleMs: groupcache's stale window, bentocache's grace period (default: none). */
  staleMs?: number
  /** batchWindowMs, when set, adds a second group, 'bench-window', with that window (B9). */
  batchWindowMs?: number
}

/** Command is one IPC request from the parent; the answer carries its id. */
export type Command =
  | { id: number; op: 'run'; keys: string[]; concurrency: number }
  | { id: number; op: 'takeLatencies' }
  | { id: number; op: 'stats' }
  | { id: number; op: 'remoteSample'; keys: string[]; max: number }
  | { id: number; op: 'failing'; on: boolean }
  | { id: number; op: 'periodic'; key: string; durationMs: number; intervalMs: number }
  | { id: number; op: 'pages'; pages: string[][]; concurrency: number; mode: PageMode }
  | { id: number; op: 'close' }

/**
 * PageMode is how a page of keys is read (B9): one `getMany`, one `get` per
 * key all at once, or the same gets in a group with `batchWindowMs`.
 */
export type PageMode = 'getMany' | 'gets' | 'gets-window'

/** PagesResult is what `pages` answers: time taken, failures, peer requests sent, and each page's time. */
export interface PagesResult {
  ms: number
  errors: number
  peerRequests: number
  /** pageMs holds the time each page took, in ms, in the order they finished. */
  pageMs: number[]
}

/** ReplicaStats is what `stats` answers. */
export interface ReplicaStats {
  loads: number
  distinctLoaded: number
  /** cachedBytes: bytes held by this replica's caches as each counts them (groupcache: against maxBytes; bento: its L1). */
  cachedBytes: number
  cachedItems: number
  hotBytes: number
  /** mainBytes and mainItems: groupcache's main cache (0 for the others). */
  mainBytes: number
  mainItems: number
  /** nonOwnerGets: gets of keys another replica owns; hotHits: those answered by a hot copy (groupcache only). */
  nonOwnerGets: number
  hotHits: number
  peerLoads: number
  peerErrors: number
}

/** BENCH_SECRET is every groupcache replica's `secret`. */
const BENCH_SECRET = 'bench-replica-secret'
const config = JSON.parse(process.argv[2] ?? '{}') as ReplicaConfig
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
let loads = 0
const loaded = new Set<string>()
// While set (B8), the loader fails after its delay, as a database that is down.
let failing = false
// Every request this process makes with undici is a peer request: count them.
let peerRequests = 0
subscribe('undici:request:create', () => {
  peerRequests++
})
let readPage: ((keys: string[], mode: PageMode) => Promise<unknown>) | undefined

async function load(key: string): Promise<string> {
  loads++
  loaded.add(key)
  if (config.loadDelayMs > 0) await sleep(config.loadDelayMs)
  if (failing) throw new Error('the database is down')
  return valueFor(key, config.sizes)
}

interface System {
  get(key: string): Promise<string>
  stats(): Omit<ReplicaStats, 'loads' | 'distinctLoaded'>
  /** remoteHit times one get that must be a plain fetch from the owner, or undefined if it was not. */
  remoteHit?(key: string): Promise<number | undefined>
  close(): Promise<void>
}

/**
 * Latencies are the in-replica times of the `/item/` requests' get()s, in ms:
 * `settled` until the promise get() returned settled, `continued` until the
 * route's own code after it ran. When one load answers a hundred callers at
 * once, their continuations run one after another, each writing its response,
 * so the last caller's `continued` also holds the 99 responses written before
 * it (the app's work, the same for every cache); `settled` is taken for every
 * caller before any of them goes on (a `.then` that runs first, in the order
 * the callers were resolved).
 */
interface Latencies {
  settled: number[]
  continued: number[]
}

/** timed returns what `get` returns, recording both latencies of the call. */
function timed<T>(got: Promise<T>, start: number, into: Latencies): Promise<T> {
  return got.then((value) => {
    into.settled.push(performance.now() - start)
    return value
  })
}

function appHandler(get: (key: string) => Promise<string>, latencies: Latencies) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/'
    if (!url.startsWith('/item/')) {
      res.writeHead(404).end()
      return
    }
    const start = performance.now()
    timed(get(decodeURIComponent(url.slice('/item/'.length))), start, latencies).then(
      (value) => {
        latencies.continued.push(performance.now() - start)
        res.writeHead(200, { 'content-type': 'text/plain' }).end(value)
      },
      (err: unknown) => {
        res.writeHead(500).end(String(err))
      },
    )
  }
}

/** routeLatencies holds the latencies of the `/item/` requests since the parent last took them. */
const routeLatencies: Latencies = { settled: [], continued: [] }

async function startGroupcache(): Promise<{ system: System; closeApp: () => Promise<void> }> {
  // handoffMs 0: the scenarios measure a cluster in its steady state, past
  // the window after a start or a change in which a new owner first peeks at
  // a key's previous owner (one extra request per cold key; README, Rolling
  // deploys). B5 within that window: see README's B5 note.
  // A secret, as README sets one on every node: peers then skip the
  // adapters' frameworks (servePeersFirst) and are authenticated.
  const gc = new Groupcache({ self: config.self, peers: config.peers, handoffMs: 0, secret: BENCH_SECRET })
  const promote = config.promote === 'random' ? () => Math.random() < 0.1 : config.promote
  const group: Group<string> = gc.newGroup<string>({
    name: 'bench',
    maxBytes: config.maxBytes,
    codec: 'string',
    ...(promote === undefined ? {} : { promote }),
    ...(config.ttlMs === undefined ? {} : { ttlMs: config.ttlMs }),
    ...(config.staleMs === undefined ? {} : { staleMs: config.staleMs }),
    load: (key) => load(key),
  })
  let nonOwnerGets = 0
  const get = (key: string): Promise<string> => {
    if (gc.ownerOf(key) !== config.self) nonOwnerGets++
    return group.get(key)
  }
  const windowed =
    config.batchWindowMs === undefined
      ? undefined
      : gc.newGroup<string>({
          name: 'bench-window',
          maxBytes: config.maxBytes,
          codec: 'string',
          batchWindowMs: config.batchWindowMs,
          ...(promote === undefined ? {} : { promote }),
          load: (key) => load(key),
        })
  readPage = (keys, mode) => {
    if (mode === 'getMany') return group.getMany(keys)
    const target = mode === 'gets' ? group : windowed
    if (target === undefined) throw new Error('gets-window needs batchWindowMs')
    return Promise.all(keys.map((key) => target.get(key)))
  }
  let closeApp: () => Promise<void>
  switch (config.server) {
    case 'listen': {
      await gc.listen({ port: config.peerPort, host: '127.0.0.1' })
      const server = createServer(appHandler(get, routeLatencies))
      await listenOn(server, config.appPort)
      closeApp = () => closeServer(server)
      break
    }
    case 'express': {
      const app = express()
      app.use(expressGroupcache(gc))
      const handler = appHandler(get, routeLatencies)
      app.get('/item/:key', (req, res) => handler(req, res))
      const server = createServer(app)
      await listenOn(server, config.appPort)
      closeApp = () => closeServer(server)
      break
    }
    case 'fastify': {
      const app = Fastify({ logger: false })
      await app.register(fastifyGroupcache, { groupcache: gc })
      app.get<{ Params: { key: string } }>('/item/:key', async (request, reply) => {
        const start = performance.now()
        const value = await timed(get(request.params.key), start, routeLatencies)
        routeLatencies.continued.push(performance.now() - start)
        return reply.type('text/plain').send(value)
      })
      await app.listen({ port: config.appPort, host: '127.0.0.1' })
      closeApp = () => app.close()
      break
    }
    case 'koa': {
      const app = new Koa()
      app.use(koaGroupcache(gc))
      app.use(async (ctx, next) => {
        if (!ctx.path.startsWith('/item/')) return next()
        const start = performance.now()
        const value = await timed(get(decodeURIComponent(ctx.path.slice('/item/'.length))), start, routeLatencies)
        routeLatencies.continued.push(performance.now() - start)
        ctx.type = 'text/plain'
        ctx.body = value
      })
      const server = createServer(app.callback())
      await listenOn(server, config.appPort)
      closeApp = () => closeServer(server)
      break
    }
  }
  const system: System = {
    get,
    stats: () => {
      const main = group.cacheStats('main')
      const hot = group.cacheStats('hot')
      const s = group.stats
      return {
        cachedBytes: main.bytes + hot.bytes,
        cachedItems: main.items + hot.items,
        hotBytes: hot.bytes,
        mainBytes: main.bytes,
        mainItems: main.items,
        nonOwnerGets,
        hotHits: hot.hits,
        peerLoads: s.peerLoads,
        peerErrors: s.peerErrors,
      }
    },
    remoteHit: async (key) => {
      if (gc.ownerOf(key) === config.self) return undefined
      const before = group.stats
      const start = performance.now()
      await group.get(key)
      const ms = performance.now() - start
      const after = group.stats
      // A plain fetch from the owner: no hit here, one peer load, no error.
      const plain =
        after.cacheHits === before.cacheHits && after.peerLoads === before.peerLoads + 1 && after.peerErrors === before.peerErrors
      return plain ? ms : undefined
    },
    close: () => gc.close(),
  }
  return { system, closeApp }
}

/** NO_SHARING is the part of the stats that only groupcache fills. */
const NO_SHARING = { hotBytes: 0, mainBytes: 0, mainItems: 0, nonOwnerGets: 0, hotHits: 0, peerLoads: 0, peerErrors: 0 }

async function startBaseline(): Promise<{ system: System; closeApp: () => Promise<void> }> {
  let system: System
  if (config.system === 'lru') {
    const lru = new LRUCache<string, string>({
      maxSize: config.maxBytes,
      sizeCalculation: (value, key) => Buffer.byteLength(key) + Buffer.byteLength(value),
      fetchMethod: (key) => load(key),
    })
    system = {
      get: async (key) => (await lru.fetch(key)) as string,
      stats: () => ({ ...NO_SHARING, cachedBytes: lru.calculatedSize, cachedItems: lru.size }),
      close: async () => {},
    }
  } else {
    const l1 = memoryDriver({ maxItems: 1_000_000, maxSize: '512mb' })
    const bento = new BentoCache({
      default: 'tiered',
      stores: {
        tiered:
          config.redisPort === undefined
            ? bentostore().useL1Layer(l1)
            : bentostore()
                .useL1Layer(l1)
                .useL2Layer(redisDriver({ connection: { host: '127.0.0.1', port: config.redisPort } })),
      },
    })
    // With a grace period, bentocache answers an expired entry at once and
    // refreshes it in the background (its soft timeout defaults to 0).
    const ttl = config.ttlMs ?? 3_600_000
    const grace = config.staleMs === undefined ? false : config.staleMs
    // L1 keeps every key this replica asked for (a million entries and 512 MB
    // are far more than a run touches, and no TTL runs out): its bytes are
    // those keys' bytes. (Its default would be 1,000 entries.)
    const touched = new Set<string>()
    let touchedBytes = 0
    system = {
      get: async (key) => {
        if (!touched.has(key)) {
          touched.add(key)
          touchedBytes += Buffer.byteLength(key) + valueSize(key, config.sizes)
        }
        return bento.getOrSet({ key, ttl, grace, factory: () => load(key) })
      },
      stats: () => ({ ...NO_SHARING, cachedBytes: touchedBytes, cachedItems: touched.size }),
      close: () => bento.disconnectAll(),
    }
  }
  const server = createServer(appHandler(system.get, routeLatencies))
  await listenOn(server, config.appPort)
  return { system, closeApp: () => closeServer(server) }
}

const { system, closeApp } = config.system === 'groupcache' ? await startGroupcache() : await startBaseline()
const redis = config.redisPort === undefined ? undefined : new Redis({ host: '127.0.0.1', port: config.redisPort, lazyConnect: true })

async function runKeys(keys: string[], concurrency: number): Promise<{ ms: number; errors: number; p50: number; p99: number }> {
  const latencies = new Float64Array(keys.length)
  let next = 0
  let errors = 0
  const start = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < keys.length) {
        const i = next++
        const t = performance.now()
        try {
          await system.get(keys[i] as string)
        } catch {
          errors++
        }
        latencies[i] = performance.now() - t
      }
    }),
  )
  const ms = performance.now() - start
  latencies.sort()
  const at = (p: number): number => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] ?? NaN
  return { ms, errors, p50: at(50), p99: at(99) }
}

/**
 * remoteSample times, one at a time and interleaved, a get that is a plain
 * fetch from the owner (the owner has the value cached) and a Redis GET of a
 * value of the same size, over up to `max` keys.
 */
async function remoteSample(keys: string[], max: number): Promise<{ remote: number[]; redis: number[] }> {
  const remote: number[] = []
  const redisTimes: number[] = []
  if (system.remoteHit === undefined) return { remote, redis: redisTimes }
  if (redis !== undefined) {
    await redis.connect()
    const pipeline = redis.pipeline()
    for (const key of keys) pipeline.set(`raw:${key}`, valueFor(key, config.sizes))
    await pipeline.exec()
  }
  for (const key of keys) {
    if (remote.length >= max) break
    const ms = await system.remoteHit(key)
    if (ms === undefined) continue
    remote.push(ms)
    if (redis !== undefined) {
      const start = performance.now()
      const value = await redis.get(`raw:${key}`)
      redisTimes.push(performance.now() - start)
      if (value?.length !== valueSize(key, config.sizes)) throw new Error(`redis returned a wrong value for ${key}`)
    }
  }
  return { remote, redis: redisTimes }
}

/**
 * periodic starts a get of `key` every `intervalMs` for `durationMs`, each
 * on its own (a slow get does not hold up the next), and reports each get's
 * time, the failures, and the loader runs meanwhile.
 */
async function periodic(
  key: string,
  durationMs: number,
  intervalMs: number,
): Promise<{ latencies: number[]; errors: number; loads: number }> {
  const latencies: number[] = []
  let errors = 0
  const before = loads
  const gets: Array<Promise<void>> = []
  const end = performance.now() + durationMs
  while (performance.now() < end) {
    const start = performance.now()
    gets.push(
      system.get(key).then(
        () => void latencies.push(performance.now() - start),
        () => void errors++,
      ),
    )
    await sleep(intervalMs)
  }
  await Promise.all(gets)
  return { latencies, errors, loads: loads - before }
}

/** readPages reads every page, `concurrency` at a time, in the given mode. */
async function readPages(pages: string[][], concurrency: number, mode: PageMode): Promise<PagesResult> {
  const read = readPage
  if (read === undefined) throw new Error('pages needs groupcache')
  const before = peerRequests
  let next = 0
  let errors = 0
  const pageMs: number[] = []
  const start = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < pages.length) {
        const page = pages[next++] as string[]
        const t = performance.now()
        try {
          await read(page, mode)
        } catch {
          errors++
        }
        pageMs.push(performance.now() - t)
      }
    }),
  )
  return { ms: performance.now() - start, errors, peerRequests: peerRequests - before, pageMs }
}

async function handle(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case 'run':
      return runKeys(cmd.keys, cmd.concurrency)
    case 'takeLatencies': {
      const taken = { settled: routeLatencies.settled, continued: routeLatencies.continued }
      routeLatencies.settled = []
      routeLatencies.continued = []
      return taken
    }
    case 'stats':
      return { loads, distinctLoaded: loaded.size, ...system.stats() } satisfies ReplicaStats
    case 'remoteSample':
      return remoteSample(cmd.keys, cmd.max)
    case 'failing':
      failing = cmd.on
      return null
    case 'periodic':
      return periodic(cmd.key, cmd.durationMs, cmd.intervalMs)
    case 'pages':
      return readPages(cmd.pages, cmd.concurrency, cmd.mode)
    case 'close':
      await Promise.race([Promise.all([closeApp(), system.close(), redis?.quit().catch(() => {})]), sleep(2_000)])
      setImmediate(() => process.exit(0))
      return null
  }
}

process.on('message', (cmd: Command) => {
  handle(cmd).then(
    (value) => process.send?.({ id: cmd.id, ok: true, value }),
    (err: unknown) => process.send?.({ id: cmd.id, ok: false, error: String((err as Error)?.stack ?? err) }),
  )
})
// The parent going away (even killed) must not leave this process behind.
process.on('disconnect', () => process.exit(0))
process.send?.({ ready: true })

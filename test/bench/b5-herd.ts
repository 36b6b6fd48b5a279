// B5: a thundering herd. 300 concurrent requests for one cold key, spread
// over 3 replicas (child processes), with a loader that takes 50 ms.
import { Pool } from 'undici'
import { type Replica, type ReplicaSetup, startReplicas, stopReplicas } from './cluster.js'
import { fmtMs, now, percentile, printTable, quick, record, sortedCopy, withTimeout } from './lib.js'
import { startRedis } from './redis.js'
import type { ReplicaStats } from './replica.js'

const REQUESTS = 300
const LOAD_MS = 50
const P99_LIMIT_MS = LOAD_MS + 10

interface Contender {
  name: string
  /** target: the label of the groupcache targets, or undefined for a baseline (it only reports). */
  target: string | undefined
  setups: ReplicaSetup[]
}

interface Result {
  loadsPerHerd: number[]
  /** get: until get()'s promise settled; continued: until the route's code after it ran (README, B5). */
  get: Float64Array
  continued: Float64Array
  http: Float64Array
  errors: number
}

async function request(pool: Pool, path: string): Promise<number> {
  const res = await pool.request({ path, method: 'GET', headersTimeout: 10_000, bodyTimeout: 10_000 })
  const body = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}: ${body.slice(0, 200)}`)
  return body.length
}

async function totalLoads(replicas: Replica[]): Promise<number> {
  const stats = await Promise.all(replicas.map((r) => r.call<ReplicaStats>({ op: 'stats' })))
  return stats.reduce((sum, s) => sum + s.loads, 0)
}

async function herd(contender: Contender, rounds: number): Promise<Result> {
  const replicas = await startReplicas(contender.setups)
  const pools = replicas.map((r) => new Pool(r.appUrl, { connections: REQUESTS / replicas.length }))
  try {
    // Warm up: open every client connection, and every peer connection, and
    // let the JIT see the path (with other keys).
    for (let w = 0; w < (quick ? 2 : 3); w++) {
      await Promise.all(Array.from({ length: REQUESTS }, (_, j) => request(pools[j % pools.length] as Pool, `/item/warm-${w}-${j % 30}`)))
    }
    await Promise.all(replicas.map((r) => r.call({ op: 'takeLatencies' })))
    const loadsPerHerd: number[] = []
    const http: number[] = []
    const get: number[] = []
    const continued: number[] = []
    let errors = 0
    for (let round = 0; round < rounds; round++) {
      const before = await totalLoads(replicas)
      const key = `/item/herd-${round}`
      await Promise.all(
        Array.from({ length: REQUESTS }, async (_, j) => {
          const start = now()
          try {
            await request(pools[j % pools.length] as Pool, key)
            http.push(now() - start)
          } catch {
            errors++
          }
        }),
      )
      loadsPerHerd.push((await totalLoads(replicas)) - before)
      for (const taken of await Promise.all(
        replicas.map((r) => r.call<{ settled: number[]; continued: number[] }>({ op: 'takeLatencies' })),
      )) {
        get.push(...taken.settled)
        continued.push(...taken.continued)
      }
      // Let the replicas settle between herds.
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    return { loadsPerHerd, get: sortedCopy(get), continued: sortedCopy(continued), http: sortedCopy(http), errors }
  } finally {
    await Promise.all(pools.map((p) => p.close().catch(() => {})))
    await stopReplicas(replicas)
  }
}

/** run measures B5 and prints its table. */
export async function run(): Promise<void> {
  // 15 herds: with 6, the p99 (over 1,800 gets) moved by several milliseconds
  // from one run to the next (the scheduler of a busy 2-core machine).
  const rounds = quick ? 2 : 15
  const base = { loadDelayMs: LOAD_MS, maxBytes: 64 << 20, sizes: 'fixed' as const }
  const redis = await startRedis()
  try {
    const contenders: Contender[] = [
      {
        name: 'groupcache, `gc.listen()` on each replica',
        target: 'gc.listen()',
        setups: [0, 1, 2].map(() => ({ ...base, system: 'groupcache', server: 'listen' })),
      },
      {
        name: 'groupcache, Express + Fastify + Koa replicas (adapters)',
        target: 'adapters',
        setups: (['express', 'fastify', 'koa'] as const).map((server) => ({ ...base, system: 'groupcache', server })),
      },
      {
        name: 'lru-cache `fetch()` on each replica',
        target: undefined,
        setups: [0, 1, 2].map(() => ({ ...base, system: 'lru', server: 'listen' })),
      },
    ]
    if (redis.ok) {
      contenders.push({
        name: 'bentocache, L1 memory + L2 Redis',
        target: undefined,
        setups: [0, 1, 2].map(() => ({ ...base, system: 'bento', server: 'listen', redisPort: redis.server.port })),
      })
    }
    const rows: string[][] = []
    for (const contender of contenders) {
      let result: Result
      try {
        result = await withTimeout(herd(contender, rounds), 180_000, `B5 ${contender.name}`)
      } catch (err) {
        rows.push([contender.name, `failed: ${(err as Error).message}`, '', '', '', '', '', '', ''])
        continue
      }
      const oneLoad = result.loadsPerHerd.every((n) => n === 1) && result.errors === 0
      const getP99 = percentile(result.get, 99)
      rows.push([
        contender.name,
        result.loadsPerHerd.join(', ') + (result.errors > 0 ? ` (${result.errors} failed requests)` : ''),
        fmtMs(percentile(result.get, 50)),
        fmtMs(getP99),
        fmtMs(percentile(result.continued, 99)),
        fmtMs(percentile(result.http, 50)),
        fmtMs(percentile(result.http, 99)),
        contender.target !== undefined ? record('B5', `${contender.target}: exactly 1 load per herd`, oneLoad) : '—',
        contender.target !== undefined ? record('B5', `${contender.target}: get() p99 ≤ ${P99_LIMIT_MS} ms`, getP99 <= P99_LIMIT_MS) : '—',
      ])
    }
    if (!redis.ok) rows.push(['bentocache, L1 memory + L2 Redis', `skipped: ${redis.reason}`, '', '', '', '', '', '', ''])
    printTable(
      `B5 — thundering herd: ${REQUESTS} concurrent requests for one cold key over 3 replicas, loader ${LOAD_MS} ms`,
      [
        'system (3 child processes)',
        'loads per herd (each round)',
        'get() p50',
        'get() p99',
        'route after get() p99',
        'HTTP p50',
        'HTTP p99',
        'target: loads',
        'target: p99',
      ],
      rows,
      [
        `${rounds} herds per system, each for a new key; the parent sends ${REQUESTS / 3} requests to each replica's \`GET /item/:key\` at once (undici, connections opened beforehand).`,
        "`get()` is timed inside the replica, from the route's call until the promise it returned settled (a `.then` on it, which for every caller of a herd runs before any caller's route goes on); \"route after get()\" until the route's own code after the `await` ran, which for the last of a replica's callers comes after the other callers' responses were written (the app's work, the same for every cache); HTTP is timed by the client and includes the route, the framework and the client itself on this 2-core machine.",
        "lru-cache and bentocache deduplicate only within a process; bentocache's L2 (Redis) is shared, but all three replicas miss it at the same moment.",
        ...(redis.ok && redis.note !== undefined ? [redis.note] : []),
      ],
    )
  } finally {
    if (redis.ok) await redis.server.stop()
  }
}

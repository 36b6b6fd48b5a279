// B6: a Zipf(1.0) workload over 20k keys, 3 replicas (child processes), a
// random replica per request: how many loads, how many bytes cached across
// the cluster, and how a remote hit compares with a Redis GET.
import { Redis } from 'ioredis'
import { type Replica, type ReplicaSetup, startReplicas, stopReplicas } from './cluster.js'
import { fmtBytes, fmtInt, fmtMs, fmtRatio, median, mulberry32, now, printTable, quick, record, withTimeout, zipf } from './lib.js'
import { startRedis } from './redis.js'
import type { ReplicaStats } from './replica.js'
import { entryBytes } from './workload.js'

const KEYS = 20_000
const REPLICAS = 3
const CONCURRENCY = 16 // per replica
const LOAD_MS = 2
const BUDGET = 64 << 20 // per replica: far more than the data, nothing is evicted
const WARMUP_KEYS = quick ? 1_000 : 3_000 // per replica, outside the workload

interface Contender {
  name: string
  kind: 'groupcache' | 'lru' | 'bento'
  setups: ReplicaSetup[]
}

interface RunResult {
  ms: number
  errors: number
  p50: number
  p99: number
  stats: ReplicaStats[]
  remote?: { remote: number[]; redis: number[] }
  redisKeys?: number
}

/** minus is what a replica did after `before` (nothing is evicted, so bytes subtract too). */
function minus(after: ReplicaStats, before: ReplicaStats): ReplicaStats {
  const out = { ...after }
  for (const k of Object.keys(out) as Array<keyof ReplicaStats>) out[k] = after[k] - before[k]
  return out
}

/** workload draws the requests: a Zipf rank and a random replica for each. */
function workload(requests: number): { lists: string[][]; distinct: string[] } {
  const random = mulberry32(7)
  const rank = zipf(KEYS, 1.0, random)
  const lists: string[][] = Array.from({ length: REPLICAS }, () => [])
  const seen = new Set<string>()
  for (let i = 0; i < requests; i++) {
    const key = `item-${rank()}`
    seen.add(key)
    lists[Math.floor(random() * REPLICAS)]?.push(key)
  }
  // The distinct keys in a shuffled order, for sampling remote hits.
  const distinct = [...seen]
  for (let i = distinct.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[distinct[i], distinct[j]] = [distinct[j] as string, distinct[i] as string]
  }
  return { lists, distinct }
}

async function runOne(contender: Contender, lists: string[][], distinct: string[], redisPort: number | undefined): Promise<RunResult> {
  let redis: Redis | undefined
  if (redisPort !== undefined) {
    redis = new Redis({ host: '127.0.0.1', port: redisPort })
    await redis.flushall()
  }
  const replicas: Replica[] = await startReplicas(contender.setups)
  try {
    // Warm up (JIT, connections) on keys outside the workload; what they
    // load and cache is subtracted below.
    const warm = Array.from({ length: WARMUP_KEYS }, (_, i) => `warm-${i}`)
    await Promise.all(replicas.map((r) => r.call({ op: 'run', keys: warm, concurrency: CONCURRENCY }, 120_000)))
    const warmed = await Promise.all(replicas.map((r) => r.call<ReplicaStats>({ op: 'stats' })))
    const redisBefore = redis === undefined ? 0 : await redis.dbsize()
    const start = now()
    const runs = await Promise.all(
      replicas.map((r, i) =>
        r.call<{ ms: number; errors: number; p50: number; p99: number }>(
          { op: 'run', keys: lists[i] as string[], concurrency: CONCURRENCY },
          300_000,
        ),
      ),
    )
    const ms = now() - start
    const stats = (await Promise.all(replicas.map((r) => r.call<ReplicaStats>({ op: 'stats' })))).map((s, i) =>
      minus(s, warmed[i] as ReplicaStats),
    )
    const result: RunResult = {
      ms,
      errors: runs.reduce((s, r) => s + r.errors, 0),
      p50: median(runs.map((r) => r.p50)),
      p99: Math.max(...runs.map((r) => r.p99)),
      stats,
    }
    if (contender.kind === 'bento' && redis !== undefined) result.redisKeys = (await redis.dbsize()) - redisBefore
    if (contender.kind === 'groupcache') {
      // Sequential, after the run: a get that is a plain fetch from the owner
      // (which has the value), beside a Redis GET of a value of the same size.
      result.remote = await (replicas[0] as Replica).call({ op: 'remoteSample', keys: distinct, max: quick ? 300 : 2_000 }, 120_000)
      const loadsAfter = (await Promise.all(replicas.map((r) => r.call<ReplicaStats>({ op: 'stats' })))).map((s, i) =>
        minus(s, warmed[i] as ReplicaStats),
      )
      const extra = loadsAfter.reduce((s, x) => s + x.loads, 0) - stats.reduce((s, x) => s + x.loads, 0)
      if (extra !== 0) throw new Error(`the remote-hit sample caused ${extra} loads: it did not time remote hits only`)
    }
    return result
  } finally {
    await stopReplicas(replicas)
    await redis?.quit().catch(() => {})
  }
}

/** run measures B6 and prints its tables. */
export async function run(): Promise<void> {
  const requests = quick ? 20_000 : 200_000
  const { lists, distinct } = workload(requests)
  const uniqueBytes = distinct.reduce((sum, key) => sum + entryBytes(key, 'varied'), 0)
  const base = { loadDelayMs: LOAD_MS, maxBytes: BUDGET, sizes: 'varied' as const }
  const redis = await startRedis()
  const redisPort = redis.ok ? redis.server.port : undefined
  try {
    const three = <T>(f: () => T): T[] => Array.from({ length: REPLICAS }, f)
    const contenders: Contender[] = [
      {
        name: 'groupcache, `gc.listen()`, default hot cache (1 in 10)',
        kind: 'groupcache',
        setups: three(() => ({ ...base, system: 'groupcache', server: 'listen', ...(redisPort === undefined ? {} : { redisPort }) })),
      },
      // An informative variant; left out of a quick run for time.
      ...(quick
        ? []
        : [
            {
              name: 'groupcache, `gc.listen()`, `promote: false` (info: no hot copies)',
              kind: 'groupcache' as const,
              setups: three(
                (): ReplicaSetup => ({
                  ...base,
                  system: 'groupcache',
                  server: 'listen',
                  promote: false,
                  ...(redisPort === undefined ? {} : { redisPort }),
                }),
              ),
            },
          ]),
      { name: 'lru-cache `fetch()` on each replica', kind: 'lru', setups: three(() => ({ ...base, system: 'lru', server: 'listen' })) },
    ]
    if (redisPort !== undefined) {
      contenders.push({
        name: 'bentocache, L1 memory + L2 Redis',
        kind: 'bento',
        setups: three(() => ({ ...base, system: 'bento', server: 'listen', redisPort })),
      })
    }
    const rows: string[][] = []
    const remoteRows: string[][] = []
    for (const [index, contender] of contenders.entries()) {
      let r: RunResult
      try {
        r = await withTimeout(
          runOne(contender, lists, distinct, contender.kind === 'lru' ? undefined : redisPort),
          600_000,
          `B6 ${contender.name}`,
        )
      } catch (err) {
        rows.push([contender.name, `failed: ${(err as Error).message}`, '', '', '', '', '', ''])
        continue
      }
      const loads = r.stats.reduce((s, x) => s + x.loads, 0)
      // bentocache: each replica's L1 plus the one copy of each key in Redis (L2).
      const cached = r.stats.reduce((s, x) => s + x.cachedBytes, 0) + (contender.kind === 'bento' ? uniqueBytes : 0)
      // Copies, not bytes: groupcache counts its bytes as memory (per-entry
      // overhead, decoded values), the others count key + value bytes.
      const copies = r.stats.reduce((s, x) => s + x.cachedItems, 0) + (contender.kind === 'bento' ? distinct.length : 0)
      const loadRatio = loads / distinct.length
      const copyRatio = copies / distinct.length
      const targets = index === 0
      const hot = r.stats.reduce((s, x) => s + x.hotBytes, 0)
      rows.push([
        contender.name,
        fmtInt(loads) + (r.errors > 0 ? ` (${r.errors} errors)` : ''),
        fmtRatio(loadRatio),
        `${fmtBytes(cached)}${contender.kind === 'groupcache' ? ` (hot ${fmtBytes(hot)})` : ''}${r.redisKeys !== undefined ? ` (Redis keys: ${fmtInt(r.redisKeys)})` : ''}`,
        fmtRatio(copyRatio),
        fmtInt((requests / r.ms) * 1000),
        `${fmtMs(r.p50)} / ${fmtMs(r.p99)}`,
        targets ? record('B6', 'loads = distinct keys (1.00×)', loads === distinct.length) : '—',
        targets ? record('B6', 'cached copies ≤ 1.15× distinct keys', copyRatio <= 1.15) : '—',
      ])
      if (r.remote !== undefined && r.remote.remote.length > 0) {
        const remoteP50 = median(r.remote.remote)
        const redisP50 = r.remote.redis.length > 0 ? median(r.remote.redis) : NaN
        remoteRows.push([
          contender.name,
          fmtInt(r.remote.remote.length),
          fmtMs(remoteP50),
          Number.isNaN(redisP50) ? 'skipped (no Redis)' : fmtMs(redisP50),
          fmtRatio(remoteP50 / redisP50),
        ])
      }
    }
    if (redisPort === undefined)
      rows.push(['bentocache, L1 memory + L2 Redis', `skipped: ${redis.ok ? '' : redis.reason}`, '', '', '', '', '', '', ''])
    printTable(
      `B6 — Zipf(1.0) over ${fmtInt(KEYS)} keys, ${fmtInt(requests)} requests, 3 replicas, a random replica per request`,
      [
        'system (3 child processes)',
        'loads',
        'loads ÷ distinct keys',
        'cached bytes, cluster',
        'cached copies ÷ distinct keys',
        'req/s',
        'get() p50 / p99',
        'target: loads',
        'target: copies',
      ],
      rows,
      [
        `${fmtInt(distinct.length)} distinct keys touched; unique data ${fmtBytes(uniqueBytes)} (key + value bytes, values 512–1,535 B); loader ${LOAD_MS} ms.`,
        `each replica runs its share of the requests (same seeded sequence for every system) ${CONCURRENCY} at a time, driven over IPC, after a warm-up on ${fmtInt(WARMUP_KEYS)} other keys (subtracted); budget ${fmtBytes(BUDGET)} per replica, so nothing is evicted.`,
        "cached bytes: groupcache main + hot caches as counted against maxBytes (key + value, per-entry overhead, kept decoded values: README, Memory); lru-cache and bentocache key + value bytes (bentocache: every replica's L1 plus one copy in Redis). Copies (entries held, cluster-wide) compare them alike.",
      ],
    )
    printTable(
      'B6 — remote hit (a non-owner fetching a cached value from its owner) vs a Redis GET',
      ['system', 'samples', 'remote-hit p50', 'Redis GET p50 (ioredis, same sizes)', 'ratio'],
      remoteRows,
      [
        'timed one at a time, after the run, in replica 0, interleaved: a get of a key owned by another replica and not held here, then a GET of the same bytes from Redis on 127.0.0.1.',
        'no target ratio was set; it says what a remote hit costs next to the usual shared cache.',
      ],
    )
  } finally {
    if (redis.ok) await redis.server.stop()
  }
}

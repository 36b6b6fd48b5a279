import type { Server } from 'node:http'
// Shared helpers of the benchmark suite: timing loops, percentiles, a seeded
// random source, and the markdown tables every scenario prints. Nothing here
// imports the package: each scenario imports the built one (`groupcache`,
// `groupcache/express`, …), as users run it.

/** quick is true under `npm run bench -- --quick`: shorter loops, same shape. */
export const quick = process.argv.includes('--quick')

/** sleep resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * withTimeout rejects when `promise` has not settled after `ms`, so that no
 * step of a benchmark can hang the run.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** now is a monotonic clock in milliseconds. */
export function now(): number {
  return performance.now()
}

/**
 * nsPerOp runs `op` sequentially (awaiting each result) for about `seconds`,
 * in batches of 1,000, and returns the mean time per op in nanoseconds.
 * The loop is bounded in time and in count (at most 50 million ops).
 */
export async function nsPerOp(op: (i: number) => unknown, seconds: number): Promise<number> {
  let n = 0
  const start = process.hrtime.bigint()
  const budget = BigInt(Math.round(seconds * 1e9))
  while (process.hrtime.bigint() - start < budget && n < 50_000_000) {
    for (let j = 0; j < 1_000; j++) await op(n++)
  }
  return Number(process.hrtime.bigint() - start) / n
}

/**
 * compareNsPerOp measures several contenders in interleaved rounds (A B C,
 * A B C, …) after a warm-up, and returns each one's median ns/op. On a
 * shared, noisy machine interleaving keeps a burst of noise from landing on
 * one contender only; the median drops the rounds it hit.
 */
export async function compareNsPerOp(
  contenders: Record<string, (i: number) => unknown>,
  options: { rounds: number; seconds: number; warmupOps?: number },
): Promise<Record<string, number>> {
  const names = Object.keys(contenders)
  for (const name of names) {
    const op = contenders[name] as (i: number) => unknown
    for (let i = 0; i < (options.warmupOps ?? 20_000); i++) await op(i)
  }
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]))
  for (let r = 0; r < options.rounds; r++) {
    for (const name of names) {
      samples[name]?.push(await nsPerOp(contenders[name] as (i: number) => unknown, options.seconds))
    }
  }
  return Object.fromEntries(names.map((n) => [n, median(samples[n] as number[])]))
}

/**
 * requestsPerSecond keeps `concurrency` ops in flight for about `seconds`
 * and returns completed ops per second. Each worker stops at the deadline
 * or after `maxOps / concurrency` ops, whichever comes first.
 */
export async function requestsPerSecond(
  op: () => Promise<unknown>,
  concurrency: number,
  seconds: number,
  maxOps = 5_000_000,
): Promise<number> {
  let n = 0
  const deadline = now() + seconds * 1000
  const perWorker = Math.ceil(maxOps / concurrency)
  const start = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = 0; i < perWorker && now() < deadline; i++) {
        await op()
        n++
      }
    }),
  )
  return n / (Number(process.hrtime.bigint() - start) / 1e9)
}

/** median of a non-empty list (the list is not changed). */
export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  )
}

/** percentile of an ascending list, by the nearest-rank method. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1] as number
}

/** sortedCopy returns the values in ascending order, as a Float64Array. */
export function sortedCopy(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort()
}

export { mulberry32 } from '../helpers/prng.js'

/**
 * zipf returns a sampler of ranks 0..n-1 with P(rank r) ∝ 1 / (r + 1)^s,
 * by binary search over the cumulative distribution.
 */
export function zipf(n: number, s: number, random: () => number): () => number {
  const cdf = new Float64Array(n)
  let sum = 0
  for (let r = 0; r < n; r++) {
    sum += 1 / (r + 1) ** s
    cdf[r] = sum
  }
  for (let r = 0; r < n; r++) cdf[r] = (cdf[r] as number) / sum
  return () => {
    const u = random()
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((cdf[mid] as number) < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** fmtInt renders a count or rate with thousands separators. */
export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : String(n)
}

/** fmtNs renders a duration given in nanoseconds. */
export function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return String(ns)
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`
  if (ns >= 1e4) return `${(ns / 1e3).toFixed(1)} µs`
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`
  return `${ns.toFixed(0)} ns`
}

/** fmtMs renders a duration given in milliseconds. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms)
  return ms >= 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(2)} ms`
}

/** fmtBytes renders a byte count in B, KB or MB (powers of 1024). */
export function fmtBytes(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(2)} MB`
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KB`
  return `${Math.round(n)} B`
}

/** fmtRatio renders a ratio as `1.23×`. */
export function fmtRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : '—'
}

/** verdict renders a target with its outcome: `≥ 0.8×: met`. */
export function verdict(target: string, met: boolean): string {
  return `${target}: **${met ? 'met' : 'missed'}**`
}

/**
 * Outcome is one target's result, collected by run.ts for the closing
 * summary.
 */
export interface Outcome {
  scenario: string
  target: string
  met: boolean
}

/** outcomes collects every target's result in the order measured. */
export const outcomes: Outcome[] = []

/** record adds a target's outcome to the summary and returns its cell text. */
export function record(scenario: string, target: string, met: boolean): string {
  outcomes.push({ scenario, target, met })
  return verdict(target, met)
}

/**
 * printTable prints one markdown table: a heading, the rows, and notes
 * under it (what was measured, and how).
 */
export function printTable(title: string, header: string[], rows: string[][], notes: string[] = []): void {
  const align = header.map((_, i) => (i === 0 ? '---' : '---:'))
  const lines = [`\n### ${title}\n`, `| ${header.join(' | ')} |`, `| ${align.join(' | ')} |`]
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`)
  if (notes.length > 0) lines.push('', ...notes.map((n) => `- ${n}`))
  console.log(lines.join('\n'))
}

/** listenOn binds a server on 127.0.0.1. */
export function listenOn(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
}

/** closeServer closes a server and every connection it holds. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

/**
 * runAsChild wires a bench server child to its parent: `ready` (with any
 * extra fields) once started, `close` from the parent, its disconnect (even
 * when killed) or SIGTERM stop it within 2 s whatever `stop` does, and
 * other messages go to `onMessage`.
 */
export function runAsChild(
  stop: () => Promise<unknown>,
  ready: Record<string, unknown> = {},
  onMessage?: (msg: { op?: string }) => void,
): void {
  let closing = false
  const exit = (): void => {
    if (closing) return
    closing = true
    const timer = setTimeout(() => process.exit(0), 2_000)
    stop().then(
      () => {
        clearTimeout(timer)
        process.exit(0)
      },
      () => process.exit(0),
    )
  }
  process.on('message', (msg: { op?: string }) => {
    if (msg.op === 'close') exit()
    else onMessage?.(msg)
  })
  process.on('disconnect', exit)
  process.on('SIGTERM', exit)
  process.send?.({ ready: true, ...ready })
}

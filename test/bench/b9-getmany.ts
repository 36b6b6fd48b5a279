// B9: a list page of 100 keys across 3 replicas (child processes), read as
// one getMany(100) or as 100 parallel gets, the values cached on their
// owners (promote: false, so every remote key is a peer fetch): pages per
// second and peer requests per page, in the same run. Also the same gets
// with batchWindowMs, and lone gets with and without it, which is what the
// window costs (why it is off by default).
import { type Replica, startReplicas, stopReplicas } from './cluster.js'
import { fmtInt, fmtMs, median, mulberry32, percentile, printTable, quick, record, sortedCopy, withTimeout } from './lib.js'
import type { PageMode, PagesResult } from './replica.js'

const KEYS = Array.from({ length: 3000 }, (_, i) => `page-key-${i}`)
const PAGE = 100
const WINDOW_MS = 1
const CONCURRENCY = 4

/** pagesOf draws `n` pages of PAGE distinct keys each. */
function pagesOf(n: number, size: number, random: () => number): string[][] {
  return Array.from({ length: n }, () => {
    const page = new Set<string>()
    while (page.size < size) page.add(KEYS[Math.floor(random() * KEYS.length)] as string)
    return [...page]
  })
}

/** Sample is one round of one mode over the 3 replicas at once. */
interface Sample {
  pagesPerSecond: number
  peerRequestsPerPage: number
  errors: number
  /** pageMs holds every page's time, over the 3 replicas. */
  pageMs: number[]
}

async function round(replicas: Replica[], mode: PageMode, pages: number, size: number, concurrency: number, seed: number): Promise<Sample> {
  const start = performance.now()
  const results = await Promise.all(
    replicas.map((r, i) => r.call<PagesResult>({ op: 'pages', pages: pagesOf(pages, size, mulberry32(seed + i)), concurrency, mode })),
  )
  const seconds = (performance.now() - start) / 1000
  const total = pages * replicas.length
  return {
    pagesPerSecond: total / seconds,
    peerRequestsPerPage: results.reduce((n, r) => n + r.peerRequests, 0) / total,
    errors: results.reduce((n, r) => n + r.errors, 0),
    pageMs: results.flatMap((r) => r.pageMs),
  }
}

/** run measures B9 and prints its table. */
export async function run(): Promise<void> {
  const rounds = quick ? 2 : 3
  const pages = quick ? 40 : 100
  const lone = quick ? 200 : 500
  const replicas = await startReplicas(
    [0, 1, 2].map(() => ({
      system: 'groupcache' as const,
      server: 'listen' as const,
      loadDelayMs: 0,
      maxBytes: 64 << 20,
      sizes: 'fixed' as const,
      promote: false,
      batchWindowMs: WINDOW_MS,
    })),
  )
  try {
    await withTimeout(
      (async () => {
        // Warm up: every key loaded on its owner, in both groups, and every
        // peer connection open.
        for (const mode of ['getMany', 'gets-window'] as const) {
          await Promise.all(replicas.map((r) => r.call({ op: 'pages', pages: [KEYS], concurrency: 1, mode })))
        }
        const modes: PageMode[] = ['gets', 'getMany', 'gets-window']
        const samples = new Map<PageMode, Sample[]>(modes.map((m) => [m, []]))
        const loneSamples = new Map<PageMode, Sample[]>([
          ['gets', []],
          ['gets-window', []],
        ])
        for (let r = 0; r < rounds; r++) {
          for (const mode of modes) samples.get(mode)?.push(await round(replicas, mode, pages, PAGE, CONCURRENCY, 1000 * r))
          for (const mode of ['gets', 'gets-window'] as const)
            loneSamples.get(mode)?.push(await round(replicas, mode, lone, 1, 1, 5000 + 1000 * r))
        }
        const med = (list: Sample[] | undefined, f: (s: Sample) => number): number => median((list ?? []).map(f))
        const errors = [...samples.values(), ...loneSamples.values()].flat().reduce((n, s) => n + s.errors, 0)
        const pps = (m: PageMode): number => med(samples.get(m), (s) => s.pagesPerSecond)
        const reqs = (m: PageMode): number => med(samples.get(m), (s) => s.peerRequestsPerPage)
        const base = pps('gets')
        const manyRatio = pps('getMany') / base
        const rows = [
          [`100 parallel \`get\`s (baseline)`, fmtInt(base), reqs('gets').toFixed(1), '1.00×', '—'],
          [
            '`getMany(100)`',
            fmtInt(pps('getMany')),
            reqs('getMany').toFixed(2),
            `${manyRatio.toFixed(2)}×`,
            record(
              'B9',
              'getMany(100): ≥ 2× the pages/s of 100 parallel gets, ≤ 2 peer requests per page',
              manyRatio >= 2 && reqs('getMany') <= 2,
            ),
          ],
          [
            `100 parallel \`get\`s, \`batchWindowMs: ${WINDOW_MS}\``,
            fmtInt(pps('gets-window')),
            reqs('gets-window').toFixed(2),
            `${(pps('gets-window') / base).toFixed(2)}×`,
            '—',
          ],
        ]
        const loneRows = (['gets', 'gets-window'] as const).map((m) => {
          const times = sortedCopy((loneSamples.get(m) ?? []).flatMap((s) => s.pageMs))
          return [
            m === 'gets' ? 'one `get` at a time (default, no window)' : `one \`get\` at a time, \`batchWindowMs: ${WINDOW_MS}\``,
            fmtMs(percentile(times, 50)),
            fmtMs(percentile(times, 90)),
            med(loneSamples.get(m), (s) => s.peerRequestsPerPage).toFixed(2),
          ]
        })
        printTable(
          `B9 — a page of ${PAGE} keys over 3 replicas: getMany vs parallel gets (values cached on their owners)`,
          ['how each page is read', 'pages/s (3 replicas)', 'peer requests per page', 'vs gets', 'target'],
          rows,
          [
            `${KEYS.length} keys of 1 KB, loaded on their owners beforehand; \`promote: false\`, so every key owned by another replica is a peer fetch (about 2/3 of a page).`,
            `Each replica reads ${pages} pages of ${PAGE} distinct random keys, ${CONCURRENCY} pages at a time, all 3 replicas at once; medians of ${rounds} interleaved rounds.`,
            "Peer requests are counted in each replica with undici's `undici:request:create` diagnostics channel. getMany sends one batch per remote owner, and pages that miss in the same round of microtasks share it, so with 4 pages in flight a page costs under 2 requests (a protocol probe, once a minute per peer, is counted when it falls in a round).",
            `Errors: ${errors}.`,
          ],
        )
        printTable('B9 — what the batch window costs a lone get', ['how', 'get p50', 'get p90', 'peer requests per get'], loneRows, [
          `Each replica does ${lone} gets of random keys one after another, all 3 replicas at once, in each of ${rounds} rounds; percentiles over all of them.`,
          'About 2 gets in 3 ask another replica (p50 and p90 are such gets); the third is a local hit. A lone remote get waits out the window before its request leaves.',
        ])
      })(),
      600_000,
      'B9',
    )
  } finally {
    await stopReplicas(replicas)
  }
}

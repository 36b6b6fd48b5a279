// B11: what groupcache/otel costs on a local hit: first with no SDK
// registered (it must cost nothing), then with one (a span per traced get).

import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base'
import { Groupcache } from 'groupcache'
import { type Instrumentation, instrument } from 'groupcache/otel'
import { fmtNs, fmtRatio, median, nsPerOp, printTable, quick, record } from './lib.js'

const KEYS = 10_000
const VALUE = 'x'.repeat(1024)

// `gc()` without restarting node with --expose-gc (as B7 does): the flag
// takes effect for contexts made after it is set.
setFlagsFromString('--expose-gc')
const collect = runInNewContext('gc') as () => void

/** run measures B11 and prints its table. */
export async function run(): Promise<void> {
  const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`)
  const key = (i: number): string => keys[i % KEYS] as string
  const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
  // One group for every row: the rows differ only in what is subscribed.
  const group = gc.newGroup<string>({ name: 'g', maxBytes: 64 << 20, codec: 'string', load: () => VALUE })
  const get = (i: number): Promise<string> => group.get(key(i))
  const rounds = quick ? 3 : 7
  const seconds = quick ? 0.2 : 0.7
  const handles: Instrumentation[] = []
  try {
    for (const k of keys) await group.get(k)
    const loadsBefore = group.stats.loads
    let live: Instrumentation | undefined
    const instrumented = (options?: Parameters<typeof instrument>[1]) => ({
      before: () => {
        live = instrument(gc, options)
        handles.push(live)
      },
      after: () => live?.uninstrument(),
    })

    // Phase 1, before any SDK: instrument() finds none and subscribes to nothing.
    const probe = instrument(gc)
    probe.uninstrument()
    if (probe.traces || probe.metrics) throw new Error('B11: instrument() found an SDK before one was registered')
    const idleNs = await interleaved(rounds, seconds, {
      plain: { op: get },
      idle: { op: get, ...instrumented() },
    })

    // Phase 2: an SDK (spans to an exporter that drops them). Its context
    // manager turns on AsyncLocalStorage, which slows every promise, so this
    // phase has a baseline of its own.
    const discard: SpanExporter = { export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} }
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(discard)] })
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    const parent = trace.setSpan(context.active(), tracerProvider.getTracer('bench').startSpan('request'))
    const inSpan = (i: number): Promise<string> => context.with(parent, get, undefined, i)
    const sdkNs = await interleaved(rounds, seconds, {
      plain: { op: get },
      orphan: { op: get, ...instrumented({ tracerProvider, metrics: false }) },
      plainInSpan: { op: inSpan },
      span: { op: inSpan, ...instrumented({ tracerProvider, metrics: false }) },
    })
    if (group.stats.loads !== loadsBefore) throw new Error('B11 timed a miss: every op must be a hit')

    const ratio = (idleNs.idle as number) / (idleNs.plain as number)
    printTable(
      'B11 — instrumentation cost on a local hit (`string` codec, 1 KB, 10k keys)',
      ['contender', 'time/op', 'time ratio', 'target'],
      [
        ['`get()`, not instrumented (baseline, no SDK)', fmtNs(idleNs.plain as number), '1.00×', '—'],
        [
          '`get()` after `instrument(gc)`, no SDK registered',
          fmtNs(idleNs.idle as number),
          fmtRatio(ratio),
          record('B11', '≤ 1.05× time/op', ratio <= 1.05),
        ],
        ['`get()`, not instrumented (baseline, SDK registered)', fmtNs(sdkNs.plain as number), '1.00×', '—'],
        [
          'instrumented, no active span: no span made (info)',
          fmtNs(sdkNs.orphan as number),
          fmtRatio((sdkNs.orphan as number) / (sdkNs.plain as number)),
          '—',
        ],
        ['`get()` inside an active span, not instrumented (baseline, SDK registered)', fmtNs(sdkNs.plainInSpan as number), '1.00×', '—'],
        [
          'instrumented, inside an active span: one `groupcache.get` span per hit (info)',
          fmtNs(sdkNs.span as number),
          fmtRatio((sdkNs.span as number) / (sdkNs.plainInSpan as number)),
          '—',
        ],
      ],
      [
        `median of ${rounds} rounds of ${seconds} s per contender, each round in mirrored order (A B, B A: two windows of half the time each, every window after a full garbage collection), one awaited op at a time; every op was checked to be a hit.`,
        'Without an SDK, `instrument()` subscribes to no channel, so a get pays one `hasSubscribers` read, as an uninstrumented one does.',
        'One group serves every row; an instrumented row calls `instrument()` before each of its rounds and `uninstrument()` after, since the channels are global.',
        'The SDK: BasicTracerProvider, a SimpleSpanProcessor and an exporter that drops the spans, and the AsyncLocalStorage context manager (which slows every promise, hence a baseline per phase).',
      ],
    )
  } finally {
    for (const handle of handles) handle.uninstrument()
    await gc.close()
  }
}

/**
 * interleaved measures each contender in rounds, each round in mirrored
 * order (A B C C B A), so that every contender takes every place in the
 * round equally often, and its round's figure is the mean of its two
 * windows of half the time. After B10 (in a full run, or `--only
 * B10,B11`), rounds in one order, alternating from round to round, read
 * the very same code at 1.17–1.32× itself (1.23× with a collection before
 * each window too); mirrored, 1.02×. Each window starts from a collected
 * heap, after calling the contender's `before`, and `after` follows it.
 * Returns each one's median ns/op.
 */
async function interleaved(
  rounds: number,
  seconds: number,
  contenders: Record<string, { op: (i: number) => unknown; before?: () => void; after?: () => void }>,
): Promise<Record<string, number>> {
  const samples: Record<string, number[]> = {}
  for (let r = -1; r < rounds; r++) {
    const order = Object.entries(contenders)
    const windows: Record<string, number[]> = {}
    for (const [name, { op, before, after }] of [...order, ...order.reverse()]) {
      collect()
      before?.()
      try {
        // Round -1 warms up.
        ;(windows[name] ??= []).push(await nsPerOp(op, r < 0 ? seconds / 4 : seconds / 2))
      } finally {
        after?.()
      }
    }
    if (r < 0) continue
    for (const [name, ns] of Object.entries(windows)) (samples[name] ??= []).push(ns.reduce((a, b) => a + b, 0) / ns.length)
  }
  return Object.fromEntries(Object.entries(samples).map(([name, ns]) => [name, median(ns)]))
}

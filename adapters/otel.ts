import { subscribe, type TracingChannel, type TracingChannelSubscribers, unsubscribe } from 'node:diagnostics_channel'
import {
  type Attributes,
  type BatchObservableCallback,
  type Context,
  context,
  createNoopMeter,
  diag,
  type Meter,
  type MeterProvider,
  metrics,
  type Observable,
  ProxyTracerProvider,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TracerProvider,
  trace,
} from '@opentelemetry/api'
import {
  type BatchTraceMessage,
  fetchManyTracing,
  fetchTracing,
  type Groupcache,
  GroupcacheError,
  getTracing,
  loadTracing,
  PEER_CHANNEL,
  PeerError,
  type PeerEvent,
  type ServeManyMessage,
  type ServeMessage,
  serveManyTracing,
  serveTracing,
  type TraceMessage,
} from '../src/index.js'
import {
  CACHE_COUNTERS,
  CACHE_GAUGES,
  CIRCUIT_GAUGE,
  DEFAULT_FETCH_BUCKETS,
  DEFAULT_METRIC_PREFIX,
  FETCH_HISTOGRAM,
  GROUP_COUNTERS,
} from './metrics.js'

/** SCOPE is the instrumentation scope of every span and metric. */
const SCOPE = 'groupcache'

/**
 * DEFAULT_REQUIRE_PARENT_SPAN: by default a span is made only inside a
 * trace (an active span here, or a peer's `traceparent`), so that a busy
 * cache does not start a trace of its own for every background get.
 */
export const DEFAULT_REQUIRE_PARENT_SPAN = true

/** OtelOptions say what `instrument` records and through which providers. */
export interface OtelOptions {
  /** tracerProvider makes the spans (default: the global one). */
  tracerProvider?: TracerProvider
  /** meterProvider makes the metrics (default: the global one). */
  meterProvider?: MeterProvider
  /** traces turns spans on or off (default true). */
  traces?: boolean
  /** metrics turns metrics on or off (default true). */
  metrics?: boolean
  /**
   * includeKeys records each key as `groupcache.key`, and errors whole
   * (their messages quote keys). Default false: keys are often personal data.
   */
  includeKeys?: boolean
  /**
   * keySanitizer, with `includeKeys`, turns a key into what is recorded
   * (undefined: nothing). Errors are then recorded by type only.
   */
  keySanitizer?: (key: string) => string | undefined
  /** requireParentSpan: make spans only inside a trace (default true). */
  requireParentSpan?: boolean
  /** prefix of every metric name (default 'groupcache_', as groupcache/prometheus). */
  prefix?: string
  /** buckets of the peer-fetch latency histogram, in seconds. */
  buckets?: number[]
}

/** Instrumentation is what `instrument` set up, and how to take it down. */
export interface Instrumentation {
  /** traces is true when spans are being made. */
  readonly traces: boolean
  /** metrics is true when metrics are being recorded. */
  readonly metrics: boolean
  /** uninstrument stops both; calling it again does nothing. */
  uninstrument(): void
}

/**
 * instrument turns a node's tracing channels into OpenTelemetry spans and
 * its counters into OpenTelemetry metrics (the names and meanings of
 * groupcache/prometheus). Spans: `groupcache.get` on the caller (source,
 * owner), `groupcache.fetch` for a peer fetch, which sends the trace on in
 * `traceparent` through the global propagator, `groupcache.serve` on the
 * owner, continuing the caller's trace, and `groupcache.load` around the
 * loader, current while it runs. A batch (`getMany`, `batchWindowMs`) makes
 * one fetch span per owner and one serve span per batch request, with
 * `groupcache.batch.size`. Without a registered SDK it subscribes to
 * nothing, so it costs nothing: call it after the SDK has started.
 */
export function instrument(gc: Groupcache, options: OtelOptions = {}): Instrumentation {
  const stops: Array<() => void> = []
  const tracerProvider = options.tracerProvider ?? trace.getTracerProvider()
  const traces = options.traces !== false && isRegistered(tracerProvider)
  if (traces) stops.push(traceSpans(gc, tracerProvider, options))
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE)
  const measured = options.metrics !== false && meter !== createNoopMeter()
  if (measured) stops.push(recordMetrics(gc, meter, options))
  if (!traces && !measured)
    diag.warn('groupcache/otel: no tracer or meter provider is registered: call instrument() after starting the SDK')
  let stopped = false
  return {
    traces,
    metrics: measured,
    uninstrument() {
      if (stopped) return
      stopped = true
      for (const stop of stops) stop()
    },
  }
}

/**
 * isRegistered tells an SDK's provider from the API's own, which hands out
 * no-op tracers until an SDK registers one.
 */
function isRegistered(provider: TracerProvider): boolean {
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== new ProxyTracerProvider().getDelegate()
}

function traceSpans(gc: Groupcache, provider: TracerProvider, options: OtelOptions): () => void {
  const tracer = provider.getTracer(SCOPE)
  const requireParent = options.requireParentSpan ?? DEFAULT_REQUIRE_PARENT_SPAN
  const sanitize = options.includeKeys === true ? (options.keySanitizer ?? ((key: string) => key)) : undefined
  const wholeErrors = options.includeKeys === true && options.keySanitizer === undefined
  const spans = new WeakMap<TraceMessage | BatchTraceMessage, Span>()

  /**
   * begin starts a span for this node's message and makes it current for
   * the operation. A batch's span has its size, and its keys with `includeKeys`.
   */
  const begin = (
    message: TraceMessage | BatchTraceMessage,
    name: string,
    kind: SpanKind,
    parent: Context,
    attributes: Attributes,
  ): Context | undefined => {
    if (message.self !== gc.self) return undefined
    const parentSpan = trace.getSpanContext(parent)
    if (requireParent && (parentSpan === undefined || !trace.isSpanContextValid(parentSpan))) return undefined
    attributes['groupcache.group'] = message.group
    if ('keys' in message) {
      attributes['groupcache.batch.size'] = message.keys.length
      const keys = sanitize === undefined ? undefined : safely(() => sanitizeAll(message.keys, sanitize))
      if (keys !== undefined && keys.length > 0) attributes['groupcache.keys'] = keys
    } else {
      const key = sanitize === undefined ? undefined : safely(() => sanitize(message.key))
      if (key !== undefined) attributes['groupcache.key'] = key
    }
    const span = tracer.startSpan(name, { kind, attributes }, parent)
    spans.set(message, span)
    const active = trace.setSpan(parent, span)
    const run = <R>(operation: () => R): R => context.with(active, operation)
    const outer = message.wrap
    message.wrap = outer === undefined ? run : (operation) => outer(() => run(operation))
    return active
  }
  /** finish ends the message's span, if it has one, with what `describe` adds once the operation is over. */
  const finish = <M extends TraceMessage | BatchTraceMessage>(message: M, describe?: (span: Span, message: M) => void): void => {
    const span = spans.get(message)
    if (span === undefined) return
    spans.delete(message)
    describe?.(span, message)
    if (message.error !== undefined) {
      const type = errorType(message.error)
      span.setAttribute('error.type', type)
      if (wholeErrors && message.error instanceof Error) span.recordException(message.error)
      span.setStatus({ code: SpanStatusCode.ERROR, message: wholeErrors && message.error instanceof Error ? message.error.message : type })
    }
    span.end()
  }

  /** serve starts the owner's span, continuing the peer's trace. */
  const serve = (m: ServeMessage | ServeManyMessage): void => {
    // An HTTP instrumentation may already have continued the peer's
    // trace in a span of its own: nest under that, else continue it here.
    const active = context.active()
    const parent = trace.getSpan(active) === undefined ? propagation.extract(active, m.headers) : active
    begin(m, 'groupcache.serve', SpanKind.SERVER, parent, {})
  }

  const unsubscribes = [
    on(getTracing, {
      start: (m) => void begin(m, 'groupcache.get', SpanKind.INTERNAL, context.active(), {}),
      asyncEnd: (m) =>
        finish(m, (span) => {
          if (m.source !== undefined) span.setAttribute('groupcache.source', m.source)
          if (m.owner !== undefined) span.setAttribute('groupcache.owner', m.owner)
        }),
    }),
    on(fetchTracing, {
      start: (m) => {
        const active = begin(m, 'groupcache.fetch', SpanKind.CLIENT, context.active(), { 'groupcache.peer': m.peer })
        if (active !== undefined) propagation.inject(active, m.headers)
      },
      // As groupcache:peer has it: `error` when the owner could not answer
      // (the key then loads here), `verdict` for the owner's own error.
      asyncEnd: (m) =>
        finish(m, (span) =>
          span.setAttribute('groupcache.outcome', m.error === undefined ? 'ok' : m.error instanceof PeerError ? 'error' : 'verdict'),
        ),
    }),
    on(fetchManyTracing, {
      start: (m) => {
        const active = begin(m, 'groupcache.fetch', SpanKind.CLIENT, context.active(), { 'groupcache.peer': m.peer })
        if (active !== undefined) propagation.inject(active, m.headers)
      },
      // The worst outcome among the keys; the owner failing to answer some
      // of them (they load here) is the span's error, as for one key.
      asyncEnd: (m) =>
        finish(m, (span) => {
          const outcome = m.error === undefined ? m.outcome : m.error instanceof PeerError ? 'error' : 'verdict'
          if (outcome !== undefined) span.setAttribute('groupcache.outcome', outcome)
          if (outcome === 'error' && m.error === undefined) {
            span.setAttribute('error.type', PEER_ERROR)
            span.setStatus({ code: SpanStatusCode.ERROR, message: PEER_ERROR })
          }
        }),
    }),
    on(serveTracing, { start: (m) => serve(m), asyncEnd: (m) => finish(m) }),
    on(serveManyTracing, { start: (m) => serve(m), asyncEnd: (m) => finish(m) }),
    on(loadTracing, {
      start: (m) => void begin(m, 'groupcache.load', SpanKind.INTERNAL, context.active(), { 'groupcache.for_peer': m.forPeer }),
      asyncEnd: (m) => finish(m),
    }),
  ]
  return () => {
    for (const stop of unsubscribes) stop()
  }
}

/** on subscribes to the two events a span needs; the others cost nothing unheard. */
function on<M extends TraceMessage | BatchTraceMessage>(
  channel: TracingChannel<unknown, M>,
  handlers: Pick<TracingChannelSubscribers<M>, 'start' | 'asyncEnd'>,
): () => void {
  const all = handlers as TracingChannelSubscribers<M>
  channel.subscribe(all)
  return () => channel.unsubscribe(all)
}

function recordMetrics(gc: Groupcache, meter: Meter, options: OtelOptions): () => void {
  const prefix = options.prefix ?? DEFAULT_METRIC_PREFIX
  const groupCounters = GROUP_COUNTERS.map(
    ([field, name, description]) => [field, meter.createObservableCounter(prefix + name, { description })] as const,
  )
  const cacheGauges = CACHE_GAUGES.map(
    ([field, name, description]) =>
      [field, meter.createObservableGauge(prefix + name, field === 'bytes' ? { description, unit: 'By' } : { description })] as const,
  )
  const cacheCounters = CACHE_COUNTERS.map(
    ([field, name, description]) => [field, meter.createObservableCounter(prefix + name, { description })] as const,
  )
  const circuit = meter.createObservableGauge(prefix + CIRCUIT_GAUGE[0], { description: CIRCUIT_GAUGE[1] })
  const observables: Observable[] = [...[...groupCounters, ...cacheGauges, ...cacheCounters].map(([, o]) => o), circuit]
  // One stats() snapshot per collection, as prom-client's scrape does.
  const collect: BatchObservableCallback = (result) => {
    const stats = gc.stats()
    for (const [group, g] of Object.entries(stats.groups)) {
      for (const [field, counter] of groupCounters) result.observe(counter, g.stats[field], { group })
      for (const cache of ['main', 'hot'] as const) {
        for (const [field, gauge] of cacheGauges) result.observe(gauge, g[cache][field], { group, cache })
        for (const [field, counter] of cacheCounters) result.observe(counter, g[cache][field], { group, cache })
      }
    }
    for (const p of stats.peers) if (!p.self) result.observe(circuit, p.state === 'closed' ? 0 : 1, { peer: p.peer })
  }
  meter.addBatchObservableCallback(collect, observables)
  const latency = meter.createHistogram(prefix + FETCH_HISTOGRAM[0], {
    description: FETCH_HISTOGRAM[1],
    unit: 's',
    advice: { explicitBucketBoundaries: options.buckets ?? [...DEFAULT_FETCH_BUCKETS] },
  })
  const onPeer = (message: unknown): void => {
    const event = message as PeerEvent
    // The channel carries every instance's events: keep this node's.
    if (event.self !== gc.self || gc.getGroup(event.group) === undefined) return
    latency.record(event.durationMs / 1000, { peer: event.peer, outcome: event.outcome })
  }
  subscribe(PEER_CHANNEL, onPeer)
  return () => {
    unsubscribe(PEER_CHANNEL, onPeer)
    meter.removeBatchObservableCallback(collect, observables)
  }
}

/** PEER_ERROR is PeerError's code: an owner that could not answer. */
const PEER_ERROR = 'ERR_GROUPCACHE_PEER'

/**
 * sanitizeAll turns a batch's keys into what is recorded, leaving out those
 * the sanitizer records nothing for.
 */
function sanitizeAll(keys: readonly string[], sanitize: (key: string) => string | undefined): string[] {
  const out: string[] = []
  for (const key of keys) {
    const recorded = sanitize(key)
    if (recorded !== undefined) out.push(recorded)
  }
  return out
}

/** errorType names an error by its stable code when it has one: never its message, which may quote a key. */
function errorType(error: unknown): string {
  if (error instanceof GroupcacheError) return error.code
  return error instanceof Error ? error.name : typeof error
}

/** safely runs a user's function inside a channel subscriber, where a throw would crash the process. */
function safely<R>(fn: () => R): R | undefined {
  try {
    return fn()
  } catch (err) {
    diag.error('groupcache/otel: keySanitizer threw', err)
    return undefined
  }
}

export default instrument

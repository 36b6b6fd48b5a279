import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AggregationTemporality, type DataPoint, type Histogram, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import type { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base'
import { Registry } from 'prom-client'
import { instrument } from '../../adapters/otel.js'
import { registerMetrics } from '../../adapters/prometheus.js'
import {
  fetchManyTracing,
  fetchTracing,
  Groupcache,
  getTracing,
  loadTracing,
  NotFoundError,
  serveManyTracing,
  serveTracing,
} from '../../src/index.js'
import { startCluster } from '../helpers/cluster.js'
import { keyOwnedBy, startLocalNodes } from '../helpers/local.js'
import { mentions, records, registerTracing, type SpanRecord } from '../helpers/otel.js'
import { rawRequest } from '../helpers/raw.js'

const anyTraced = (): boolean =>
  [getTracing, fetchTracing, loadTracing, serveTracing, fetchManyTracing, serveManyTracing].some((c) => c.hasSubscribers)

/** inSpan runs `fn` inside an active span named `request`, as an instrumented route handler would. */
function inSpan<T>(fn: () => Promise<T>): Promise<T> {
  return trace.getTracer('test').startActiveSpan('request', async (span) => {
    try {
      return await fn()
    } finally {
      span.end()
    }
  })
}

function named(spans: SpanRecord[], name: string): SpanRecord[] {
  return spans.filter((s) => s.name === name)
}

function one(spans: SpanRecord[], name: string): SpanRecord {
  const found = named(spans, name)
  assert.equal(found.length, 1, `expected one ${name} span, got ${found.length}: ${spans.map((s) => s.name).join(', ')}`)
  return found[0]!
}

/** TestReader collects metrics on demand. */
class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE })
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

// Runs before the SDK is registered (below): node:test runs a file's tests in order.
test('instrument() without an SDK registered subscribes to nothing, so an untraced get pays for nothing', async () => {
  const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
  const otel = instrument(gc)
  try {
    assert.deepEqual([otel.traces, otel.metrics], [false, false])
    assert.equal(anyTraced(), false)
  } finally {
    otel.uninstrument()
    await gc.close()
  }
})

describe('with an OpenTelemetry SDK', () => {
  let exporter: InMemorySpanExporter
  before(() => {
    exporter = registerTracing()
  })

  test("a get on A for a key B owns is one trace: A's get and fetch, B's serve and load, each the child of the one before; no key recorded", async () => {
    const cluster = await startCluster(2, () => ({ otel: {}, promote: false }))
    try {
      const [a, b] = cluster.nodes as [NonNullable<(typeof cluster.nodes)[0]>, NonNullable<(typeof cluster.nodes)[1]>]
      let key = ''
      for (let i = 0; key === ''; i++) if ((await a.owner(`user-${i}@example.com`)) === b.url) key = `user-${i}@example.com`
      assert.equal(await a.tracedGet(key), `value-of:${key}`)
      const onA = await a.spans()
      const onB = await b.spans()
      const request = one(onA, 'request')
      const get = one(onA, 'groupcache.get')
      const fetch = one(onA, 'groupcache.fetch')
      const serve = one(onB, 'groupcache.serve')
      const load = one(onB, 'groupcache.load')
      for (const span of [get, fetch, serve, load]) assert.equal(span.traceId, request.traceId, `${span.name} is in the request's trace`)
      assert.equal(get.parentSpanId, request.spanId)
      assert.equal(fetch.parentSpanId, get.spanId)
      assert.equal(serve.parentSpanId, fetch.spanId)
      assert.equal(load.parentSpanId, serve.spanId)
      assert.deepEqual(
        [get.kind, fetch.kind, serve.kind, load.kind],
        [SpanKind.INTERNAL, SpanKind.CLIENT, SpanKind.SERVER, SpanKind.INTERNAL],
      )
      assert.deepEqual(get.attributes, { 'groupcache.group': 'test', 'groupcache.source': 'peer', 'groupcache.owner': b.url })
      assert.deepEqual(fetch.attributes, { 'groupcache.group': 'test', 'groupcache.peer': b.url, 'groupcache.outcome': 'ok' })
      assert.deepEqual(load.attributes, { 'groupcache.group': 'test', 'groupcache.for_peer': true })
      for (const span of [...onA, ...onB]) assert.equal(mentions(span, key), false, `${span.name} mentions the key`)
    } finally {
      await cluster.stop()
    }
  })

  test("a getMany on A of keys B owns is one trace: one fetch span for the batch, B's serve span under it and a load per key under that; no key recorded", async () => {
    const cluster = await startCluster(2, () => ({ otel: {}, promote: false, handoffMs: 0 }))
    try {
      const [a, b] = cluster.nodes as [NonNullable<(typeof cluster.nodes)[0]>, NonNullable<(typeof cluster.nodes)[1]>]
      const keys: string[] = []
      for (let i = 0; keys.length < 5; i++) if ((await a.owner(`user-${i}@example.com`)) === b.url) keys.push(`user-${i}@example.com`)
      assert.deepEqual(
        await a.tracedGetMany(keys),
        keys.map((key) => [key, `value-of:${key}`]),
      )
      const onA = await a.spans()
      const onB = await b.spans()
      const request = one(onA, 'request')
      const fetch = one(onA, 'groupcache.fetch')
      const serve = one(onB, 'groupcache.serve')
      const loads = named(onB, 'groupcache.load')
      assert.equal(loads.length, keys.length)
      for (const span of [fetch, serve, ...loads]) assert.equal(span.traceId, request.traceId, `${span.name} is in the request's trace`)
      assert.equal(fetch.parentSpanId, request.spanId)
      assert.equal(serve.parentSpanId, fetch.spanId)
      for (const load of loads) assert.equal(load.parentSpanId, serve.spanId)
      assert.deepEqual([fetch.kind, serve.kind], [SpanKind.CLIENT, SpanKind.SERVER])
      assert.deepEqual(fetch.attributes, {
        'groupcache.group': 'test',
        'groupcache.peer': b.url,
        'groupcache.batch.size': keys.length,
        'groupcache.outcome': 'ok',
      })
      assert.deepEqual(serve.attributes, { 'groupcache.group': 'test', 'groupcache.batch.size': keys.length })
      for (const span of [...onA, ...onB]) for (const key of keys) assert.equal(mentions(span, key), false, `${span.name} mentions ${key}`)
    } finally {
      await cluster.stop()
    }
  })

  test('a batch records its keys only with includeKeys, through keySanitizer; an owner that cannot answer makes its fetch span an error', async () => {
    exporter.reset()
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ handoffMs: 0 }))
    const sanitizer = (key: string): string | undefined => (key.startsWith('secret') ? undefined : key.replace(/@.*/, '@***'))
    const otel = nodes.map((gc) => instrument(gc, { includeKeys: true, keySanitizer: sanitizer }))
    try {
      const groups = nodes.map((gc) =>
        gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', promote: false, load: (k) => `v:${k}` }),
      )
      const keys = [keyOwnedBy(nodes[0]!, urls[1]!, 'a@x.org-'), keyOwnedBy(nodes[0]!, urls[1]!, 'secret-')]
      await inSpan(() => groups[0]!.getMany(keys))
      const spans = records(exporter)
      const recorded = [`${keys[0]!.replace(/@.*/, '@***')}`]
      assert.deepEqual(one(spans, 'groupcache.fetch').attributes['groupcache.keys'], recorded)
      assert.deepEqual(one(spans, 'groupcache.serve').attributes['groupcache.keys'], recorded)
      assert.equal(
        spans.some((span) => mentions(span, 'x.org') || mentions(span, keys[1]!)),
        false,
      )
      // The owner gone, the batch's keys load here: the fetch span says so.
      exporter.reset()
      await nodes[1]!.close()
      const down = [keyOwnedBy(nodes[0]!, urls[1]!, 'down-a-'), keyOwnedBy(nodes[0]!, urls[1]!, 'down-b-')]
      assert.deepEqual(
        [...(await inSpan(() => groups[0]!.getMany(down))).values()],
        down.map((key) => `v:${key}`),
      )
      const fetch = one(records(exporter), 'groupcache.fetch')
      assert.deepEqual(
        [fetch.attributes['groupcache.outcome'], fetch.attributes['error.type'], fetch.status.code],
        ['error', 'ERR_GROUPCACHE_PEER', SpanStatusCode.ERROR],
      )
      assert.equal(fetch.attributes['groupcache.batch.size'], 2)
    } finally {
      for (const o of otel) o.uninstrument()
      await closeAll()
    }
  })

  test('a local miss, a hit and a hot copy each say where the value came from; a span made in the loader is a child of the load', async () => {
    exporter.reset()
    const { nodes, urls, closeAll } = await startLocalNodes(2)
    const otel = instrument(nodes[0]!)
    try {
      const tracer = trace.getTracer('test')
      const groups = nodes.map((gc) =>
        gc.newGroup<string>({
          name: 'g',
          maxBytes: 1 << 20,
          codec: 'string',
          promote: true,
          load: (k) => tracer.startActiveSpan('db.query', (span) => (span.end(), `v:${k}`)),
        }),
      )
      const mine = keyOwnedBy(nodes[0]!, urls[0]!)
      const theirs = keyOwnedBy(nodes[0]!, urls[1]!)
      await inSpan(async () => {
        for (const key of [mine, mine, theirs, theirs]) await groups[0]!.get(key)
      })
      const spans = records(exporter)
      assert.deepEqual(
        named(spans, 'groupcache.get').map((s) => [s.attributes['groupcache.source'], s.attributes['groupcache.owner']]),
        [
          ['load', urls[0]],
          ['hit', undefined],
          ['peer', urls[1]],
          ['hot', undefined],
        ],
      )
      const load = one(spans, 'groupcache.load')
      assert.equal(load.parentSpanId, named(spans, 'groupcache.get')[0]!.spanId)
      assert.equal(load.attributes['groupcache.for_peer'], false)
      // Node 1 is not instrumented: its load for node 0 makes a db.query span, but no groupcache span.
      const queries = named(spans, 'db.query')
      assert.equal(queries.length, 2)
      assert.equal(queries.filter((q) => q.parentSpanId === load.spanId).length, 1)
      assert.equal(named(spans, 'groupcache.serve').length, 0)
    } finally {
      otel.uninstrument()
      await closeAll()
    }
  })

  test("an owner's verdict and an owner that cannot answer are told apart on the fetch span; the local load after the second is in the same trace", async () => {
    exporter.reset()
    const { nodes, urls, closeAll } = await startLocalNodes(2)
    const otel = instrument(nodes[0]!)
    try {
      const groups = nodes.map((gc) =>
        gc.newGroup<string>({
          name: 'g',
          maxBytes: 1 << 20,
          codec: 'string',
          promote: false,
          load: (k) => {
            if (k.startsWith('nf')) throw new NotFoundError('no')
            return k
          },
        }),
      )
      await inSpan(() => assert.rejects(groups[0]!.get(keyOwnedBy(nodes[0]!, urls[1]!, 'nf')), { code: 'ERR_GROUPCACHE_NOT_FOUND' }))
      await nodes[1]!.close()
      await inSpan(() => groups[0]!.get(keyOwnedBy(nodes[0]!, urls[1]!, 'down')))
      const spans = records(exporter)
      const fetches = named(spans, 'groupcache.fetch')
      assert.deepEqual(
        fetches.map((s) => [s.attributes['groupcache.outcome'], s.attributes['error.type'], s.status.code]),
        [
          ['verdict', 'ERR_GROUPCACHE_NOT_FOUND', SpanStatusCode.ERROR],
          ['error', 'ERR_GROUPCACHE_PEER', SpanStatusCode.ERROR],
        ],
      )
      const load = one(spans, 'groupcache.load')
      const get = named(spans, 'groupcache.get')[1]!
      assert.equal(load.parentSpanId, get.spanId)
      assert.deepEqual([get.attributes['groupcache.source'], get.status.code], ['load', SpanStatusCode.UNSET])
    } finally {
      otel.uninstrument()
      await closeAll()
    }
  })

  test('no span without a parent unless requireParentSpan is false', async () => {
    exporter.reset()
    const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => k })
    let otel = instrument(gc)
    try {
      await g.get('a')
      assert.deepEqual(records(exporter), [])
      otel.uninstrument()
      otel = instrument(gc, { requireParentSpan: false })
      await g.get('b')
      const spans = records(exporter)
      assert.deepEqual(
        spans.map((s) => s.name),
        ['groupcache.load', 'groupcache.get'],
      )
      assert.equal(one(spans, 'groupcache.get').parentSpanId, undefined)
    } finally {
      otel.uninstrument()
      await gc.close()
    }
  })

  test('keys are recorded only with includeKeys, through keySanitizer if given; errors say their code, never their message, unless keys may be recorded', async () => {
    const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
    const g = gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (k) => {
        throw new NotFoundError(`no user ${k}`)
      },
    })
    const run = async (options: Parameters<typeof instrument>[1]): Promise<SpanRecord> => {
      exporter.reset()
      const otel = instrument(gc, options)
      try {
        await inSpan(() => assert.rejects(g.get('alice@example.com'), { code: 'ERR_GROUPCACHE_NOT_FOUND' }))
      } finally {
        otel.uninstrument()
      }
      return one(records(exporter), 'groupcache.get')
    }
    try {
      const quiet = await run({})
      assert.equal(mentions(quiet, 'alice'), false)
      assert.deepEqual(quiet.status, { code: SpanStatusCode.ERROR, message: 'ERR_GROUPCACHE_NOT_FOUND' })
      assert.equal(quiet.attributes['error.type'], 'ERR_GROUPCACHE_NOT_FOUND')
      const sanitized = await run({ includeKeys: true, keySanitizer: (key) => key.replace(/^[^@]*/, '***') })
      assert.equal(sanitized.attributes['groupcache.key'], '***@example.com')
      assert.equal(mentions(sanitized, 'alice'), false)
      const whole = await run({ includeKeys: true })
      assert.equal(whole.attributes['groupcache.key'], 'alice@example.com')
      assert.equal(whole.status.message, 'no user alice@example.com')
      assert.deepEqual(
        whole.events.map((e) => e.name),
        ['exception'],
      )
      // A sanitizer that throws records no key, and the get goes on.
      const thrown = await run({
        includeKeys: true,
        keySanitizer: () => {
          throw new Error('bug')
        },
      })
      assert.equal(thrown.attributes['groupcache.key'], undefined)
    } finally {
      await gc.close()
    }
  })

  test('an instance traces only its own operations, and uninstrument stops it', async () => {
    exporter.reset()
    const { nodes, urls, closeAll } = await startLocalNodes(2)
    const otel = instrument(nodes[0]!)
    try {
      const groups = nodes.map((gc) => gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => k }))
      await inSpan(() => groups[1]!.get(keyOwnedBy(nodes[1]!, urls[1]!)))
      assert.deepEqual(
        records(exporter).map((s) => s.name),
        ['request'],
      )
      otel.uninstrument()
      otel.uninstrument()
      assert.equal(anyTraced(), false)
    } finally {
      await closeAll()
    }
  })

  test("a peer's forged or garbage traceparent is served like any request, and starts no span", async () => {
    exporter.reset()
    const { nodes, urls, closeAll } = await startLocalNodes(1)
    const otel = instrument(nodes[0]!)
    try {
      nodes[0]!.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => k })
      const port = Number(new URL(urls[0]!).port)
      for (const traceparent of [
        'garbage',
        '00-00000000000000000000000000000000-0000000000000000-01',
        `00-${'f'.repeat(32)}-${'z'.repeat(16)}-01`,
        'x'.repeat(8000),
      ]) {
        const res = await rawRequest(port, '/_groupcache/g/k', { headers: { traceparent, tracestate: '=,=,=' } })
        assert.equal(res.status, 200, traceparent.slice(0, 40))
      }
      assert.deepEqual(records(exporter), [])
    } finally {
      otel.uninstrument()
      await closeAll()
    }
  })

  test('metrics have the names, labels and values of groupcache/prometheus', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2)
    const reader = new TestReader()
    const otel = instrument(nodes[0]!, { traces: false, meterProvider: new MeterProvider({ readers: [reader] }) })
    const registry = new Registry()
    const prom = registerMetrics(nodes[0]!, { registry })
    try {
      assert.deepEqual([otel.traces, otel.metrics], [false, true])
      const groups = nodes.map((gc) =>
        gc.newGroup<string>({ name: 'users', maxBytes: 1 << 20, codec: 'string', promote: true, load: (k) => k }),
      )
      const mine = keyOwnedBy(nodes[0]!, urls[0]!)
      const theirs = keyOwnedBy(nodes[0]!, urls[1]!)
      for (const key of [mine, mine, theirs, theirs]) await groups[0]!.get(key)
      const { resourceMetrics, errors } = await reader.collect()
      assert.deepEqual(errors, [])
      const otelMetrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)
      const promNames = (await registry.getMetricsAsJSON()).map((m) => m.name).sort()
      assert.deepEqual(otelMetrics.map((m) => m.descriptor.name).sort(), promNames)
      const value = async (name: string, labels: Record<string, string>): Promise<unknown> => {
        const metric = (await reader.collect()).resourceMetrics.scopeMetrics
          .flatMap((s) => s.metrics)
          .find((m) => m.descriptor.name === name)
        const points = (metric?.dataPoints ?? []) as Array<DataPoint<unknown>>
        return points.find((p) => Object.entries(labels).every(([k, v]) => p.attributes[k] === v))?.value
      }
      assert.equal(await value('groupcache_gets_total', { group: 'users' }), 4)
      assert.equal(await value('groupcache_cache_hits_total', { group: 'users' }), 2)
      assert.equal(await value('groupcache_local_loads_total', { group: 'users' }), 1)
      assert.equal(await value('groupcache_peer_loads_total', { group: 'users' }), 1)
      assert.equal(await value('groupcache_lru_items', { group: 'users', cache: 'hot' }), 1)
      assert.equal(await value('groupcache_peer_circuit_open', { peer: urls[1]! }), 0)
      const fetches = async (): Promise<number | undefined> =>
        ((await value('groupcache_peer_fetch_duration_seconds', { peer: urls[1]!, outcome: 'ok' })) as Histogram | undefined)?.count
      assert.equal(await fetches(), 1)
      // Once uninstrumented, nothing more is counted.
      otel.uninstrument()
      await groups[0]!.get(keyOwnedBy(nodes[0]!, urls[1]!, 'later-'))
      assert.equal(await value('groupcache_gets_total', { group: 'users' }), 4)
      assert.equal(await fetches(), 1)
    } finally {
      otel.uninstrument()
      prom.unregister()
      await closeAll()
    }
  })

  after(() => {
    exporter.reset()
  })
})

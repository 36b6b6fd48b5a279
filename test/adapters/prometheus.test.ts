import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { Histogram, Registry } from 'prom-client'
import { registerMetrics } from '../../adapters/prometheus.js'
import { keyOwnedBy, startLocalNodes } from '../helpers/local.js'
import { waitFor } from '../helpers/wait.js'

function valueOf(text: string, metric: string): number {
  const line = text.split('\n').find((l) => l.startsWith(metric))
  assert.ok(line, `no ${metric} in:\n${text}`)
  return Number(line.slice(line.lastIndexOf(' ') + 1))
}

test('registerMetrics exposes the counters, the caches, the circuits and peer-fetch latency', async () => {
  const { nodes, urls, closeAll } = await startLocalNodes(2)
  const registry = new Registry()
  const metrics = registerMetrics(nodes[0]!, { registry })
  try {
    const groups = nodes.map((gc) =>
      gc.newGroup<string>({ name: 'users', maxBytes: 1 << 20, codec: 'string', promote: true, load: (k) => k }),
    )
    const mine = keyOwnedBy(nodes[0]!, urls[0]!)
    const theirs = keyOwnedBy(nodes[0]!, urls[1]!)
    for (const key of [mine, mine, theirs, theirs]) await groups[0]!.get(key)
    const text = await registry.metrics()
    assert.equal(valueOf(text, 'groupcache_gets_total{group="users"}'), 4)
    assert.equal(valueOf(text, 'groupcache_cache_hits_total{group="users"}'), 2)
    assert.equal(valueOf(text, 'groupcache_local_loads_total{group="users"}'), 1)
    assert.equal(valueOf(text, 'groupcache_peer_loads_total{group="users"}'), 1)
    assert.equal(valueOf(text, 'groupcache_lru_items{group="users",cache="main"}'), 1)
    assert.equal(valueOf(text, 'groupcache_lru_items{group="users",cache="hot"}'), 1)
    assert.equal(valueOf(text, `groupcache_peer_circuit_open{peer="${urls[1]}"}`), 0)
    assert.equal(valueOf(text, `groupcache_peer_fetch_duration_seconds_count{peer="${urls[1]}",outcome="ok"}`), 1)
    // Scraping twice counts nothing twice.
    assert.equal(valueOf(await registry.metrics(), 'groupcache_gets_total{group="users"}'), 4)
  } finally {
    metrics.unregister()
    assert.equal(await registry.metrics(), '\n')
    await closeAll()
  }
})

test('stale hits, refreshes and failed refreshes are counted, in the metrics and in _stats', async () => {
  let now = 1_000_000
  const { nodes, urls, closeAll } = await startLocalNodes(1, () => ({ now: () => now }))
  const registry = new Registry()
  const metrics = registerMetrics(nodes[0]!, { registry })
  try {
    let calls = 0
    const group = nodes[0]!.newGroup<string>({
      name: 'users',
      maxBytes: 1 << 20,
      codec: 'string',
      ttlMs: 1_000,
      staleMs: 10_000,
      load: (k) => {
        if (++calls > 1) throw new Error('down')
        return k
      },
    })
    await group.get('k')
    now += 1_000
    await group.get('k')
    await group.get('k')
    await waitFor('the failed refresh', () => group.stats.refreshErrors === 1)
    const text = await registry.metrics()
    assert.equal(valueOf(text, 'groupcache_stale_hits_total{group="users"}'), 2)
    assert.equal(valueOf(text, 'groupcache_refreshes_total{group="users"}'), 1)
    assert.equal(valueOf(text, 'groupcache_refresh_errors_total{group="users"}'), 1)
    const res = await fetch(`${urls[0]}/_groupcache/_stats`)
    const body = (await res.json()) as { groups: { users: { stats: Record<string, number> } } }
    assert.deepEqual(
      [body.groups.users.stats.staleHits, body.groups.users.stats.refreshes, body.groups.users.stats.refreshErrors],
      [2, 1, 1],
    )
  } finally {
    metrics.unregister()
    await closeAll()
  }
})

test('the Grafana dashboard in examples/ is valid JSON, and every query names only metrics that registerMetrics registers', async () => {
  const dashboard = JSON.parse(readFileSync(new URL('../../examples/grafana/groupcache.json', import.meta.url), 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }> }>
    templating: { list: Array<{ name: string; definition: string }> }
  }
  const registry = new Registry()
  const { nodes, closeAll } = await startLocalNodes(1)
  const metrics = registerMetrics(nodes[0]!, { registry })
  try {
    const registered = (await registry.getMetricsAsJSON()).map((m) => ({
      name: m.name,
      histogram: registry.getSingleMetric(m.name) instanceof Histogram,
    }))
    // A histogram's series are its name plus _bucket, _sum or _count.
    const exists = (series: string): boolean =>
      registered.some((m) => series === m.name || (m.histogram && ['_bucket', '_sum', '_count'].some((s) => series === m.name + s)))
    const queries = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => [p.title, t.expr] as const)),
      ...dashboard.templating.list.map((v) => [`$${v.name}`, v.definition] as const),
    ]
    assert.ok(dashboard.panels.length >= 6)
    for (const [where, query] of queries) {
      const names = query.match(/\bgroupcache_[a-z_]+\b/g) ?? []
      assert.ok(names.length > 0, `${where} queries no groupcache metric: ${query}`)
      for (const name of names) assert.ok(exists(name), `${where} queries ${name}, which registerMetrics does not register`)
    }
    for (const panel of dashboard.panels) assert.ok((panel.targets ?? []).length > 0, `${panel.title} has a query`)
  } finally {
    metrics.unregister()
    await closeAll()
  }
})

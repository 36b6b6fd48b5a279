import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client'
import type { Groupcache, GroupStats, PeerEvent } from '../src/index.js'

/** PrometheusOptions say where and how the metrics are registered. */
export interface PrometheusOptions {
  /** registry to register in (default: prom-client's global registry). */
  registry?: Registry | undefined
  /** prefix of every metric name (default 'groupcache_'). */
  prefix?: string | undefined
  /** buckets of the peer-fetch latency histogram, in seconds. */
  buckets?: number[] | undefined
}

// Go's counter names, as Prometheus names them.
const GROUP_COUNTERS: Array<[keyof GroupStats, string, string]> = [
  ['gets', 'gets_total', 'Gets, local or on behalf of a peer.'],
  ['cacheHits', 'cache_hits_total', 'Gets answered from the main or hot cache.'],
  ['peerLoads', 'peer_loads_total', 'Values fetched from their owner.'],
  ['peerErrors', 'peer_errors_total', 'Failed peer fetches (each then loaded locally).'],
  ['loads', 'loads_total', 'Gets that missed the cache.'],
  ['loadsDeduped', 'loads_deduped_total', 'Loads that ran after merging concurrent ones.'],
  ['localLoads', 'local_loads_total', 'Successful loader runs on this node.'],
  ['localLoadErrs', 'local_load_errs_total', 'Failed loader runs on this node.'],
  ['serverRequests', 'server_requests_total', 'Requests from peers.'],
  ['peekHits', 'peek_hits_total', 'Moved keys taken from their previous owner instead of loaded.'],
  ['peekMisses', 'peek_misses_total', 'Peeks at a previous owner that found nothing usable.'],
  ['handoffsSent', 'handoffs_sent_total', 'Entries handed to their next owner on close.'],
  ['handoffsReceived', 'handoffs_received_total', 'Entries a leaving peer handed over and this node kept.'],
]

const LRU_COUNTERS = [
  ['gets', 'lru_gets_total', 'Lookups in one cache (main or hot).'],
  ['hits', 'lru_hits_total', 'Lookups that found an entry.'],
  ['evictions', 'lru_evictions_total', 'Entries evicted to stay within maxBytes.'],
] as const

/**
 * registerMetrics exposes a node's counters to Prometheus through
 * prom-client: every group's counters (Go's names), each cache's bytes,
 * items and counters, each peer's circuit, and a histogram of peer-fetch
 * latency by peer and outcome. Counters are read at scrape time, so
 * nothing is counted twice; `unregister` removes them all.
 */
export function registerMetrics(gc: Groupcache, options: PrometheusOptions = {}): { unregister(): void } {
  const registry = options.registry ?? globalRegistry
  const prefix = options.prefix ?? 'groupcache_'
  const registers = [registry]
  const names: string[] = []
  const track = <M>(name: string, make: (name: string) => M): M => {
    names.push(prefix + name)
    return make(prefix + name)
  }

  for (const [field, name, help] of GROUP_COUNTERS) {
    track(name, (full) =>
      new Counter({
        name: full,
        help,
        labelNames: ['group'],
        registers,
        collect() {
          this.reset()
          for (const [group, g] of Object.entries(gc.stats().groups)) this.inc({ group }, g.stats[field])
        },
      }),
    )
  }
  for (const [field, name, help] of [
    ['bytes', 'lru_bytes', 'Bytes held (key + value) by one cache.'],
    ['items', 'lru_items', 'Entries held by one cache.'],
  ] as const) {
    track(name, (full) =>
      new Gauge({
        name: full,
        help,
        labelNames: ['group', 'cache'],
        registers,
        collect() {
          for (const [group, g] of Object.entries(gc.stats().groups)) {
            this.set({ group, cache: 'main' }, g.main[field])
            this.set({ group, cache: 'hot' }, g.hot[field])
          }
        },
      }),
    )
  }
  for (const [field, name, help] of LRU_COUNTERS) {
    track(name, (full) =>
      new Counter({
        name: full,
        help,
        labelNames: ['group', 'cache'],
        registers,
        collect() {
          this.reset()
          for (const [group, g] of Object.entries(gc.stats().groups)) {
            this.inc({ group, cache: 'main' }, g.main[field])
            this.inc({ group, cache: 'hot' }, g.hot[field])
          }
        },
      }),
    )
  }
  track('peer_circuit_open', (full) =>
    new Gauge({
      name: full,
      help: '1 while a peer is skipped by the circuit breaker (open or half-open), else 0.',
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset()
        for (const p of gc.stats().peers) if (!p.self) this.set({ peer: p.peer }, p.state === 'closed' ? 0 : 1)
      },
    }),
  )
  const latency = track('peer_fetch_duration_seconds', (full) =>
    new Histogram({
      name: full,
      help: 'Time to fetch a value from its owner, by peer and outcome (ok, verdict, error).',
      labelNames: ['peer', 'outcome'],
      buckets: options.buckets ?? [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
  )
  const onPeer = (message: unknown): void => {
    const event = message as PeerEvent
    // The channel carries every instance's events: keep this node's.
    if (gc.getGroup(event.group) === undefined || !gc.peers.includes(event.peer)) return
    latency.observe({ peer: event.peer, outcome: event.outcome }, event.durationMs / 1000)
  }
  subscribe('groupcache:peer', onPeer)
  return {
    unregister() {
      unsubscribe('groupcache:peer', onPeer)
      for (const name of names) registry.removeSingleMetric(name)
    },
  }
}

export default registerMetrics

import type { CacheStats, GroupStats } from '../src/index.js'

// The metric catalogue that groupcache/prometheus and groupcache/otel both
// publish, so that one dashboard reads either.

/** DEFAULT_METRIC_PREFIX starts every metric name. */
export const DEFAULT_METRIC_PREFIX = 'groupcache_'

/**
 * DEFAULT_FETCH_BUCKETS are the peer-fetch latency histogram's buckets, in
 * seconds: from a same-rack hit (1 ms) to DEFAULT_PEER_TIMEOUT_MS (10 s).
 */
export const DEFAULT_FETCH_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** GROUP_COUNTERS are Go's counters (label `group`): [stats field, name, help]. */
export const GROUP_COUNTERS: ReadonlyArray<readonly [keyof GroupStats, string, string]> = [
  ['gets', 'gets_total', 'Gets, local or on behalf of a peer.'],
  ['cacheHits', 'cache_hits_total', 'Gets answered from the main or hot cache.'],
  ['peerLoads', 'peer_loads_total', 'Values fetched from their owner.'],
  ['peerErrors', 'peer_errors_total', 'Failed peer fetches (each then loaded locally).'],
  ['loads', 'loads_total', 'Gets that missed the cache.'],
  ['loadsDeduped', 'loads_deduped_total', 'Loads that ran after merging concurrent ones.'],
  ['localLoads', 'local_loads_total', 'Successful loader runs on this node.'],
  ['localLoadErrs', 'local_load_errs_total', 'Failed loader runs on this node.'],
  ['serverRequests', 'server_requests_total', 'Requests from peers.'],
  ['staleHits', 'stale_hits_total', 'Cache hits served stale, past ttlMs within staleMs.'],
  ['refreshes', 'refreshes_total', 'Background refreshes of stale values started (a load on the owner, else a request to it).'],
  ['refreshErrors', 'refresh_errors_total', 'Refreshes that failed; the stale value was kept.'],
  ['peekHits', 'peek_hits_total', 'Moved keys taken from their previous owner instead of loaded.'],
  ['peekMisses', 'peek_misses_total', 'Peeks at a previous owner that found nothing usable.'],
  ['handoffsSent', 'handoffs_sent_total', 'Entries handed to their next owner on close.'],
  ['handoffsReceived', 'handoffs_received_total', 'Entries a leaving peer handed over and this node kept.'],
]

/** CACHE_GAUGES are each cache's sizes (labels `group`, `cache`). */
export const CACHE_GAUGES: ReadonlyArray<readonly [keyof CacheStats, string, string]> = [
  ['bytes', 'lru_bytes', 'Bytes one cache counts against maxBytes: key + value, the per-entry overhead and kept decoded values.'],
  ['items', 'lru_items', 'Entries held by one cache.'],
]

/** CACHE_COUNTERS are each cache's counters (labels `group`, `cache`). */
export const CACHE_COUNTERS: ReadonlyArray<readonly [keyof CacheStats, string, string]> = [
  ['gets', 'lru_gets_total', 'Lookups in one cache (main or hot).'],
  ['hits', 'lru_hits_total', 'Lookups that found an entry.'],
  ['evictions', 'lru_evictions_total', 'Entries evicted to stay within maxBytes.'],
]

/** CIRCUIT_GAUGE is each peer's circuit (label `peer`). */
export const CIRCUIT_GAUGE = ['peer_circuit_open', '1 while a peer is skipped by the circuit breaker (open or half-open), else 0.'] as const

/** FETCH_HISTOGRAM is peer-fetch latency (labels `peer`, `outcome`). */
export const FETCH_HISTOGRAM = [
  'peer_fetch_duration_seconds',
  'Time to fetch a value from its owner, by peer and outcome (ok, verdict, error).',
] as const

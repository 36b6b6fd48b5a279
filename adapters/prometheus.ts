import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Counter, Gauge, register as globalRegistry, Histogram, type Registry } from 'prom-client'
import { Groupcache, InvalidOptionError, PEER_CHANNEL, type PeerEvent } from '../src/index.js'
import {
  CACHE_COUNTERS,
  CACHE_GAUGES,
  CIRCUIT_GAUGE,
  DEFAULT_FETCH_BUCKETS,
  DEFAULT_METRIC_PREFIX,
  FETCH_HISTOGRAM,
  GROUP_COUNTERS,
} from './metrics.js'

/** PrometheusOptions say where and how the metrics are registered. */
export interface PrometheusOptions {
  /** registry to register in (default: prom-client's global registry). */
  registry?: Registry | undefined
  /** prefix of every metric name (default 'groupcache_'). */
  prefix?: string | undefined
  /** buckets of the peer-fetch latency histogram, in seconds. */
  buckets?: number[] | undefined
}

/**
 * registerMetrics exposes a node's counters to Prometheus through
 * prom-client: every group's counters (Go's names), each cache's bytes,
 * items and counters, each peer's circuit, and a histogram of peer-fetch
 * latency by peer and outcome. Counters are read at scrape time, so
 * nothing is counted twice; `unregister` removes them all.
 */
export function registerMetrics(
  target: Groupcache | { readonly groupcache: Groupcache },
  options: PrometheusOptions = {},
): { unregister(): void } {
  const gc = nodeOf(target)
  const registry = options.registry ?? globalRegistry
  const prefix = options.prefix ?? DEFAULT_METRIC_PREFIX
  const registers = [registry]
  const names: string[] = []
  const track = <M>(name: string, make: (name: string) => M): M => {
    names.push(prefix + name)
    return make(prefix + name)
  }

  for (const [field, name, help] of GROUP_COUNTERS) {
    track(
      name,
      (full) =>
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
  for (const [field, name, help] of CACHE_GAUGES) {
    track(
      name,
      (full) =>
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
  for (const [field, name, help] of CACHE_COUNTERS) {
    track(
      name,
      (full) =>
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
  track(
    CIRCUIT_GAUGE[0],
    (full) =>
      new Gauge({
        name: full,
        help: CIRCUIT_GAUGE[1],
        labelNames: ['peer'],
        registers,
        collect() {
          this.reset()
          for (const p of gc.stats().peers) if (!p.self) this.set({ peer: p.peer }, p.state === 'closed' ? 0 : 1)
        },
      }),
  )
  const latency = track(
    FETCH_HISTOGRAM[0],
    (full) =>
      new Histogram({
        name: full,
        help: FETCH_HISTOGRAM[1],
        labelNames: ['peer', 'outcome'],
        buckets: options.buckets ?? [...DEFAULT_FETCH_BUCKETS],
        registers,
      }),
  )
  const onPeer = (message: unknown): void => {
    const event = message as PeerEvent
    // The channel carries every instance's events: keep this node's.
    if (event.self !== gc.self || gc.getGroup(event.group) === undefined) return
    latency.observe({ peer: event.peer, outcome: event.outcome }, event.durationMs / 1000)
  }
  subscribe(PEER_CHANNEL, onPeer)
  return {
    unregister() {
      unsubscribe(PEER_CHANNEL, onPeer)
      for (const name of names) registry.removeSingleMetric(name)
    },
  }
}

/**
 * nodeOf accepts what users have at hand: the instance, or the Express or
 * Koa middleware (or a Fastify app) that carries it as `.groupcache`.
 * Anything else fails now, not at the first scrape.
 */
function nodeOf(target: unknown): Groupcache {
  if (target instanceof Groupcache) return target
  const carried =
    typeof target === 'object' || typeof target === 'function' ? (target as { groupcache?: unknown } | null)?.groupcache : undefined
  if (carried instanceof Groupcache) return carried
  throw new InvalidOptionError(
    'expected registerMetrics to get a Groupcache instance, or the middleware or app that carries one as .groupcache',
  )
}

export default registerMetrics

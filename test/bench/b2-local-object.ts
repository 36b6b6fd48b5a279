// B2: a local hit on a 1 KB JSON-like object with the default codec, beside
// the memory hits of async-cache-dedupe and bentocache.
import { createCache } from 'async-cache-dedupe'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { Groupcache } from 'groupcache'
import { Packr } from 'msgpackr'
import { compareNsPerOp, fmtNs, fmtRatio, printTable, quick, record } from './lib.js'

const KEYS = 10_000

/** objectFor is a JSON-like object of about 1 KB (24 string fields). */
function objectFor(key: string): Record<string, string> {
  const obj: Record<string, string> = { id: key }
  for (let i = 0; i < 23; i++) obj[`field${i}`] = `value-${i}-${'x'.repeat(28)}`
  return obj
}

/** run measures B2 and prints its table. */
export async function run(): Promise<void> {
  const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`)
  const key = (i: number): string => keys[i % KEYS] as string
  const size = new Packr({ useRecords: false, moreTypes: false }).pack(objectFor(keys[0] as string)).length
  const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
  const acd = createCache({ ttl: 3600, storage: { type: 'memory', options: { size: KEYS * 2 } } })
  let factoryCalls = 0
  const factory = (k: string): Record<string, string> => {
    factoryCalls++
    return objectFor(k)
  }
  const dedupe = acd.define('object', async (k: string) => factory(k)) as unknown as { object: (k: string) => Promise<unknown> }
  // maxItems: bentocache's memory driver keeps 1,000 entries unless told otherwise.
  const bento = new BentoCache({
    default: 'memory',
    stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: KEYS * 2, maxSize: '200mb' })) },
  })
  const bentoShared = new BentoCache({
    default: 'memory',
    stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: KEYS * 2, serialize: false })) },
  })
  try {
    const objects = gc.newGroup({ name: 'objects', maxBytes: 64 << 20, load: (k) => factory(k) })
    for (const k of keys) {
      await objects.get(k)
      await dedupe.object(k)
      await bento.getOrSet({ key: k, factory: () => factory(k), ttl: '1h' })
      await bentoShared.getOrSet({ key: k, factory: () => factory(k), ttl: '1h' })
    }
    const callsBefore = factoryCalls
    const ns = await compareNsPerOp(
      {
        acd: (i) => dedupe.object(key(i)),
        bento: (i) => {
          const k = key(i)
          return bento.getOrSet({ key: k, factory: () => factory(k), ttl: '1h' })
        },
        bentoShared: (i) => {
          const k = key(i)
          return bentoShared.getOrSet({ key: k, factory: () => factory(k), ttl: '1h' })
        },
        ours: (i) => objects.get(key(i)),
      },
      { rounds: quick ? 3 : 7, seconds: quick ? 0.2 : 0.7 },
    )
    if (factoryCalls !== callsBefore) throw new Error(`B2 timed ${factoryCalls - callsBefore} misses: every op must be a hit`)
    const ours = ns.ours as number
    const vsAcd = ours / (ns.acd as number)
    const vsBento = ours / (ns.bento as number)
    printTable(
      `B2 — local hit, ${size} B msgpack object (24 fields), default codec, 10k keys`,
      ['contender', 'time/op', 'groupcache time ratio (÷ this)', 'target'],
      [
        ["groupcache `get()`, default codec ('msgpack', shared deep-frozen object)", fmtNs(ours), '1.00×', '—'],
        [
          'async-cache-dedupe memory hit (stores the object itself)',
          fmtNs(ns.acd as number),
          fmtRatio(vsAcd),
          record('B2', 'faster than async-cache-dedupe (< 1×)', vsAcd < 1),
        ],
        [
          'bentocache memory hit, default `serialize: true` (a JSON.parse per hit), `maxItems` 20k',
          fmtNs(ns.bento as number),
          fmtRatio(vsBento),
          record('B2', 'faster than bentocache (< 1×)', vsBento < 1),
        ],
        [
          'bentocache memory hit, `serialize: false`, `maxItems` 20k (info: shares a mutable object)',
          fmtNs(ns.bentoShared as number),
          fmtRatio(ours / (ns.bentoShared as number)),
          '—',
        ],
      ],
      [
        `median of ${quick ? 3 : 7} interleaved rounds of ${quick ? 0.2 : 0.7} s each, one awaited op at a time.`,
        'async-cache-dedupe: `createCache({ ttl: 3600, storage: memory })`, `define()`d function; bentocache: `getOrSet()` on an L1-only memory store. Every timed op was checked to be a hit.',
      ],
    )
  } finally {
    await gc.close()
    await bento.disconnectAll()
    await bentoShared.disconnectAll()
  }
}

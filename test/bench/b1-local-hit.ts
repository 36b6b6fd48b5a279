// B1: a local hit with the 'bytes' codec, beside lru-cache's fetch() hit.

// The built package, as users run it (tsx's transpiled private fields are
// several times slower than Node's own).
import { Groupcache } from 'groupcache'
import { LRUCache } from 'lru-cache'
import { compareNsPerOp, fmtNs, fmtRatio, printTable, quick, record } from './lib.js'

const KEYS = 10_000
const VALUE_BYTES = 1024

/** run measures B1 and prints its table. */
export async function run(): Promise<void> {
  const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
  try {
    const value = Buffer.alloc(VALUE_BYTES, 7)
    const text = 'x'.repeat(VALUE_BYTES)
    const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`)
    const bytes = gc.newGroup<Uint8Array>({ name: 'bytes', maxBytes: 64 << 20, codec: 'bytes', load: () => value })
    const strings = gc.newGroup<string>({ name: 'string', maxBytes: 64 << 20, codec: 'string', load: () => text })
    let fetches = 0
    const lru = new LRUCache<string, Uint8Array>({
      max: KEYS * 2,
      fetchMethod: async () => {
        fetches++
        return value
      },
    })
    // The floor of any hit that hands out a copy: an async lookup plus
    // allocUnsafe + set of the 1 KB, nothing else.
    const plain = new Map<string, Uint8Array>()
    for (const key of keys) {
      await bytes.get(key)
      await strings.get(key)
      await lru.fetch(key)
      plain.set(key, value)
    }
    const loadsBefore = bytes.stats.loads + strings.stats.loads + fetches
    const key = (i: number): string => keys[i % KEYS] as string
    const ns = await compareNsPerOp(
      {
        lru: (i) => lru.fetch(key(i)),
        bytes: (i) => bytes.get(key(i)),
        string: (i) => strings.get(key(i)),
        copy: async (i) => {
          const stored = plain.get(key(i)) as Uint8Array
          const copy = Buffer.allocUnsafe(stored.length)
          copy.set(stored)
          return copy
        },
      },
      { rounds: quick ? 3 : 7, seconds: quick ? 0.2 : 0.7 },
    )
    if (bytes.stats.loads + strings.stats.loads + fetches !== loadsBefore) throw new Error('B1 timed a miss: every op must be a hit')
    const base = ns.lru as number
    const ratio = (ns.bytes as number) / base
    printTable(
      'B1 — local hit, 10k keys, 1 KB values (vs lru-cache fetch() hit)',
      ['contender', 'time/op', 'ops/s', 'time ratio (÷ lru-cache)', 'target'],
      [
        ['lru-cache `fetch()` hit (baseline)', fmtNs(base), fmtOps(base), '1.00×', '—'],
        [
          "groupcache `get()`, `'bytes'` codec",
          fmtNs(ns.bytes as number),
          fmtOps(ns.bytes as number),
          fmtRatio(ratio),
          record('B1', '≤ 1.5× time/op', ratio <= 1.5),
        ],
        [
          "groupcache `get()`, `'string'` codec (info: the same hit without a copy)",
          fmtNs(ns.string as number),
          fmtOps(ns.string as number),
          fmtRatio((ns.string as number) / base),
          '—',
        ],
        [
          'async `Map.get` + a 1 KB copy (info: the floor of any hit that copies)',
          fmtNs(ns.copy as number),
          fmtOps(ns.copy as number),
          fmtRatio((ns.copy as number) / base),
          '—',
        ],
      ],
      [
        `median of ${quick ? 3 : 7} interleaved rounds of ${quick ? 0.2 : 0.7} s each, one awaited op at a time, keys in rotation over all ${KEYS.toLocaleString('en-US')}.`,
        "`'bytes'` hands each caller a fresh copy of the 1 KB value (so no caller can write into the cache); lru-cache hands out the stored Buffer itself. Every timed op was checked to be a hit.",
      ],
    )
  } finally {
    await gc.close()
  }
}

function fmtOps(ns: number): string {
  return Math.round(1e9 / ns).toLocaleString('en-US')
}

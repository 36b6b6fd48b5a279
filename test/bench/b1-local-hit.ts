// B1: a local hit on a 1 KB object (default codec, msgpack) and on a 1 KB
// string ('string' codec), beside lru-cache's fetch() hit; the 'bytes'
// codec (a fresh copy per caller) as information.

// The built package, as users run it (tsx's transpiled private fields are
// several times slower than Node's own).
import { Groupcache } from 'groupcache'
import { LRUCache } from 'lru-cache'
import { compareNsPerOp, fmtNs, fmtRatio, printTable, quick, record } from './lib.js'

const KEYS = 10_000
const VALUE_BYTES = 1024
const TARGET = 1.3

/** objectFor is a JSON-like object of about 1 KB in msgpack (24 string fields), as B2's. */
function objectFor(key: string): Record<string, string> {
  const obj: Record<string, string> = { id: key }
  for (let i = 0; i < 23; i++) obj[`field${i}`] = `value-${i}-${'x'.repeat(28)}`
  return obj
}

/** run measures B1 and prints its table. */
export async function run(): Promise<void> {
  const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
  try {
    const value = Buffer.alloc(VALUE_BYTES, 7)
    const text = 'x'.repeat(VALUE_BYTES)
    const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`)
    const objects = gc.newGroup<Record<string, string>>({ name: 'objects', maxBytes: 64 << 20, load: (k) => objectFor(k) })
    const strings = gc.newGroup<string>({ name: 'string', maxBytes: 64 << 20, codec: 'string', load: () => text })
    const bytes = gc.newGroup<Uint8Array>({ name: 'bytes', maxBytes: 64 << 20, codec: 'bytes', load: () => value })
    let fetches = 0
    const lru = new LRUCache<string, Record<string, string>>({
      max: KEYS * 2,
      fetchMethod: async (k) => {
        fetches++
        return objectFor(k)
      },
    })
    // The floor of any hit that hands out a copy: an async lookup plus
    // allocUnsafe + set of the 1 KB, nothing else.
    const plain = new Map<string, Uint8Array>()
    for (const key of keys) {
      await objects.get(key)
      await strings.get(key)
      await bytes.get(key)
      await lru.fetch(key)
      plain.set(key, value)
    }
    const loads = (): number => objects.stats.loads + strings.stats.loads + bytes.stats.loads + fetches
    const loadsBefore = loads()
    const key = (i: number): string => keys[i % KEYS] as string
    const ns = await compareNsPerOp(
      {
        lru: (i) => lru.fetch(key(i)),
        object: (i) => objects.get(key(i)),
        string: (i) => strings.get(key(i)),
        bytes: (i) => bytes.get(key(i)),
        copy: async (i) => {
          const stored = plain.get(key(i)) as Uint8Array
          const copy = Buffer.allocUnsafe(stored.length)
          copy.set(stored)
          return copy
        },
      },
      { rounds: quick ? 3 : 7, seconds: quick ? 0.2 : 0.7 },
    )
    if (loads() !== loadsBefore) throw new Error('B1 timed a miss: every op must be a hit')
    const base = ns.lru as number
    const row = (name: string, id: string, target: boolean): string[] => {
      const t = ns[id] as number
      const ratio = t / base
      return [name, fmtNs(t), fmtOps(t), fmtRatio(ratio), target ? record('B1', `≤ ${TARGET}× time/op`, ratio <= TARGET) : '—']
    }
    printTable(
      'B1 — local hit, 10k keys, 1 KB values (vs lru-cache fetch() hit)',
      ['contender', 'time/op', 'ops/s', 'time ratio (÷ lru-cache)', 'target'],
      [
        ['lru-cache `fetch()` hit (baseline)', fmtNs(base), fmtOps(base), '1.00×', '—'],
        row('groupcache `get()`, default codec (msgpack), 1 KB object (24 fields, shared deep-frozen)', 'object', true),
        row("groupcache `get()`, `'string'` codec, 1 KB string", 'string', true),
        row("groupcache `get()`, `'bytes'` codec (info: a fresh 1 KB copy per caller)", 'bytes', false),
        row('async `Map.get` + a 1 KB copy (info: the floor of any hit that copies)', 'copy', false),
      ],
      [
        `median of ${quick ? 3 : 7} interleaved rounds of ${quick ? 0.2 : 0.7} s each, one awaited op at a time, keys in rotation over all ${KEYS.toLocaleString('en-US')}.`,
        "The object is decoded once and shared, deep-frozen (`get()` returns `Frozen<T>`); lru-cache hands out the stored object itself. `'bytes'` hands each caller a fresh copy (so no caller can write into the cache). Every timed op was checked to be a hit.",
      ],
    )
  } finally {
    await gc.close()
  }
}

function fmtOps(ns: number): string {
  return Math.round(1e9 / ns).toLocaleString('en-US')
}

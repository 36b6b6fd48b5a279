// B7: the two leaves on every get's path. Ring lookups over 8, 64 and 512
// peers (is it O(log n), and does it allocate?), and LRU get/add at three
// sizes beside lru-cache's.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { crc32 } from 'node:zlib'
import { LRUCache } from 'lru-cache'
// Internal modules of the built package.
import { Linked, LRU } from '../../dist/src/lru.js'
import { Ring } from '../../dist/src/ring.js'
import { fmtNs, fmtRatio, median, printTable, quick, record } from './lib.js'

// Timing runs; the ring's allocation is always read over 1e6 lookups.
const OPS = quick ? 200_000 : 1_000_000
const ALLOC_OPS = 1_000_000
const CHUNK = 10_000
const KEYS = 10_000

// `gc()` without restarting node with --expose-gc: the flag takes effect for
// contexts made after it is set.
setFlagsFromString('--expose-gc')
const collect = runInNewContext('gc') as () => void

// Results go to a property, so the optimiser cannot drop the calls as dead code.
const keep: { sink: unknown } = { sink: undefined }

/** nsPerOp is the median over `repeats` runs of OPS synchronous calls. */
function nsPerOp(op: (i: number) => unknown, repeats: number): number {
  for (let i = 0; i < (quick ? 50_000 : 200_000); i++) keep.sink = op(i)
  const runs: number[] = []
  for (let r = 0; r < repeats; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < OPS; i++) keep.sink = op(i)
    runs.push(Number(process.hrtime.bigint() - start) / OPS)
  }
  return median(runs)
}

/**
 * bytesPerOp is the V8 heap growth per call over `ops` calls, read every CHUNK
 * calls with process.memoryUsage(); a chunk in which a GC ran (the heap
 * shrank) is left out. What the reading itself allocates is measured with
 * an empty op and subtracted.
 */
function bytesPerOp(op: (i: number) => unknown, ops = ALLOC_OPS): number {
  return Math.max(0, rawBytesPerOp(op, ops) - rawBytesPerOp(emptyOp, ops))
}

const emptyOp = (i: number): number => i

function rawBytesPerOp(op: (i: number) => unknown, ops: number): number {
  for (let i = 0; i < 100_000; i++) keep.sink = op(i)
  collect()
  let grown = 0
  let counted = 0
  for (let c = 0; c < ops / CHUNK; c++) {
    const before = process.memoryUsage().heapUsed
    for (let i = c * CHUNK; i < (c + 1) * CHUNK; i++) keep.sink = op(i)
    const after = process.memoryUsage().heapUsed
    if (after >= before) {
      grown += after - before
      counted += CHUNK
    }
  }
  return counted === 0 ? NaN : grown / counted
}

function fmtBytesPerOp(b: number): string {
  return Number.isNaN(b) ? 'n/a' : `${b.toFixed(2)} B`
}

function ring(rows: string[][], repeats: number): void {
  const keys = Array.from({ length: KEYS }, (_, i) => `user:${i * 7919}`)
  const hash = nsPerOp((i) => crc32(keys[i % KEYS] as string), repeats)
  const results: Array<{ peers: number; points: number; ns: number; bytes: number }> = []
  for (const peers of [8, 64, 512]) {
    const urls = Array.from({ length: peers }, (_, i) => `http://127.0.0.1:${20_000 + i}`)
    const r = new Ring(urls)
    const op = (i: number): unknown => r.owner(keys[i % KEYS] as string)
    results.push({ peers, points: peers * r.replicas, ns: nsPerOp(op, repeats), bytes: bytesPerOp(op) })
  }
  const first = results[0] as { points: number; ns: number }
  const worst = Math.max(...results.map((r) => r.ns / first.ns / (Math.log2(r.points) / Math.log2(first.points))))
  const maxBytes = Math.max(...results.map((r) => r.bytes))
  for (const { peers, points, ns, bytes } of results) {
    const growth = ns / first.ns
    const logGrowth = Math.log2(points) / Math.log2(first.points)
    rows.push([
      `${peers} peers (${points.toLocaleString('en-US')} points)`,
      fmtNs(ns),
      fmtNs(ns - hash),
      fmtRatio(growth),
      fmtRatio(logGrowth),
      fmtBytesPerOp(bytes),
      peers === 512
        ? [
            record('B7', 'ring lookup O(log n): time growth ≤ 2× log2(points) growth, 8 → 64 → 512 peers', worst <= 2),
            record('B7', 'ring lookup allocates nothing (< 1 heap B/lookup at every size)', maxBytes < 1),
          ].join('; ')
        : '',
    ])
  }
  rows.push([
    '`crc32(key)` alone (info: the hash every lookup pays)',
    fmtNs(hash),
    '—',
    '—',
    '—',
    fmtBytesPerOp(bytesPerOp((i) => crc32(keys[i % KEYS] as string))),
    '—',
  ])
}

/** Sized is a cached value; LRU's values carry their own list links. */
class Sized extends Linked {
  readonly bytes = new Uint8Array(1024)
}

function lru(rows: string[][], repeats: number): void {
  const sizeOf = (v: Sized, key: string): number => key.length + v.bytes.length
  for (const size of [1_000, 10_000, 100_000]) {
    const keys = Array.from({ length: size * 2 }, (_, i) => `key-${i}`)
    // One value per key: a value is held under one key at a time. Keys cycle
    // over twice the size, so a key's value was evicted before it comes back.
    const values = keys.map(() => new Sized())
    const ours = new LRU<Sized>()
    const raw = new LRUCache<string, Sized>({ maxSize: Number.MAX_SAFE_INTEGER, sizeCalculation: (v, k) => Math.max(1, sizeOf(v, k)) })
    for (let i = 0; i < size; i++) {
      const value = values[i] as Sized
      ours.add(keys[i] as string, value, sizeOf(value, keys[i] as string))
      raw.set(keys[i] as string, value)
    }
    // get: hits in rotation over the keys held.
    const getOurs = (i: number): unknown => ours.get(keys[i % size] as string)
    const getRaw = (i: number): unknown => raw.get(keys[i % size] as string)
    // add: a key not held (cycling over twice as many keys), then the oldest
    // goes, so the size stays the same: the steady state of a full cache.
    let nextOurs = size
    const addOurs = (): void => {
      const i = nextOurs++ % (size * 2)
      const key = keys[i] as string
      const value = values[i] as Sized
      ours.add(key, value, sizeOf(value, key))
      ours.removeOldest()
    }
    let nextRaw = size
    const addRaw = (): void => {
      const i = nextRaw++ % (size * 2)
      raw.set(keys[i] as string, values[i] as Sized)
      raw.pop()
    }
    const ns = {
      getOurs: nsPerOp(getOurs, repeats),
      getRaw: nsPerOp(getRaw, repeats),
      addOurs: nsPerOp(addOurs, repeats),
      addRaw: nsPerOp(addRaw, repeats),
    }
    if (ours.items !== size || raw.size !== size) throw new Error(`LRU size drifted: ${ours.items}, ${raw.size}`)
    const cell = (ns: number, op: (i: number) => unknown): string =>
      `${fmtNs(ns)}, ${fmtBytesPerOp(bytesPerOp(op, quick ? 200_000 : ALLOC_OPS))}`
    rows.push([
      `${size.toLocaleString('en-US')} entries`,
      cell(ns.getOurs, getOurs),
      cell(ns.getRaw, getRaw),
      fmtRatio(ns.getOurs / ns.getRaw),
      cell(ns.addOurs, addOurs),
      cell(ns.addRaw, addRaw),
      fmtRatio(ns.addOurs / ns.addRaw),
    ])
  }
}

/** run measures B7 and prints its tables. */
export async function run(): Promise<void> {
  const repeats = quick ? 3 : 7
  const ringRows: string[][] = []
  ring(ringRows, repeats)
  printTable(
    'B7 — ring lookup (`Ring.owner`), 50 points per peer',
    ['ring', 'time/lookup', 'minus the hash', 'time ÷ 8 peers', 'log2(points) ÷ 8 peers', 'heap bytes/lookup', 'target'],
    ringRows,
    [
      `time: median of ${repeats} runs of ${OPS.toLocaleString('en-US')} lookups over ${KEYS.toLocaleString('en-US')} keys; heap: growth over ${ALLOC_OPS.toLocaleString('en-US')} lookups, read with \`process.memoryUsage()\` every ${CHUNK.toLocaleString('en-US')} lookups after a forced GC, chunks with a GC left out, the reading's own cost subtracted.`,
      'O(log n) is read as: going from 8 to 64 or 512 peers costs at most twice what the growth of log2(points) predicts (a linear scan would cost 8× and 64×).',
    ],
  )
  const lruRows: string[][] = []
  lru(lruRows, repeats)
  printTable(
    "B7 — LRU (`lru.ts`) get and add beside lru-cache's",
    [
      'size',
      '`LRU.get` hit (time, heap/op)',
      'lru-cache `get`',
      'time ratio',
      '`LRU.add` new key + `removeOldest`',
      'lru-cache `set` + `pop`',
      'time ratio',
    ],
    lruRows,
    [
      "no target: LRU is an intrusive list (the values carry their links) with Go's counters; the ratio shows what it costs beside lru-cache. Peers do not change an LRU, so it is sized by entries.",
    ],
  )
}

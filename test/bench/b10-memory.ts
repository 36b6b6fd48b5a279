// B10: what a cached entry costs in memory, and maxBytes as a bound on
// memory at full size. Every figure comes from a child process of its own
// (test/hardening/memory-scenarios.ts, on the built package) that reads heap
// and ArrayBuffer memory after forced collections, before and after its
// workload; Go's groupcache is measured the same way by test/bench/goentry
// (heap after runtime.GC()), when Go and Debian's groupcache sources are
// installed.
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { ENTRY_OVERHEAD_BYTES } from '../../dist/src/index.js'
import type { Result } from '../hardening/memory-scenarios.js'
import { fmtBytes, fmtRatio, printTable, quick, record } from './lib.js'

const exec = promisify(execFile)
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SCENARIOS = fileURLToPath(new URL('../hardening/memory-scenarios.ts', import.meta.url))
const GOENTRY = fileURLToPath(new URL('./goentry', import.meta.url))
const GOPATH = process.env.INTEROP_GOPATH ?? '/usr/share/gocode'

// Per-entry rows: a store sized for ENTRIES entries takes three times as
// many keys (key:100000 and up, 10 bytes), so it is full and evicting.
const ENTRIES = quick ? 20_000 : 100_000
const VALUE_BYTES = 100
const KEY_BYTES = 10
// The bound rows, at the sizes (scaled down by --quick).
const INSERTS = quick ? { n: 100_000, maxBytes: 4 << 20 } : { n: 1_000_000, maxBytes: 64 << 20 }
const SHARED = quick ? { n: 40_000, hot: 3_000, maxBytes: 1 << 20 } : { n: 300_000, hot: 3_000, maxBytes: 1 << 20 }
const ROUTES = quick ? { n: 50_000, maxBytes: 4 << 20 } : { n: 200_000, maxBytes: 16 << 20 }

async function scenario(name: string, options: Record<string, unknown>): Promise<Result> {
  const { stdout } = await exec(process.execPath, ['--expose-gc', '--import', 'tsx', SCENARIOS, name, JSON.stringify(options)], {
    cwd: ROOT,
    timeout: 30 * 60_000,
    maxBuffer: 1 << 20,
  })
  return JSON.parse(stdout.trim().split('\n').pop() as string) as Result
}

interface GoEntry {
  goVersion: string
  items: number
  countedPerEntry: number
  heapPerEntry: number
}

/** goEntry builds and runs goentry offline (GOPATH mode, as the interop test does), or says why not. */
async function goEntry(): Promise<GoEntry | string> {
  const dir = await mkdtemp(join(tmpdir(), 'groupcache-goentry-'))
  try {
    const env = {
      ...process.env,
      GO111MODULE: 'off',
      GOPATH,
      GOPROXY: 'off',
      GOFLAGS: '',
      GOCACHE: join(tmpdir(), 'groupcache-interop-gocache'),
    }
    const bin = join(dir, 'goentry')
    await exec('go', ['build', '-o', bin, '.'], { cwd: GOENTRY, env, timeout: 300_000 })
    const { stdout } = await exec(bin, ['-n', String(ENTRIES), '-size', String(VALUE_BYTES)], { timeout: 600_000 })
    return JSON.parse(stdout) as GoEntry
  } catch (err) {
    return `not measured (${(err as Error).message.split('\n')[0]})`
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const total = (r: Result): number => r.growth.heapUsed + r.growth.arrayBuffers

/** run measures B10 and prints its tables. */
export async function run(): Promise<void> {
  const perEntry: string[][] = []
  const stores = [
    ['lru-cache holding the same values as strings (its `sizeCalculation`: key + value)', 'lru-cache'],
    ["groupcache, `'bytes'` codec (the bytes alone)", 'bytes'],
    ["groupcache, `'string'` codec (the bytes and the decoded string)", 'string'],
    ['groupcache, default msgpack codec, a string value (the bytes and the decoded string)', 'msgpack'],
  ] as const
  let ours = NaN
  for (const [label, store] of stores) {
    const r = await scenario('perEntry', { store, n: ENTRIES, size: VALUE_BYTES })
    const memory = total(r) / r.items
    if (store === 'bytes') ours = memory
    perEntry.push([
      label,
      `${memory.toFixed(0)} B`,
      `${(memory - KEY_BYTES - VALUE_BYTES).toFixed(0)} B`,
      `${(r.counted / r.items).toFixed(0)} B`,
      fmtRatio(memory / (r.counted / r.items)),
    ])
  }
  const go = await goEntry()
  if (typeof go === 'string') perEntry.push(["Go's groupcache (github.com/golang/groupcache)", go, '—', '—', '—'])
  else {
    perEntry.push([
      `Go's groupcache (${go.goVersion}, github.com/golang/groupcache)`,
      `${go.heapPerEntry.toFixed(0)} B`,
      `${(go.heapPerEntry - KEY_BYTES - VALUE_BYTES).toFixed(0)} B`,
      `${go.countedPerEntry.toFixed(0)} B`,
      fmtRatio(go.heapPerEntry / go.countedPerEntry),
    ])
  }
  printTable(
    `B10 — memory per cached entry, ${VALUE_BYTES}-byte values, ${KEY_BYTES}-byte keys, a full cache of about ${ENTRIES.toLocaleString('en-US')} entries`,
    ['store', 'memory per entry', 'beyond key + value', 'counted per entry (stats)', 'memory ÷ counted'],
    perEntry,
    [
      'memory: heap + ArrayBuffer growth after forced collections (Go: heap after runtime.GC()), divided by the entries held, after three times as many distinct keys went through a store sized for the entries (so its tables are at their steady state).',
      `counted is what the store counts against its budget: groupcache counts key + value + ENTRY_OVERHEAD_BYTES (${ENTRY_OVERHEAD_BYTES}) + kept decoded values, so memory ÷ counted ≤ 1 is the bound holding; Go and lru-cache count key + value.`,
      "Go's groupcache issue #64 reports processes at 2–3× cacheBytes in RSS (4–6 GB for a 2 GB cache); RSS adds the allocator's and the runtime's own slack to the heap measured here.",
      `before this change (issue 14's measurements) an entry held 370–520 B beyond its key and value and was counted as key + value alone; now a 'bytes' entry holds ${(ours - KEY_BYTES - VALUE_BYTES).toFixed(0)} B beyond them and is counted with them.`,
    ],
  )

  const bounds: string[][] = []
  const add = (label: string, r: Result, maxBytes: number, target: string, met: boolean): void => {
    bounds.push([
      label,
      `${r.ops.toLocaleString('en-US')} ops, ${r.items.toLocaleString('en-US')} held`,
      fmtBytes(r.counted),
      `${fmtBytes(r.growth.heapUsed)} + ${fmtBytes(r.growth.arrayBuffers)}`,
      fmtRatio(total(r) / maxBytes),
      fmtRatio(r.growth.arrayBuffers / maxBytes),
      record('B10', target, met),
    ])
  }
  for (const codec of ['msgpack', 'json', 'string', 'bytes']) {
    const r = await scenario('inserts', { codec, ...INSERTS })
    add(
      `inserts of 10–100 B values, \`'${codec}'\`, maxBytes ${fmtBytes(INSERTS.maxBytes)}`,
      r,
      INSERTS.maxBytes,
      `${codec}: heap + ArrayBuffer growth ≤ 1.5× maxBytes`,
      total(r) <= 1.5 * INSERTS.maxBytes,
    )
  }
  const shared = await scenario('sharedBuffers', SHARED)
  add(
    `msgpackr's shared buffers, ${SHARED.hot.toLocaleString('en-US')} long-lived keys, maxBytes ${fmtBytes(SHARED.maxBytes)}`,
    shared,
    SHARED.maxBytes,
    'shared buffers: ArrayBuffer growth ≤ 1.2× maxBytes',
    shared.growth.arrayBuffers <= 1.2 * SHARED.maxBytes,
  )
  const routes = await scenario('routes', ROUTES)
  add(
    `distinct URLs on a cached route, route budget ${fmtBytes(ROUTES.maxBytes)}`,
    routes,
    ROUTES.maxBytes,
    'route cache: heap + ArrayBuffer growth ≤ 1.5× the budget',
    total(routes) <= 1.5 * ROUTES.maxBytes,
  )
  printTable(
    'B10 — maxBytes as a bound on memory',
    ['scenario', 'work', 'counted (stats)', 'heap + ArrayBuffer growth', '÷ maxBytes', 'ArrayBuffers ÷ maxBytes', 'target'],
    bounds,
    [
      'growth: settled memory after the workload minus settled memory before it (after a small warm-up run), each the lowest of three readings after forced full collections.',
      'the same scenarios run, smaller, in `npm test` (test/hardening/memory.test.ts).',
    ],
  )
}

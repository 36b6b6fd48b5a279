// Core benchmarks: a local hit and a peer fetch, each beside a baseline
// measured in the same run (this machine is shared and noisy: only ratios
// mean much). Run with `npm run bench` (add `-- --quick` for a short run).
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { LRUCache } from 'lru-cache'
import { Pool } from 'undici'
// The built package, as users run it (tsx's transpiled private fields are
// several times slower than Node's own).
import { Groupcache } from 'groupcache'
import { encodeGetResponse } from '../../dist/src/wire.js'
import { reservePorts, urlsFor } from '../helpers/ports.js'

const quick = process.argv.includes('--quick')
const SECONDS = quick ? 0.5 : 2

interface Row {
  scenario: string
  ours: number
  baseline: number
  unit: string
  target?: string
}

/** opsPerSecond runs `op` in a tight async loop for the time budget. */
async function opsPerSecond(op: (i: number) => Promise<unknown>, seconds = SECONDS): Promise<number> {
  for (let i = 0; i < 2_000; i++) await op(i) // warm up
  let n = 0
  const start = process.hrtime.bigint()
  const budget = BigInt(Math.round(seconds * 1e9))
  while (process.hrtime.bigint() - start < budget) {
    for (let j = 0; j < 1_000; j++) await op(n++)
  }
  return n / (Number(process.hrtime.bigint() - start) / 1e9)
}

/** concurrentOps keeps `concurrency` ops in flight for the time budget. */
async function concurrentOps(op: () => Promise<unknown>, concurrency: number, seconds = SECONDS): Promise<number> {
  for (let i = 0; i < 200; i++) await op()
  let n = 0
  const deadline = Date.now() + seconds * 1000
  const start = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) {
        await op()
        n++
      }
    }),
  )
  return n / (Number(process.hrtime.bigint() - start) / 1e9)
}

async function localHits(rows: Row[]): Promise<void> {
  const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
  const KEYS = 10_000
  const value = Buffer.alloc(1024, 7)
  const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`)
  const bytes = gc.newGroup<Uint8Array>({ name: 'bytes', maxBytes: 64 << 20, codec: 'bytes', load: () => value })
  const obj = Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`field${i}`, `value-${i}-${'x'.repeat(24)}`]))
  const objects = gc.newGroup({ name: 'objects', maxBytes: 64 << 20, load: () => obj })
  for (const key of keys) {
    await bytes.get(key)
    await objects.get(key)
  }
  const lru = new LRUCache<string, Uint8Array>({ max: KEYS * 2, fetchMethod: async () => value })
  for (const key of keys) await lru.fetch(key)
  const base = await opsPerSecond((i) => lru.fetch(keys[i % KEYS] as string))
  const oursBytes = await opsPerSecond((i) => bytes.get(keys[i % KEYS] as string))
  const oursObj = await opsPerSecond((i) => objects.get(keys[i % KEYS] as string))
  rows.push({ scenario: 'local hit, bytes codec, 1 KB (vs lru-cache fetch hit)', ours: oursBytes, baseline: base, unit: 'ops/s', target: '≥ 0.67×' })
  rows.push({ scenario: 'local hit, msgpack, 1 KB object (vs lru-cache fetch hit)', ours: oursObj, baseline: base, unit: 'ops/s' })
  await gc.close()
}

function keyOwnedBy(gc: Groupcache, owner: string, prefix: string): string {
  for (let i = 0; ; i++) if (gc.ownerOf(`${prefix}${i}`) === owner) return `${prefix}${i}`
}

async function peerFetch(rows: Row[]): Promise<void> {
  const ports = await reservePorts(2)
  const urls = urlsFor(ports)
  const nodes = urls.map((self) => new Groupcache({ self, peers: urls }))
  await Promise.all(nodes.map((gc, i) => gc.listen({ host: '127.0.0.1', port: ports[i] })))
  const closeAll = (): Promise<unknown> => Promise.all(nodes.map((gc) => gc.close()))
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': payload.length })
    res.end(payload)
  })
  let payload: Uint8Array = new Uint8Array(0)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 32 })
  try {
    for (const size of [1024, 64 * 1024]) {
      const value = Buffer.alloc(size, 7)
      payload = encodeGetResponse({ value })
      const name = `g${size}`
      const groups = nodes.map((gc) => gc.newGroup<Uint8Array>({ name, maxBytes: 256 << 20, codec: 'bytes', promote: false, load: () => value }))
      // Keys owned by node 1, fetched by node 0 every time (no hot copies).
      const keys = Array.from({ length: 64 }, (_, i) => keyOwnedBy(nodes[0]!, urls[1]!, `p${i}-`))
      for (const key of keys) await groups[1]!.get(key)
      let k = 0
      for (const concurrency of [1, 16, 64]) {
        const base = await concurrentOps(async () => {
          const res = await pool.request({ path: '/_groupcache/x/y', method: 'GET' })
          await res.body.arrayBuffer()
        }, concurrency)
        const ours = await concurrentOps(() => groups[0]!.get(keys[k++ % keys.length] as string), concurrency)
        rows.push({
          scenario: `peer fetch, ${size / 1024} KB, concurrency ${concurrency} (vs undici Pool → bare node:http)`,
          ours,
          baseline: base,
          unit: 'req/s',
          ...(concurrency === 16 ? { target: '≥ 0.8×' } : {}),
        })
      }
    }
  } finally {
    await pool.close()
    await new Promise((resolve) => server.close(resolve))
    await closeAll()
  }
}

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1)
}

const rows: Row[] = []
await localHits(rows)
await peerFetch(rows)
console.log(`\n## Core (${quick ? 'quick' : 'full'} run) — Node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`)
console.log('| scenario | groupcache | baseline | ratio | target |')
console.log('|---|---:|---:|---:|---|')
for (const r of rows) {
  console.log(`| ${r.scenario} | ${fmt(r.ours)} ${r.unit} | ${fmt(r.baseline)} ${r.unit} | ${(r.ours / r.baseline).toFixed(2)}× | ${r.target ?? '—'} |`)
}

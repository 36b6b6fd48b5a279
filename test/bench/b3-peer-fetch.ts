// B3: a peer fetch on a non-owner (no hot copies), served by the owner through
// gc.listen() and through each adapter, beside an undici Pool asking a bare
// node:http server for the same bytes.
import { createServer } from 'node:http'
import express from 'express'
import Fastify from 'fastify'
import { type Group, Groupcache } from 'groupcache'
import { groupcache as expressGroupcache } from 'groupcache/express'
import fastifyGroupcache from 'groupcache/fastify'
import { groupcache as koaGroupcache } from 'groupcache/koa'
import Koa from 'koa'
import { Pool } from 'undici'
import type { GroupStats } from '../../dist/src/stats.js'
import { encodeGetResponse } from '../../dist/src/wire.js'
import { type Child, startChildren, stopChildren } from '../helpers/child.js'
import { reservePorts, urlsFor } from '../helpers/ports.js'
import type { ClientConfig, RunResult } from './b3c-client.js'
import { closeServer, fmtInt, fmtRatio, listenOn, median, printTable, quick, record, requestsPerSecond } from './lib.js'

const SIZES = [1024, 64 * 1024]
const CONCURRENCIES = [1, 16, 64]
const KEYS = 1024 // in rotation: no two concurrent gets share a key, so none is deduplicated
const SERVERS = ['listen', 'express', 'fastify', 'koa'] as const
/** SECRET is both nodes' `secret`. */
const SECRET = 'b3-bench-secret'
type ServerKind = (typeof SERVERS)[number]

/** Pair is an owner served one way and a non-owner that fetches from it. */
interface Pair {
  kind: ServerKind
  fetcher: Groupcache
  groups: Map<number, { fetch: Group<Uint8Array>; keys: string[] }>
  close(): Promise<void>
}

/** serve makes `owner` answer peers on `port`, the way `kind` says. */
async function serve(kind: ServerKind, owner: Groupcache, port: number): Promise<() => Promise<void>> {
  switch (kind) {
    case 'listen':
      await owner.listen({ port, host: '127.0.0.1' })
      return async () => {}
    case 'express': {
      const app = express()
      app.use(expressGroupcache(owner))
      const server = createServer(app)
      await listenOn(server, port)
      return () => closeServer(server)
    }
    case 'fastify': {
      const app = Fastify({ logger: false })
      await app.register(fastifyGroupcache, { groupcache: owner })
      await app.listen({ port, host: '127.0.0.1' })
      return () => app.close()
    }
    case 'koa': {
      const app = new Koa()
      app.use(koaGroupcache(owner))
      const server = createServer(app.callback())
      await listenOn(server, port)
      return () => closeServer(server)
    }
  }
}

async function makePair(kind: ServerKind, values: Map<number, Buffer>): Promise<Pair> {
  const [fetcherPort, ownerPort] = (await reservePorts(2)) as [number, number]
  const [fetcherUrl, ownerUrl] = urlsFor([fetcherPort, ownerPort]) as [string, string]
  const peers = [fetcherUrl, ownerUrl]
  // A secret, as README sets one on every node (the adapters then answer
  // peers in front of the framework).
  const owner = new Groupcache({ self: ownerUrl, peers, secret: SECRET })
  const fetcher = new Groupcache({ self: fetcherUrl, peers, secret: SECRET })
  const groups = new Map<number, { fetch: Group<Uint8Array>; keys: string[] }>()
  for (const [size, value] of values) {
    const name = `g${size}`
    const own = owner.newGroup<Uint8Array>({ name, maxBytes: 256 << 20, codec: 'bytes', load: () => value })
    const fetch = fetcher.newGroup<Uint8Array>({ name, maxBytes: 256 << 20, codec: 'bytes', promote: false, load: () => value })
    // Keys owned by the owner; it holds them all, so every fetch is a remote hit.
    const keys: string[] = []
    for (let i = 0; keys.length < KEYS && i < KEYS * 100; i++) if (fetcher.ownerOf(`k${i}`) === ownerUrl) keys.push(`k${i}`)
    for (const key of keys) await own.get(key)
    groups.set(size, { fetch, keys })
  }
  const stop = await serve(kind, owner, ownerPort)
  return {
    kind,
    fetcher,
    groups,
    close: async () => {
      await fetcher.close()
      await stop()
      await owner.close()
    },
  }
}

/** run measures B3 and prints its table. */
export async function run(): Promise<void> {
  const rounds = quick ? 1 : 5
  const seconds = quick ? 0.15 : 1
  const values = new Map(SIZES.map((size) => [size, Buffer.alloc(size, 7)]))
  const payloads = new Map(SIZES.map((size) => [size, encodeGetResponse({ value: values.get(size) as Buffer })]))
  let payload: Uint8Array = new Uint8Array(0)
  const bare = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': payload.length })
    res.end(payload)
  })
  const [barePort] = (await reservePorts(1)) as [number]
  await listenOn(bare, barePort)
  const pool = new Pool(`http://127.0.0.1:${barePort}`, { connections: 32 })
  const pairs: Pair[] = []
  const rows: string[][] = []
  try {
    for (const kind of SERVERS) pairs.push(await makePair(kind, values))
    for (const size of SIZES) {
      payload = payloads.get(size) as Uint8Array
      for (const concurrency of CONCURRENCIES) {
        const contenders: Array<[string, () => Promise<unknown>]> = [
          [
            'baseline',
            async () => {
              const res = await pool.request({ path: '/_groupcache/x/y', method: 'GET' })
              await res.body.arrayBuffer()
            },
          ],
        ]
        for (const pair of pairs) {
          const { fetch, keys } = pair.groups.get(size) as { fetch: Group<Uint8Array>; keys: string[] }
          let k = 0
          contenders.push([pair.kind, () => fetch.get(keys[k++ % keys.length] as string)])
        }
        for (const [, op] of contenders) for (let i = 0; i < (quick ? 150 : 300); i++) await op() // warm up
        const samples = new Map<string, number[]>(contenders.map(([name]) => [name, []]))
        for (let r = 0; r < rounds; r++) {
          for (const [name, op] of contenders) samples.get(name)?.push(await requestsPerSecond(op, concurrency, seconds))
        }
        const rate = (name: string): number => median(samples.get(name) as number[])
        const base = rate('baseline')
        const cell = (kind: ServerKind): string => `${fmtInt(rate(kind))} (${fmtRatio(rate(kind) / base)})`
        const listenRatio = rate('listen') / base
        rows.push([
          `${size / 1024} KB`,
          String(concurrency),
          fmtInt(base),
          fmtInt(rate('listen')),
          fmtRatio(listenRatio),
          cell('express'),
          cell('fastify'),
          cell('koa'),
          concurrency === 16 ? record('B3', `${size / 1024} KB, c16, gc.listen() ≥ 0.8×`, listenRatio >= 0.8) : '—',
        ])
      }
    }
    // Every get above had to be a fetch from the owner, and none may have failed.
    const checks: string[] = []
    for (const pair of pairs) {
      for (const [size, { fetch }] of pair.groups) {
        const s = fetch.stats
        if (s.peerErrors > 0 || s.cacheHits > 0 || s.localLoads > 0) {
          checks.push(`${pair.kind} ${size / 1024} KB: peerErrors ${s.peerErrors}, cacheHits ${s.cacheHits}, localLoads ${s.localLoads}`)
        }
      }
    }
    printTable(
      'B3 — peer fetch on a non-owner (`promote: false`), req/s (ratio to the baseline)',
      [
        'value',
        'concurrency',
        'baseline: undici Pool → bare node:http',
        'gc.listen()',
        'ratio',
        'Express adapter',
        'Fastify adapter',
        'Koa adapter',
        'target (dedicated port)',
      ],
      rows,
      [
        `median of ${rounds} interleaved round${rounds > 1 ? 's' : ''} of ${seconds} s per contender; everything in this one process on 127.0.0.1 (client and server share its event loop, so a ratio compares the whole cost of a request).`,
        `groupcache: \`group.get()\` on the non-owner, over ${KEYS} keys in rotation that the owner holds: a full peer round trip each (protobuf answer, a fresh copy for the caller), both nodes with a \`secret\` (so the adapters answer peers in front of their framework). Baseline: the same protobuf bytes from a server that does nothing else, read with \`pool.request()\`; both sides keep 32 connections.`,
        checks.length === 0
          ? 'checked: every groupcache get was a fetch from the owner (no local hit, no load, no peer error).'
          : `**check failed**: ${checks.join('; ')}`,
      ],
    )
  } finally {
    await Promise.all(pairs.map((p) => p.close()))
    await pool.close()
    await closeServer(bare)
  }
}

// B3c: the client side alone. Each contender runs in a child process of its
// own (b3c-client.ts), with a bare node:http server of its own that answers
// every request with the same GetResponse and our protocol marker, as an
// owner holding every key would: the server costs both the same, so the
// ratio compares what each client costs, undici's `pool.request()` against a
// whole `group.get()` of a non-owner. Processes of their own, because in one
// process each contender pays for garbage collections the other's
// allocations start: with 64 KB answers the one that allocates more small
// objects pays most of the collections that both sides' buffers call for.

const CLIENT_SIZES = [1024, 64 * 1024]
const CLIENT_CONCURRENCIES = [1, 16, 64]
const CLIENT_SCRIPT = 'test/bench/b3c-client.ts'

/** runClient measures B3c and prints its table. */
export async function runClient(): Promise<void> {
  const rounds = quick ? 3 : 7
  const seconds = quick ? 0.2 : 1
  const rows: string[][] = []
  const checks: string[] = []
  for (const size of CLIENT_SIZES) {
    const children = await startChildren(
      (['baseline', 'group.get'] as const).map((contender) => ({
        what: `B3c ${contender} (${size} B)`,
        script: CLIENT_SCRIPT,
        args: [JSON.stringify({ contender, size, keys: KEYS } satisfies ClientConfig)],
        ready: 'ipc' as const,
        stopWith: { op: 'close' },
      })),
    )
    const [baseline, ours] = children as [Child, Child]
    const run = (child: Child, concurrency: number, s: number): Promise<RunResult> =>
      child.call<RunResult>({ op: 'run', concurrency, seconds: s }, 120_000)
    try {
      for (const concurrency of CLIENT_CONCURRENCIES) {
        for (const child of children) await run(child, concurrency, quick ? 0.2 : 0.5) // warm up
        const samples: Record<'baseline' | 'ours', RunResult[]> = { baseline: [], ours: [] }
        for (let r = 0; r < rounds; r++) {
          samples.baseline.push(await run(baseline, concurrency, seconds))
          samples.ours.push(await run(ours, concurrency, seconds))
        }
        const rate = (list: RunResult[]): number => median(list.map((x) => x.rate))
        const cpu = (list: RunResult[]): number => median(list.map((x) => x.cpuUs))
        const ratio = rate(samples.ours) / rate(samples.baseline)
        rows.push([
          `${size / 1024} KB`,
          String(concurrency),
          fmtInt(rate(samples.baseline)),
          fmtInt(rate(samples.ours)),
          fmtRatio(ratio),
          `${cpu(samples.baseline).toFixed(0)} / ${cpu(samples.ours).toFixed(0)} µs (${fmtRatio(cpu(samples.baseline) / cpu(samples.ours))})`,
          concurrency === 16 ? record('B3c', `${size / 1024} KB, c16, group.get() ≥ 0.8×`, ratio >= 0.8) : '—',
        ])
      }
      const s = await ours.call<GroupStats>({ op: 'stats' })
      if (s.peerErrors > 0 || s.cacheHits > 0 || s.localLoads > 0) {
        checks.push(`${size / 1024} KB: peerErrors ${s.peerErrors}, cacheHits ${s.cacheHits}, localLoads ${s.localLoads}`)
      }
    } finally {
      await stopChildren(children)
    }
  }
  printTable(
    'B3c — the client: `group.get()` of keys cached on their owner (`promote: false`), req/s (ratio to the baseline)',
    [
      'value',
      'concurrency',
      'baseline: undici Pool → bare node:http',
      'group.get()',
      'ratio',
      'CPU per request: baseline / group.get() (ratio)',
      'target',
    ],
    rows,
    [
      `median of ${rounds} interleaved rounds of ${seconds} s per contender. Each contender is a child process holding a bare node:http server (one GetResponse with our protocol marker for every request, as an owner holding every key would) and its client, on 127.0.0.1; one runs at a time. A ratio compares the whole cost of a request, the same server in both.`,
      `groupcache: \`group.get()\` on a non-owner over ${KEYS} keys in rotation (ring lookup, flight, request with its deadline, decode, breaker, the caller's own copy). Baseline: \`pool.request()\` and \`body.arrayBuffer()\`. Both keep 32 connections. CPU per request is the child's user + system time (its GC threads included) over a round's requests; its ratio is baseline ÷ group.get().`,
      checks.length === 0
        ? 'checked: every groupcache get was a fetch from the owner (no local hit, no load, no peer error).'
        : `**check failed**: ${checks.join('; ')}`,
    ],
  )
}

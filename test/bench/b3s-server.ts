// The server side of B3s, one child process per contender: a groupcache node
// (built package) serving the peer endpoint, or a server that answers every
// request with the same bytes and does nothing else. Every groupcache node is
// a single-node cluster (self = its own URL, peers = [self]) whose group `g`
// (codec 'bytes') holds KEYS keys, all loaded before it says it is ready, so
// every measured request is a hit on the owner.
//
//   node:http     bare node:http: writeHead + end of the protobuf answer
//   control       the same bare server as a contender (B3s's A/A row: what
//                 the harness reads between two identical servers)
//   listen        gc.listen()
//   express       app.use(groupcache(gc)) on Express 5 (with a secret, peers
//                 are served in front of Express: servePeersFirst)
//   fastify       app.register(groupcache, { groupcache: gc }) on Fastify 5
//   koa           app.use(groupcache(gc)) on Koa 3
//   express-framework, fastify-framework, koa-framework
//                 the same with servePeersFirst: false: peers go through the
//                 framework to the adapter (the adapters before servePeersFirst)
//   express-bare  Express answering the same bytes from a first middleware
//   fastify-bare  Fastify answering them from a route under the base path
//   koa-bare      Koa answering them from a first middleware
//
// argv[2] is a ServerConfig (JSON). Over IPC it says { ready: true }, answers
// { op: 'counter' } with a Counter, and exits on { op: 'close' }
// (process.exit, so that `node --cpu-prof` writes its profile) and when the
// parent goes away.
import { createServer, type Server } from 'node:http'
import express from 'express'
import Fastify from 'fastify'
import { Groupcache } from 'groupcache'
import { groupcache as expressGroupcache } from 'groupcache/express'
import fastifyGroupcache from 'groupcache/fastify'
import { groupcache as koaGroupcache } from 'groupcache/koa'
import Koa from 'koa'
import { encodeGetResponse } from '../../dist/src/wire.js'
import { runAsChild } from './lib.js'

/** Kind is one contender of B3s. */
export type Kind =
  | 'node:http'
  | 'control'
  | 'listen'
  | 'express'
  | 'fastify'
  | 'koa'
  | 'express-framework'
  | 'fastify-framework'
  | 'koa-framework'
  | 'express-bare'
  | 'fastify-bare'
  | 'koa-bare'

/** ServerConfig is what the parent passes as argv[2]. */
export interface ServerConfig {
  kind: Kind
  port: number
  /** size is the value's length in bytes. */
  size: number
  keys: number
  /** secret, when set, is every groupcache node's `secret` (the bare servers check nothing). */
  secret?: string | undefined
}

/** Counter is what the child answers to { op: 'counter' }. */
export interface Counter {
  /** cpuMicros: user + system CPU time of this process so far. */
  cpuMicros: number
  /** gcMicros: time spent in garbage collection so far (PerformanceObserver 'gc'). */
  gcMicros: number
  /** served: the group's serverRequests and cacheHits (absent for a bare server). */
  served?: { serverRequests: number; cacheHits: number; loads: number }
  monoMicros: number
  /** requests: the requests this server answered so far (the group's serverRequests, or its own count). */
  requests: number
}

const config = JSON.parse(process.argv[2] ?? '{}') as ServerConfig
const self = `http://127.0.0.1:${config.port}`
const value = Buffer.alloc(config.size, 7)
const BASE = '/_groupcache/'
/** FRAME is the answer groupcache gives for a key of `g`, for the bare servers to send. */
const FRAME = Buffer.from(encodeGetResponse({ value }))
// The headers groupcache's answer carries, so that the bare servers write the same bytes.
const HEADERS = { 'content-type': 'application/x-protobuf', 'x-groupcache-protocol': '1', 'content-length': String(FRAME.length) }

let gcMicros = 0
// The bare servers count their answers (one increment: the groupcache nodes count theirs in stats).
let answered = 0
const { PerformanceObserver } = await import('node:perf_hooks')
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMicros += entry.duration * 1000
}).observe({ entryTypes: ['gc'] })

function listen(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(config.port, '127.0.0.1', () => resolve())
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

async function node(): Promise<Groupcache> {
  const gc = new Groupcache({ self, peers: [self], ...(config.secret === undefined ? {} : { secret: config.secret }) })
  const group = gc.newGroup<Uint8Array>({ name: 'g', maxBytes: 256 << 20, codec: 'bytes', load: () => value })
  for (let i = 0; i < config.keys; i++) await group.get(`k${i}`)
  return gc
}

let gc: Groupcache | undefined
/** adapterOptions: the *-framework kinds leave peers to the framework; the others keep the default. */
const adapterOptions = config.kind.endsWith('-framework') ? { servePeersFirst: false } : {}

async function start(): Promise<() => Promise<void>> {
  switch (config.kind) {
    case 'node:http':
    case 'control': {
      const server = createServer((_req, res) => {
        answered++
        res.writeHead(200, HEADERS)
        res.end(FRAME)
      })
      await listen(server)
      return () => closeServer(server)
    }
    case 'listen': {
      gc = await node()
      await gc.listen({ port: config.port, host: '127.0.0.1' })
      const own = gc
      return () => own.close()
    }
    case 'express':
    case 'express-framework':
    case 'express-bare': {
      const app = express()
      if (config.kind !== 'express-bare') {
        gc = await node()
        app.use(expressGroupcache(gc, adapterOptions))
      } else {
        app.use((_req, res) => {
          answered++
          res.writeHead(200, HEADERS)
          res.end(FRAME)
        })
      }
      const server = createServer(app)
      await listen(server)
      const own = gc
      return async () => {
        await closeServer(server)
        await own?.close()
      }
    }
    case 'fastify':
    case 'fastify-framework':
    case 'fastify-bare': {
      const app = Fastify({ logger: false })
      if (config.kind !== 'fastify-bare') {
        gc = await node()
        await app.register(fastifyGroupcache, { groupcache: gc, ...adapterOptions })
      } else {
        app.get(`${BASE}*`, (_request, reply) => {
          answered++
          return reply.headers(HEADERS).send(FRAME)
        })
      }
      await app.listen({ port: config.port, host: '127.0.0.1' })
      const own = gc
      return async () => {
        await app.close()
        await own?.close()
      }
    }
    case 'koa':
    case 'koa-framework':
    case 'koa-bare': {
      const app = new Koa()
      if (config.kind !== 'koa-bare') {
        gc = await node()
        app.use(koaGroupcache(gc, adapterOptions))
      } else {
        app.use(async (ctx) => {
          answered++
          ctx.set(HEADERS)
          ctx.body = FRAME
        })
      }
      const server = createServer(app.callback())
      await listen(server)
      const own = gc
      return async () => {
        await closeServer(server)
        await own?.close()
      }
    }
  }
}

function counter(): Counter {
  const cpu = process.cpuUsage()
  const answer: Counter = {
    cpuMicros: cpu.user + cpu.system,
    gcMicros,
    monoMicros: Number(process.hrtime.bigint() / 1000n),
    requests: answered,
  }
  const stats = gc?.stats().groups.g?.stats
  if (stats !== undefined) {
    answer.served = { serverRequests: stats.serverRequests, cacheHits: stats.cacheHits, loads: stats.loads }
    answer.requests = stats.serverRequests
  }
  return answer
}

runAsChild(await start(), { frame: FRAME.toString('base64') }, (msg) => {
  if (msg.op === 'counter') process.send?.({ counter: counter() })
})

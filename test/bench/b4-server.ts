// The server side of B4, one child process per framework: an Express, Fastify
// or Koa app on 127.0.0.1 that is a single-node groupcache cluster (self =
// its own URL, peers = [self]), built from the BUILT package
// (`groupcache/express`, …, resolved to dist/). Routes:
//
//   GET /plain    the handler: a precomputed ~1 KB JSON buffer, sent the
//                 framework's ordinary way, with content-type application/json
//   GET /cached   the same handler behind the framework's cached-route form
//                 (Express and Koa `gc.cacheRoute({ ttlMs })`, Fastify's route
//                 `config: { groupcache: { ttlMs } }`)
//   GET /counter  JSON: how often each handler ran, the route group's
//                 counters, and this process's CPU time (µs)
//
// argv[2] is a ServerConfig (JSON). It tells the parent it is ready over IPC
// ({ ready: true }), exits on { op: 'close' } (process.exit, so that
// `node --cpu-prof` writes its profile), and when the parent goes away.
import { createServer, type Server } from 'node:http'
import Router from '@koa/router'
import express from 'express'
import Fastify from 'fastify'
import type { Groupcache } from 'groupcache'
import { groupcache as expressGroupcache } from 'groupcache/express'
import fastifyGroupcache from 'groupcache/fastify'
import { groupcache as koaGroupcache } from 'groupcache/koa'
import Koa from 'koa'
import { runAsChild } from './lib.js'

/** Framework is one of the adapters B4 measures. */
export type Framework = 'express' | 'fastify' | 'koa'

/** ServerConfig is what the parent passes as argv[2]. */
export interface ServerConfig {
  framework: Framework
  port: number
  ttlMs: number
}

/** CounterAnswer is what `GET /counter` answers. */
export interface CounterAnswer {
  runs: { plain: number; cached: number }
  /** routes: the `_routes` group's counters (gets, cacheHits, loads, …). */
  routes: Record<string, number> | undefined
  /** cpuMicros: user + system CPU time of this process so far. */
  cpuMicros: number
  /** monoMicros: this process's monotonic clock (µs), to crop a `--cpu-prof` profile to a window. */
  monoMicros: number
}

/**
 * body is the precomputed response: a JSON array of 16 small records, about
 * 1 KB, built once at start-up. Both routes send these very bytes.
 */
function makeBody(): Buffer {
  const items = Array.from({ length: 16 }, (_, i) => ({ id: i, name: `item ${i}`, price: 100 + i * 7, tags: ['a', 'b'] }))
  let json = JSON.stringify({ items, note: '' })
  json = JSON.stringify({ items, note: 'x'.repeat(Math.max(0, 1024 - json.length)) })
  return Buffer.from(json)
}

const config = JSON.parse(process.argv[2] ?? '{}') as ServerConfig
const self = `http://127.0.0.1:${config.port}`
const BODY = makeBody()
const JSON_TYPE = 'application/json'
const runs = { plain: 0, cached: 0 }
const routeOptions = { ttlMs: config.ttlMs }

function counter(gc: Groupcache): CounterAnswer {
  const cpu = process.cpuUsage()
  const group = gc.stats().groups._routes
  return {
    runs: { ...runs },
    routes: group === undefined ? undefined : { ...(group.stats as unknown as Record<string, number>) },
    cpuMicros: cpu.user + cpu.system,
    monoMicros: Number(process.hrtime.bigint() / 1000n),
  }
}

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

async function start(): Promise<() => Promise<void>> {
  switch (config.framework) {
    case 'express': {
      const gc = expressGroupcache({ self, peers: [self] })
      const app = express()
      app.use(gc)
      const handler = (name: keyof typeof runs) => (_req: express.Request, res: express.Response) => {
        runs[name]++
        res.type(JSON_TYPE).send(BODY)
      }
      app.get('/plain', handler('plain'))
      app.get('/cached', gc.cacheRoute(routeOptions), handler('cached'))
      app.get('/counter', (_req, res) => {
        res.json(counter(gc.groupcache))
      })
      const server = createServer(app)
      await listen(server)
      return async () => {
        await closeServer(server)
        await gc.groupcache.close()
      }
    }
    case 'fastify': {
      const app = Fastify({ logger: false })
      await app.register(fastifyGroupcache, { self, peers: [self] })
      const handler = (name: keyof typeof runs) => async (_request: unknown, reply: import('fastify').FastifyReply) => {
        runs[name]++
        return reply.type(JSON_TYPE).send(BODY)
      }
      app.get('/plain', handler('plain'))
      app.get('/cached', { config: { groupcache: routeOptions } }, handler('cached'))
      app.get('/counter', async () => counter(app.groupcache))
      await app.listen({ port: config.port, host: '127.0.0.1' })
      return () => app.close()
    }
    case 'koa': {
      const gc = koaGroupcache({ self, peers: [self] })
      const app = new Koa()
      const router = new Router()
      const handler = (name: keyof typeof runs) => async (ctx: Koa.Context) => {
        runs[name]++
        ctx.type = JSON_TYPE
        ctx.body = BODY
      }
      router.get('/plain', handler('plain'))
      router.get('/cached', gc.cacheRoute(routeOptions), handler('cached'))
      router.get('/counter', async (ctx) => {
        ctx.body = counter(gc.groupcache)
      })
      app.use(gc)
      app.use(router.routes())
      const server = createServer(app.callback())
      await listen(server)
      return async () => {
        await closeServer(server)
        await gc.groupcache.close()
      }
    }
  }
}

runAsChild(await start())

// One app with cached routes, in the framework named by FRAMEWORK, run as a
// replica in a child process (PORT, SELF, PEERS from the environment). Each
// handler counts its runs; GET /counts reports them. The test steers the
// replica through /test/* routes: its clock (`now`, so that expiry needs no
// waiting), gates that hold a route's handler until released (so that
// concurrent requests overlap for sure, however slow the machine), and the
// route group's stats (to see that every request has reached the group),
// and whether every cached handler fails (to see stale-if-error).
import { createServer } from 'node:http'
import Router from '@koa/router'
import express from 'express'
import Fastify, { type FastifyReply } from 'fastify'
import Koa from 'koa'
import { groupcache as expressGroupcache } from '../../adapters/express.js'
import fastifyGroupcache from '../../adapters/fastify.js'
import { groupcache as koaGroupcache } from '../../adapters/koa.js'
import { type CacheRouteOptions, DEFAULT_ROUTE_GROUP } from '../../adapters/route-cache.js'
import type { Groupcache } from '../../src/index.js'
import { type Deferred, deferred, PEER_TIMEOUT_MS } from './wait.js'

const framework = process.env.FRAMEWORK as 'express' | 'fastify' | 'koa'
const port = Number(process.env.PORT)
const self = process.env.SELF as string
const peers = (process.env.PEERS as string).split(',')
const ttlMs = Number(process.env.ROUTE_TTL_MS ?? 60_000)
const counts: Record<string, number> = {}
let failing = false
// The clock of every node of the test: CLOCK_MS (the same for all of them),
// moved on only by the test, so that an entry's age is exactly what the test
// says, however long the machine takes. Without CLOCK_MS, real time.
const clockStart = process.env.CLOCK_MS === undefined ? undefined : Number(process.env.CLOCK_MS)
let advancedMs = 0
const now = (): number => (clockStart ?? Date.now()) + advancedMs
// A peer request may wait on a held handler for as long as the test holds
// it: far longer than the default, so that only a real failure times out.
const peerTimeoutMs = PEER_TIMEOUT_MS
// Routes whose handler waits, once counted, until the test releases it.
const gates = new Map<string, Deferred<void>>()
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Reply is what a route answers, whatever the framework. */
interface Reply {
  status?: number
  headers?: Record<string, string>
  body: string
}

type Params = Record<string, string>

/** ROUTES are the cached routes: path, cacheRoute options, and handler. */
const ROUTES: Array<[string, CacheRouteOptions, (params: Params, query: string, headers: Record<string, unknown>) => Promise<Reply>]> = [
  [
    '/report/:id',
    { ttlMs },
    async (p, q) => (await sleep(50), { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: p.id, q, by: self }) }),
  ],
  ['/vary', { ttlMs, vary: ['accept-language'] }, async (_p, _q, h) => ({ body: `lang=${String(h['accept-language'])}` })],
  ['/cookie', { ttlMs }, async () => ({ headers: { 'set-cookie': 'session=abc' }, body: 'with a cookie' })],
  ['/nostore', { ttlMs }, async () => ({ headers: { 'cache-control': 'no-store' }, body: 'do not store' })],
  ['/big', { ttlMs, maxBodyBytes: 100 }, async () => ({ body: 'x'.repeat(1000) })],
  [
    '/boom',
    { ttlMs },
    async () => {
      await sleep(50)
      throw new Error('handler failed')
    },
  ],
  ['/etag', { ttlMs }, async () => ({ headers: { etag: '"mine"' }, body: 'tagged' })],
  [
    '/private',
    { ttlMs, private: true, key: (req) => `/private?user=${String(req.headers.authorization)}`, vary: ['authorization'] },
    async (_p, _q, h) => ({ body: `for ${String(h.authorization)}` }),
  ],
  // The acceptance route for stale responses: a 300 ms render, 1 s TTL, 20 s stale window.
  [
    '/slow/:id',
    { ttlMs: 1_000, staleMs: 20_000, cacheControl: true },
    async (p) => (await sleep(300), { body: `slow ${p.id} #${counts['/slow/:id']}` }),
  ],
]

function count(path: string): void {
  counts[path] = (counts[path] ?? 0) + 1
}

async function run(path: string, params: Params, query: string, headers: Record<string, unknown>): Promise<Reply> {
  count(path)
  await gates.get(path)?.promise
  if (failing) throw new Error('handler failing')
  const route = ROUTES.find(([p]) => p === path)!
  return route[2](params, query, headers)
}

const queryOf = (url: string): string => (url.includes('?') ? url.slice(url.indexOf('?') + 1) : '')

/**
 * control answers the test's requests (any method): /test/advance?ms=N moves
 * the clock on; /test/hold?path=P and /test/release?path=P hold and let go
 * of a route's handler; /test/stats answers the route group's stats;
 * /test/failing?on=1 (or 0) makes every cached handler throw (or not).
 */
function control(op: string, query: string, gc: Groupcache): unknown {
  const params = new URLSearchParams(query)
  const path = params.get('path') ?? ''
  switch (op) {
    case 'advance':
      advancedMs += Number(params.get('ms'))
      return { advancedMs }
    case 'hold':
      if (!gates.has(path)) gates.set(path, deferred<void>())
      return { held: path }
    case 'release':
      gates.get(path)?.resolve()
      gates.delete(path)
      return { released: path }
    case 'stats':
      return gc.getGroup(DEFAULT_ROUTE_GROUP)?.stats
    case 'failing':
      failing = params.get('on') === '1'
      return { failing }
    default:
      return { unknown: op }
  }
}

if (framework === 'express') {
  const app = express()
  const gc = expressGroupcache({ self, peers, now, peerTimeoutMs })
  app.use(gc)
  app.get('/counts', (_req, res) => void res.json(counts))
  app.all('/test/:op', (req, res) => void res.json(control(req.params.op as string, queryOf(req.originalUrl), gc.groupcache)))
  for (const [path, options] of ROUTES) {
    app.get(path, gc.cacheRoute(options), async (req, res, next) => {
      try {
        const r = await run(path, req.params as Params, queryOf(req.originalUrl), req.headers)
        res
          .status(r.status ?? 200)
          .set(r.headers ?? {})
          .send(r.body)
      } catch (err) {
        next(err)
      }
    })
  }
  app.post('/report/:id', gc.cacheRoute({ ttlMs }), (_req, res) => {
    count('POST /report/:id')
    res.send('posted')
  })
  createServer(app).listen(port, '127.0.0.1', () => console.log('listening'))
} else if (framework === 'koa') {
  const app = new Koa()
  app.silent = true
  const gc = koaGroupcache({ self, peers, now, peerTimeoutMs })
  const router = new Router()
  router.get('/counts', (ctx) => {
    ctx.body = counts
  })
  router.all('/test/:op', (ctx) => {
    ctx.body = control(ctx.params.op as string, ctx.querystring, gc.groupcache)
  })
  for (const [path, options] of ROUTES) {
    router.get(path, gc.cacheRoute(options), async (ctx) => {
      const r = await run(path, ctx.params as Params, ctx.querystring, ctx.headers)
      ctx.status = r.status ?? 200
      ctx.set(r.headers ?? {})
      ctx.body = r.body
    })
  }
  router.post('/report/:id', gc.cacheRoute({ ttlMs }), (ctx) => {
    count('POST /report/:id')
    ctx.body = 'posted'
  })
  app.use(gc)
  app.use(router.routes())
  createServer(app.callback()).listen(port, '127.0.0.1', () => console.log('listening'))
} else {
  const app = Fastify()
  await app.register(fastifyGroupcache, { self, peers, now, peerTimeoutMs })
  app.get('/counts', async () => counts)
  app.all<{ Params: { op: string } }>('/test/:op', async (request) => control(request.params.op, queryOf(request.url), app.groupcache))
  const send = (reply: FastifyReply, r: Reply): FastifyReply =>
    reply
      .code(r.status ?? 200)
      .headers(r.headers ?? {})
      .send(r.body)
  for (const [path, options] of ROUTES) {
    app.get(path, { config: { groupcache: options } }, async (request, reply) =>
      send(reply, await run(path, request.params as Params, queryOf(request.url), request.headers)),
    )
  }
  app.post('/report/:id', { config: { groupcache: { ttlMs } } }, async () => {
    count('POST /report/:id')
    return 'posted'
  })
  await app.listen({ port, host: '127.0.0.1' })
  console.log('listening')
}

// The adapters' servePeersFirst: with a secret, peers are answered from the
// HTTP server's request event, before the framework and the app's own
// middleware; without one, through the framework as before. Every answer is
// the one the framework path gives.
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { connect } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import express from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import Koa from 'koa'
import { groupcache as expressGroupcache } from '../../adapters/express.js'
import fastifyGroupcache from '../../adapters/fastify.js'
import { groupcache as koaGroupcache } from '../../adapters/koa.js'
import type { AdapterOptions } from '../../adapters/shared.js'
import { Groupcache, InvalidOptionError } from '../../src/index.js'
import { PROTOBUF } from '../../src/protocol.js'
import { decodeGetResponse } from '../../src/wire.js'
import { type RawAnswer, rawRequest } from '../helpers/raw.js'
import { ANSWER_TIMEOUT_MS } from '../helpers/wait.js'

const SELF = 'http://127.0.0.1:1'
const SECRET = 'serve-first-secret'
const AUTH = { authorization: `Bearer ${SECRET}` }
const PEER = '/_groupcache/g/k'
// A request the app's guard refuses with 401 'guarded' (an IP allow-list, an auth hook).
const BLOCKED = { ...AUTH, 'x-blocked': '1' }

type Framework = 'express' | 'express4' | 'fastify' | 'koa' | 'koa2'
const FRAMEWORKS: Framework[] = ['express', 'express4', 'fastify', 'koa', 'koa2']
const expressMajors = { express, express4: (await import('express4')).default as unknown as typeof express }
const koaMajors = { koa: Koa, koa2: (await import('koa2')).default as unknown as typeof Koa }

function node(secret: boolean): Groupcache {
  const gc = new Groupcache({ self: SELF, peers: [SELF], ...(secret ? { secret: SECRET } : {}) })
  gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => `v:${key}` })
  return gc
}

/**
 * App is a framework's app on 127.0.0.1 with the adapter mounted behind a
 * guard that records every request it sees (`seen`) and refuses those with
 * `x-blocked`, and with a catch-all after it that records what reached the
 * app's own routes (`routed`).
 */
interface App {
  server: Server
  port: number
  seen: string[]
  routed: string[]
  close(): Promise<void>
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

function listenOn(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
  })
}

async function startApp(framework: Framework, gc: Groupcache, options?: AdapterOptions): Promise<App> {
  const seen: string[] = []
  const routed: string[] = []
  switch (framework) {
    case 'express':
    case 'express4': {
      const app = expressMajors[framework]()
      app.use((req, res, next) => {
        seen.push(req.url)
        if (req.headers['x-blocked'] !== undefined) res.status(401).send('guarded')
        else next()
      })
      app.use(expressGroupcache(gc, options))
      app.use((req, res) => {
        routed.push(req.url)
        res.status(404).send('app')
      })
      const server = createServer(app)
      return { server, port: await listenOn(server), seen, routed, close: () => closeServer(server) }
    }
    case 'koa':
    case 'koa2': {
      const app = new koaMajors[framework]()
      app.use(async (ctx, next) => {
        seen.push(ctx.url)
        if (ctx.get('x-blocked') !== '') {
          ctx.status = 401
          ctx.body = 'guarded'
          return
        }
        await next()
      })
      app.use(koaGroupcache(gc, options))
      app.use(async (ctx) => {
        routed.push(ctx.url)
        ctx.status = 404
        ctx.body = 'app'
      })
      const server = createServer(app.callback())
      return { server, port: await listenOn(server), seen, routed, close: () => closeServer(server) }
    }
    case 'fastify': {
      const app = await fastifyApp(gc, options, seen)
      app.setNotFoundHandler((request, reply) => {
        routed.push(request.url)
        void reply.code(404).send('app')
      })
      await app.listen({ host: '127.0.0.1', port: 0 })
      return { server: app.server, port: (app.server.address() as AddressInfo).port, seen, routed, close: () => app.close() }
    }
  }
}

/** fastifyApp is a Fastify app with the guard as an onRequest hook (added first, as an app would) and the plugin. */
async function fastifyApp(gc: Groupcache, options: AdapterOptions | undefined, seen: string[], http2 = false): Promise<FastifyInstance> {
  const app = (http2 ? Fastify({ http2: true }) : Fastify()) as unknown as FastifyInstance
  app.addHook('onRequest', (request, reply, done) => {
    seen.push(request.url)
    if (request.headers['x-blocked'] !== undefined) void reply.code(401).send('guarded')
    else done()
  })
  await app.register(fastifyGroupcache, { groupcache: gc, ...options })
  return app
}

/** attach sends the first peer request, through the framework: from it on Express and Koa know the server. */
async function attach(app: App): Promise<void> {
  assert.equal((await rawRequest(app.port, PEER, { headers: AUTH })).status, 200)
}

async function peerRequests(app: App, n: number, headers: Record<string, string> = AUTH): Promise<RawAnswer[]> {
  const answers: RawAnswer[] = []
  for (let i = 0; i < n; i++) answers.push(await rawRequest(app.port, `/_groupcache/g/k${i}`, { headers }))
  return answers
}

describe('with a secret, peers are answered in front of the framework', () => {
  for (const framework of FRAMEWORKS) {
    test(`${framework}: the app's middleware never sees peer requests, and still sees every other request`, async () => {
      const gc = node(true)
      const app = await startApp(framework, gc)
      try {
        await attach(app)
        const before = app.seen.length
        const answers = await peerRequests(app, 3, BLOCKED)
        assert.deepEqual(
          answers.map((a) => a.status),
          [200, 200, 200],
          'the guard that refuses x-blocked did not run',
        )
        assert.match(answers[2]!.body.toString('latin1'), /v:k2/)
        assert.equal(app.seen.length, before, 'no peer request reached the app')
        assert.equal((await rawRequest(app.port, '/users/1')).status, 404)
        assert.equal((await rawRequest(app.port, '/users/2', { headers: BLOCKED })).body.toString(), 'guarded')
        assert.deepEqual(app.seen.slice(before), ['/users/1', '/users/2'])
        assert.deepEqual(app.routed, ['/users/1'])
      } finally {
        await app.close()
        await gc.close()
      }
    })
  }

  test('fastify: from registration on, no peer request reaches a hook', async () => {
    const gc = node(true)
    const app = await startApp('fastify', gc)
    try {
      await peerRequests(app, 2)
      assert.deepEqual(app.seen, [])
    } finally {
      await app.close()
      await gc.close()
    }
  })

  test("fastify: a server of the app's own that hands requests to app.routing (as Fastify's servers for extra addresses do) is put behind the endpoint by its first peer request", async () => {
    const gc = node(true)
    const seen: string[] = []
    const app = await fastifyApp(gc, undefined, seen)
    await app.listen({ host: '127.0.0.1', port: 0 })
    const extra = createServer((req, res) => app.routing(req, res))
    try {
      const port = await listenOn(extra)
      const answers = []
      for (let i = 0; i < 3; i++) answers.push(await rawRequest(port, `/_groupcache/g/k${i}`, { headers: AUTH }))
      assert.deepEqual(
        answers.map((a) => a.status),
        [200, 200, 200],
      )
      assert.match(answers[2]!.body.toString('latin1'), /v:k2/)
      assert.deepEqual(seen, ['/_groupcache/g/k0'], 'only the first peer request went through Fastify')
      // The app's other requests on that server still go to Fastify.
      assert.equal((await rawRequest(port, '/users/1')).status, 404)
      assert.deepEqual(seen, ['/_groupcache/g/k0', '/users/1'])
      // close() gives the server its own listener back: peers go through Fastify again.
      await gc.close()
      await rawRequest(port, '/_groupcache/g/k1', { headers: AUTH })
      assert.deepEqual(seen, ['/_groupcache/g/k0', '/users/1', '/_groupcache/g/k1'])
    } finally {
      await closeServer(extra)
      await app.close()
      await gc.close()
    }
  })
})

describe('without a secret, peers go through the framework', () => {
  for (const framework of FRAMEWORKS) {
    test(`${framework}: by default the app's middleware sees, and may refuse, every peer request`, async () => {
      const gc = node(false)
      const app = await startApp(framework, gc)
      try {
        await attach(app)
        const answers = await peerRequests(app, 2, { 'x-blocked': '1' })
        assert.deepEqual(
          answers.map((a) => a.body.toString()),
          ['guarded', 'guarded'],
        )
        assert.deepEqual(app.seen, [PEER, '/_groupcache/g/k0', '/_groupcache/g/k1'])
      } finally {
        await app.close()
        await gc.close()
      }
    })
  }

  test('servePeersFirst: false keeps the framework in front with a secret too; true puts the endpoint first without one', async () => {
    for (const framework of FRAMEWORKS) {
      const withSecret = node(true)
      const off = await startApp(framework, withSecret, { servePeersFirst: false })
      const withoutSecret = node(false)
      const on = await startApp(framework, withoutSecret, { servePeersFirst: true })
      try {
        await attach(off)
        await peerRequests(off, 2)
        assert.equal(off.seen.length, 3, `${framework}: off`)
        await attach(on)
        const seen = on.seen.length
        await peerRequests(on, 2, {})
        assert.equal(on.seen.length, seen, `${framework}: on`)
      } finally {
        await Promise.all([off.close(), on.close()])
        await Promise.all([withSecret.close(), withoutSecret.close()])
      }
    }
  })

  test('every adapter refuses a servePeersFirst that is not a boolean', async () => {
    const gc = node(true)
    try {
      const bad = { servePeersFirst: 'yes' } as unknown as AdapterOptions
      assert.throws(() => expressGroupcache(gc, bad), InvalidOptionError)
      assert.throws(() => koaGroupcache(gc, bad), InvalidOptionError)
      await assert.rejects(async () => {
        const app = Fastify()
        try {
          await app.register(fastifyGroupcache, { groupcache: gc, ...bad })
        } finally {
          await app.close()
        }
      }, InvalidOptionError)
    } finally {
      await gc.close()
    }
  })
})

describe('a sub-app mounted under a path never serves peers at the root', () => {
  test("Express: parent.use('/api', child) serves /api/_groupcache/ through both apps and leaves the root's to the parent", async () => {
    for (const major of ['express', 'express4'] as const) {
      const gc = node(true)
      const child = expressMajors[major]()
      child.use(expressGroupcache(gc))
      const parent = expressMajors[major]()
      parent.use('/api', child)
      const server = createServer(parent)
      const port = await listenOn(server)
      try {
        const listeners = server.rawListeners('request')
        for (let i = 0; i < 3; i++) assert.equal((await rawRequest(port, `/api${PEER}`, { headers: AUTH })).status, 200, major)
        assert.equal((await rawRequest(port, PEER, { headers: AUTH })).status, 404, major)
        assert.deepEqual(server.rawListeners('request'), listeners, major)
      } finally {
        await closeServer(server)
        await gc.close()
      }
    }
  })

  test('Koa: behind a mount prefix, and inside an Express app under a path, it leaves the server alone', async () => {
    const gc = node(true)
    const mounted = koaGroupcache(gc)
    const app = new Koa()
    // What koa-mount does: the prefix is taken off the URL for the sub-app.
    app.use(async (ctx, next) => {
      if (!ctx.url.startsWith('/api/')) return next()
      ctx.url = ctx.url.slice('/api'.length)
      await mounted(ctx, next)
    })
    const koaServer = createServer(app.callback())
    const koaPort = await listenOn(koaServer)
    const inner = new Koa()
    inner.use(koaGroupcache(gc))
    const outer = express()
    outer.use('/koa', inner.callback())
    const expressServer = createServer(outer)
    const expressPort = await listenOn(expressServer)
    try {
      const listeners = [koaServer.rawListeners('request'), expressServer.rawListeners('request')]
      for (let i = 0; i < 3; i++) {
        assert.equal((await rawRequest(koaPort, `/api${PEER}`, { headers: AUTH })).status, 200)
        assert.equal((await rawRequest(expressPort, `/koa${PEER}`, { headers: AUTH })).status, 200)
      }
      assert.equal((await rawRequest(koaPort, PEER, { headers: AUTH })).status, 404)
      assert.equal((await rawRequest(expressPort, PEER, { headers: AUTH })).status, 404)
      assert.deepEqual([koaServer.rawListeners('request'), expressServer.rawListeners('request')], listeners)
    } finally {
      await Promise.all([closeServer(koaServer), closeServer(expressServer)])
      await gc.close()
    }
  })
})

/** ATTACKS are requests an attacker or a bad peer might send, with and without the secret. */
const ATTACKS: Array<{ path: string; headers?: Record<string, string>; method?: string }> = [
  { path: PEER },
  { path: PEER, headers: { authorization: 'Bearer wrong' } },
  { path: PEER, headers: { authorization: `bearer ${SECRET}` } },
  { path: PEER, headers: { authorization: `Bearer ${SECRET} ` } },
  { path: PEER, method: 'DELETE' },
  { path: PEER, method: 'PUT', headers: { authorization: 'Bearer wrong' } },
  { path: '/_groupcache/_stats' },
  { path: '/_groupcache', headers: AUTH },
  { path: '/_groupcache/../x', headers: AUTH },
  { path: '/_groupcache/g/../../users/1', headers: AUTH },
  { path: '//_groupcache/g/k', headers: AUTH },
  { path: 'http://h/_groupcache/g/k', headers: AUTH },
  { path: '/_GROUPCACHE/g/k', headers: AUTH },
  { path: '/%5Fgroupcache/g/k', headers: AUTH },
  { path: '/_groupcache%2Fg/k', headers: AUTH },
  { path: '/_groupcache/g/k?x=/_groupcache/', headers: AUTH },
  { path: '/_groupcache/nope/k', headers: AUTH },
  { path: '/_groupcache/g/100%', headers: AUTH },
  { path: '/_groupcache/g/%FF', headers: AUTH },
]

/**
 * comparable is an answer without what differs between any two answers
 * (the date, the key's rate as minute_qps) or what only a framework adds
 * (Express's X-Powered-By).
 */
function comparable(res: RawAnswer): { status: number; headers: Record<string, unknown>; body: string } {
  const { date: _date, connection: _connection, 'keep-alive': _keepAlive, 'x-powered-by': _poweredBy, ...headers } = res.headers
  if (res.status !== 200 || headers['content-type'] !== PROTOBUF) return { status: res.status, headers, body: res.body.toString('hex') }
  const { minuteQps: _rate, ...answer } = decodeGetResponse(res.body)
  return { status: res.status, headers, body: JSON.stringify({ ...answer, value: Buffer.from(answer.value).toString() }) }
}

describe('attacks through the front get the answers the framework path gives', () => {
  for (const framework of FRAMEWORKS) {
    test(`${framework}: wrong secrets, odd methods and odd URLs`, async () => {
      const front = node(true)
      const frontApp = await startApp(framework, front)
      const framed = node(true)
      const framedApp = await startApp(framework, framed, { servePeersFirst: false })
      try {
        await attach(frontApp)
        await attach(framedApp)
        const before = frontApp.seen.length
        const reachedApp: string[] = []
        for (const attack of ATTACKS) {
          const options = { headers: attack.headers, method: attack.method }
          const got = comparable(await rawRequest(frontApp.port, attack.path, options))
          const want = comparable(await rawRequest(framedApp.port, attack.path, options))
          const what = `${attack.method ?? 'GET'} ${attack.path} ${JSON.stringify(attack.headers ?? {})}`
          // Fastify answers an escape it cannot decode before any route (400, its own body);
          // the front hands such a URL to the endpoint, which refuses it with the same status.
          if (framework === 'fastify' && /%(FF|$)/.test(attack.path)) assert.equal(got.status, want.status, what)
          else if (attack.path === '/_groupcache/_stats') assert.equal(got.status, want.status, what)
          else assert.deepEqual(got, want, what)
          if (!attack.path.startsWith('/_groupcache/')) reachedApp.push(attack.path)
        }
        assert.deepEqual(frontApp.seen.slice(before), reachedApp, 'only URLs outside basePath reached the app')
        assert.deepEqual(frontApp.routed, framedApp.routed, "the same requests reached the app's own routes")
        assert.equal(front.stats().groups.g?.stats.loads, framed.stats().groups.g?.stats.loads)
      } finally {
        await Promise.all([frontApp.close(), framedApp.close()])
        await Promise.all([front.close(), framed.close()])
      }
    })
  }
})

describe('close() gives the framework its server back', () => {
  for (const framework of FRAMEWORKS) {
    test(`${framework}: the original listeners are restored and peers get 503 through the framework`, async () => {
      const gc = node(true)
      const app = await startApp(framework, gc)
      try {
        const original = framework === 'fastify' ? undefined : app.server.rawListeners('request')
        await attach(app)
        await peerRequests(app, 1)
        const seen = app.seen.length
        await gc.close()
        if (original !== undefined) assert.deepEqual(app.server.rawListeners('request'), original)
        assert.equal(app.server.rawListeners('request').length, 1)
        const res = await rawRequest(app.port, PEER, { headers: AUTH })
        assert.equal(res.status, 503)
        assert.equal(app.seen.length, seen + 1, 'the framework saw it')
      } finally {
        await app.close()
      }
    })
  }

  test("fastify: the listener Fastify's server had is the one it has after close()", async () => {
    const gc = node(true)
    const app = Fastify()
    const original = app.server.rawListeners('request')
    try {
      await app.register(fastifyGroupcache, { groupcache: gc })
      assert.notDeepEqual(app.server.rawListeners('request'), original)
      await gc.close()
      assert.deepEqual(app.server.rawListeners('request'), original)
    } finally {
      await app.close()
    }
  })
})

describe('where the framework must stay in front', () => {
  test('cached routes still render through the framework when a peer asks the owner for a `_routes` entry', async () => {
    for (const framework of ['express', 'fastify', 'koa'] as const) {
      const gc = node(true)
      const runs: string[] = []
      const seen: string[] = []
      let server: Server
      let close: () => Promise<void>
      if (framework === 'fastify') {
        const app = await fastifyApp(gc, undefined, seen)
        app.get<{ Params: { id: string } }>('/r/:id', { config: { groupcache: { ttlMs: 60_000 } } }, async (request) => {
          runs.push(request.params.id)
          return `rendered ${request.params.id}`
        })
        await app.listen({ host: '127.0.0.1', port: 0 })
        server = app.server
        close = () => app.close()
      } else if (framework === 'express') {
        const app = express()
        const mw = expressGroupcache(gc)
        app.use((req, _res, next) => {
          seen.push(req.url)
          next()
        })
        app.use(mw)
        app.get('/r/:id', mw.cacheRoute({ ttlMs: 60_000 }), (req, res) => {
          runs.push(req.params.id as string)
          res.send(`rendered ${req.params.id}`)
        })
        server = createServer(app)
        close = () => closeServer(server)
      } else {
        const Router = (await import('@koa/router')).default
        const app = new Koa()
        const mw = koaGroupcache(gc)
        const router = new Router()
        router.get('/r/:id', mw.cacheRoute({ ttlMs: 60_000 }), (ctx) => {
          runs.push(ctx.params.id as string)
          ctx.body = `rendered ${ctx.params.id}`
        })
        app.use(async (ctx, next) => {
          seen.push(ctx.url)
          await next()
        })
        app.use(mw)
        app.use(router.routes())
        server = createServer(app.callback())
        close = () => closeServer(server)
      }
      if (!server.listening) await listenOn(server)
      const port = (server.address() as AddressInfo).port
      try {
        const answers = []
        for (const id of ['1', '2', '3']) answers.push(await rawRequest(port, `/_groupcache/_routes/%2Fr%2F${id}`, { headers: AUTH }))
        assert.deepEqual(
          answers.map((a) => a.status),
          [200, 200, 200],
          framework,
        )
        assert.match(answers[2]!.body.toString('latin1'), /rendered 3/, framework)
        assert.deepEqual(runs, ['1', '2', '3'], `${framework}: each route rendered once`)
        // The renders went through the framework (in-process); the peer requests after the first did not.
        assert.ok(seen.includes('/r/3'), `${framework}: the render of /r/3 ran through the app`)
        assert.ok(!seen.includes('/_groupcache/_routes/%2Fr%2F3'), `${framework}: the peer request did not`)
      } finally {
        await close()
        await gc.close()
      }
    }
  })

  test('a request made up in-process (light-my-request) is answered through the framework and changes no server', async () => {
    const { inject } = await import('light-my-request')
    const gc = node(true)
    const app = express()
    const seen: string[] = []
    app.use((req, _res, next) => {
      seen.push(req.url)
      next()
    })
    app.use(expressGroupcache(gc))
    try {
      for (let i = 0; i < 2; i++) {
        const res = await inject(app, { method: 'GET', url: PEER, headers: AUTH })
        assert.equal(res.statusCode, 200)
      }
      assert.deepEqual(seen, [PEER, PEER])
    } finally {
      await gc.close()
    }
  })

  test('fastify over HTTP/2: the server cannot be wrapped, and peers are served through Fastify', async () => {
    const gc = node(true)
    const seen: string[] = []
    const app = await fastifyApp(gc, undefined, seen, true)
    await app.listen({ host: '127.0.0.1', port: 0 })
    const port = (app.server.address() as AddressInfo).port
    const session = connect(`http://127.0.0.1:${port}`)
    try {
      for (let i = 0; i < 2; i++) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = session.request({ ':path': PEER, ...AUTH })
          req.setTimeout(ANSWER_TIMEOUT_MS, () => req.close())
          let got = 0
          req.on('response', (headers) => {
            got = Number(headers[':status'])
          })
          req.on('error', reject)
          req.on('close', () => resolve(got))
          req.resume()
          req.end()
        })
        assert.equal(status, 200)
      }
      assert.deepEqual(seen, [PEER, PEER])
    } finally {
      session.close()
      await app.close()
      await gc.close()
    }
  })
})

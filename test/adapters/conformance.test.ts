// One suite, four servers: the Express, Fastify and Koa adapters and a bare
// `gc.listen()` must answer peers alike, byte for byte; the adapters both in
// front of the framework (servePeersFirst, their default with a secret) and
// through it.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { encodeBatchKeys } from '../../src/batch.js'
import { BATCH_CONTENT_TYPE, type Groupcache, NotFoundError } from '../../src/index.js'
import { FRAMEWORKS, type RunningApp, startApp } from '../helpers/apps.js'
import { settledTcpHandles, tcpHandles } from '../helpers/handles.js'
import { type RawAnswer, rawRequest } from '../helpers/raw.js'
import { waitFor } from '../helpers/wait.js'

const SELF = 'http://127.0.0.1:1'
const SECRET = 'conformance-secret'
const AUTH = { authorization: `Bearer ${SECRET}` }

function setup(gc: Groupcache): void {
  gc.newGroup<string>({
    name: 'g',
    maxBytes: 1 << 20,
    codec: 'string',
    load: (key) => {
      if (key === 'fail') throw new Error('database is down')
      if (key === 'missing') throw new NotFoundError('no row for missing')
      return `v:${key}`
    },
  })
}

interface Case {
  name: string
  path: string
  method?: string
  headers?: Record<string, string>
  body?: Uint8Array
}

const BATCH = { ...AUTH, 'content-type': BATCH_CONTENT_TYPE }

const CASES: Case[] = [
  { name: 'a value', path: '/_groupcache/g/hello', headers: AUTH },
  { name: 'an escaped key', path: '/_groupcache/g/a%2Fb+c%2B%F0%9F%98%80', headers: AUTH },
  { name: 'an empty key', path: '/_groupcache/g/', headers: AUTH },
  { name: 'a key with slashes and dots', path: '/_groupcache/g/x//y/./z', headers: AUTH },
  { name: 'a query string', path: '/_groupcache/g/q?x=1', headers: AUTH },
  { name: 'no secret', path: '/_groupcache/g/hello' },
  { name: 'a wrong secret', path: '/_groupcache/g/hello', headers: { authorization: 'Bearer wrong' } },
  { name: 'no secret on an unknown group', path: '/_groupcache/nope/k' },
  { name: 'an unknown group', path: '/_groupcache/nope/k', headers: AUTH },
  { name: 'no key part', path: '/_groupcache/g', headers: AUTH },
  { name: 'a key over maxKeyBytes', path: `/_groupcache/g/${'k'.repeat(300)}`, headers: AUTH },
  { name: 'a loader failure', path: '/_groupcache/g/fail', headers: AUTH },
  { name: 'a not-found verdict', path: '/_groupcache/g/missing', headers: AUTH },
  { name: 'POST', path: '/_groupcache/g/hello', method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' } },
  { name: 'PUT without a secret', path: '/_groupcache/g/hello', method: 'PUT', headers: { 'content-type': 'text/weird' } },
  { name: 'DELETE', path: '/_groupcache/g/hello', method: 'DELETE', headers: AUTH },
  { name: 'HEAD', path: '/_groupcache/g/hello', method: 'HEAD', headers: AUTH },
  { name: 'OPTIONS', path: '/_groupcache/g/hello', method: 'OPTIONS', headers: AUTH },
  {
    name: 'a batch',
    path: '/_groupcache/g',
    method: 'POST',
    headers: BATCH,
    body: encodeBatchKeys(['hello', 'missing', 'fail', '', 'a/b c']),
  },
  { name: 'a malformed batch', path: '/_groupcache/g', method: 'POST', headers: BATCH, body: Buffer.from([0x05, 0x61]) },
  {
    name: 'a batch without a secret',
    path: '/_groupcache/g',
    method: 'POST',
    headers: { 'content-type': BATCH_CONTENT_TYPE },
    body: encodeBatchKeys(['hello']),
  },
  { name: 'a batch of an unknown group', path: '/_groupcache/nope', method: 'POST', headers: BATCH, body: encodeBatchKeys(['hello']) },
]

// Through Fastify, URLs whose escapes it cannot decode are answered by
// Fastify itself, before any route runs (its `frameworkErrors` server option
// changes that): same status, Fastify's JSON body. README says so.
const BAD_ESCAPES: Case[] = [
  { name: 'a bare % escape', path: '/_groupcache/g/100%', headers: AUTH },
  { name: 'an escape that is not UTF-8', path: '/_groupcache/g/%FF', headers: AUTH },
]

interface Seen {
  status: number
  contentType: string | undefined
  errorCode: string | string[] | undefined
  body: string
}

function seen(res: RawAnswer): Seen {
  return {
    status: res.status,
    contentType: res.headers['content-type'] as string | undefined,
    errorCode: res.headers['x-groupcache-error'],
    body: res.body.toString('hex'),
  }
}

/** THROUGH are the adapters with servePeersFirst: false, peers going through the framework. */
const THROUGH = ['express', 'fastify', 'koa'] as const

describe('the peer endpoint answers alike through every adapter and gc.listen()', () => {
  const apps = new Map<string, RunningApp>()

  before(async () => {
    // One frozen clock for every node: answers carry each key's rate
    // (minute_qps), which a moving clock would make differ between nodes
    // asked a few milliseconds apart.
    const now = Date.now()
    const options = { self: SELF, peers: [SELF], secret: SECRET, maxKeyBytes: 256, now: () => now }
    for (const framework of FRAMEWORKS) apps.set(framework, await startApp(framework, options, setup))
    for (const framework of THROUGH) {
      apps.set(`${framework} through the framework`, await startApp(framework, options, setup, 0, { servePeersFirst: false }))
    }
  })
  after(async () => {
    await Promise.all([...apps.values()].map((app) => app.close()))
  })

  for (const c of CASES) {
    test(`${c.name}: ${c.method ?? 'GET'} ${c.path.slice(0, 40)}`, async () => {
      const answers = new Map<string, Seen>()
      for (const [framework, app] of apps) {
        answers.set(framework, seen(await rawRequest(app.port, c.path, { method: c.method, headers: c.headers, body: c.body })))
      }
      const reference = answers.get('listen')!
      assert.ok(reference.status >= 200, 'gc.listen() answered')
      for (const [framework, answer] of answers) assert.deepEqual(answer, reference, `${framework} differs from gc.listen()`)
    })
  }

  for (const c of BAD_ESCAPES) {
    test(`${c.name}: 400 everywhere, our body except through Fastify`, async () => {
      const reference = seen(await rawRequest(apps.get('listen')!.port, c.path, { headers: c.headers }))
      assert.equal(reference.status, 400)
      for (const [name, app] of apps) {
        if (name === 'fastify through the framework') continue
        assert.deepEqual(seen(await rawRequest(app.port, c.path, { headers: c.headers })), reference, name)
      }
      const fastify = await rawRequest(apps.get('fastify through the framework')!.port, c.path, { headers: c.headers })
      assert.equal(fastify.status, 400)
    })
  }

  test('route handlers reach the instance as req.groupcache / request.groupcache / ctx.groupcache', async () => {
    for (const framework of ['express', 'express4', 'fastify', 'koa', 'koa2'] as const) {
      const res = await rawRequest(apps.get(framework)!.port, '/whoami')
      assert.equal(res.status, 200, framework)
      assert.deepEqual(JSON.parse(res.body.toString()), { reached: true }, framework)
    }
  })

  test("the app's own routes outside basePath are untouched", async () => {
    for (const framework of ['express', 'fastify', 'koa'] as const) {
      const res = await rawRequest(apps.get(framework)!.port, '/_groupcacheX/g/k', { headers: AUTH })
      assert.equal(res.status, 404, framework)
    }
  })
})

describe('adapter lifecycle', () => {
  for (const framework of ['express', 'fastify', 'koa'] as const) {
    test(`${framework}: an instance built from options is closed with the app, and no handle is left open`, async () => {
      const before = await settledTcpHandles()
      const app = await startApp(framework, { self: SELF, peers: [SELF] }, setup)
      const res = await rawRequest(app.port, '/_groupcache/g/x')
      assert.equal(res.status, 200)
      await app.close()
      assert.equal(app.groupcache.closed, true)
      await waitFor(`the TCP handles to be back to ${before}`, () => tcpHandles() === before).catch(() => {})
      assert.equal(tcpHandles(), before)
    })
  }
})

describe('adapters given an instance', () => {
  test('leave an instance the caller passed in open, for the caller to close', async () => {
    const { Groupcache } = await import('../../src/index.js')
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const express = (await import('express')).default
    const { groupcache } = await import('../../adapters/express.js')
    const mw = groupcache(gc)
    assert.equal(mw.groupcache, gc)
    const { createServer } = await import('node:http')
    const server = createServer(express().use(mw))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    assert.equal((await rawRequest(port, '/_groupcache/nope/k')).status, 404)
    await new Promise((resolve) => server.close(resolve))
    assert.equal(gc.closed, false)
    await gc.close()
  })

  test('Fastify takes { groupcache: instance }, knows the plugin by name, and refuses a second registration', async () => {
    const { Groupcache, InvalidOptionError } = await import('../../src/index.js')
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const Fastify = (await import('fastify')).default
    const plugin = (await import('../../adapters/fastify.js')).default
    const app = Fastify()
    await app.register(plugin, { groupcache: gc })
    assert.equal(app.groupcache, gc)
    assert.equal(app.hasPlugin('groupcache'), true)
    await assert.rejects(async () => {
      await app.register(plugin, { groupcache: gc })
    }, InvalidOptionError)
    await app.close()
    assert.equal(gc.closed, false)
    await gc.close()
  })

  test("Fastify's endpoint leaves the host app's body parsing alone", async () => {
    const Fastify = (await import('fastify')).default
    const plugin = (await import('../../adapters/fastify.js')).default
    const app = Fastify()
    await app.register(plugin, { self: SELF, peers: [SELF] })
    app.post('/echo', async (request) => ({ got: request.body }))
    const res = await app.inject({ method: 'POST', url: '/echo', payload: { a: 1 } })
    assert.deepEqual(res.json(), { got: { a: 1 } })
    const odd = await app.inject({ method: 'POST', url: '/echo', payload: 'x', headers: { 'content-type': 'text/weird' } })
    assert.equal(odd.statusCode, 415, 'the catch-all parser of the endpoint did not leak')
    await app.close()
  })
})

describe('the open-endpoint warning', () => {
  const PUBLIC = ['http://10.0.0.1:3000', 'http://10.0.0.2:3000']

  test('Express and Koa emit one process warning when there is no secret, on loopback too', async () => {
    const warnings: string[] = []
    const onWarning = (w: Error & { code?: string }): void => {
      if (w.code === 'GROUPCACHE_OPEN_ENDPOINT') warnings.push(w.message)
    }
    process.on('warning', onWarning)
    try {
      const express = await import('../../adapters/express.js')
      const koa = await import('../../adapters/koa.js')
      const closing = [
        express.groupcache({ self: PUBLIC[0]!, peers: PUBLIC }).groupcache,
        koa.groupcache({ self: PUBLIC[0]!, peers: PUBLIC }).groupcache,
        express.groupcache({ self: PUBLIC[0]!, peers: PUBLIC, secret: 's' }).groupcache,
        koa.groupcache({ self: SELF, peers: [SELF] }).groupcache,
      ]
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(warnings.length, 3)
      assert.match(warnings[0]!, /peer endpoint \/_groupcache\/ is mounted on this app's port with no secret/)
      await Promise.all(closing.map((gc) => gc.close()))
    } finally {
      process.off('warning', onWarning)
    }
  })

  test("Fastify logs it once through the app's logger", async () => {
    const lines: string[] = []
    const Fastify = (await import('fastify')).default
    const plugin = (await import('../../adapters/fastify.js')).default
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => void lines.push(line) } } })
    await app.register(plugin, { self: PUBLIC[0]!, peers: PUBLIC })
    await app.ready()
    await app.close()
    const warnings = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 40)
    assert.equal(warnings.length, 1)
    assert.match(warnings[0]!.msg, /with no secret/)
  })
})

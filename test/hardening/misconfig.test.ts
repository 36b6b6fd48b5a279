// Misconfigurations that used to fail silently (peers quietly loading every
// key themselves, a 500 on the first cached request, a scrape that breaks)
// now fail at once with a clear error, or warn once and work.
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import Router from '@koa/router'
import express from 'express'
import Fastify from 'fastify'
import Koa from 'koa'
import { Registry } from 'prom-client'
import { groupcache as expressGroupcache } from '../../adapters/express.js'
import fastifyGroupcache from '../../adapters/fastify.js'
import { groupcache as koaGroupcache } from '../../adapters/koa.js'
import { registerMetrics } from '../../adapters/prometheus.js'
import { Groupcache, InvalidOptionError } from '../../src/index.js'
import { keyOwnedBy } from '../helpers/local.js'
import { reservePorts, urlsFor } from '../helpers/ports.js'
import { rawRequest } from '../helpers/raw.js'

const SELF = 'http://127.0.0.1:1'

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
  })
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

/** warningsWith collects the process warnings with `code` while `run` runs. */
async function warningsWith(code: string, run: () => Promise<void>): Promise<string[]> {
  const seen: string[] = []
  const onWarning = (w: Error & { code?: string }): void => {
    if (w.code === code) seen.push(w.message)
  }
  process.on('warning', onWarning)
  try {
    await run()
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.off('warning', onWarning)
  }
  return seen
}

describe('the Fastify plugin under a prefix', () => {
  test('refuses to start, saying why, instead of serving peers where none ask', async () => {
    const app = Fastify()
    const start = async (): Promise<void> => {
      await app.register(
        async (api) => {
          await api.register(fastifyGroupcache, { self: SELF, peers: [SELF], secret: 's' })
        },
        { prefix: '/api' },
      )
      await app.ready()
    }
    await assert.rejects(
      start,
      (err: unknown) => err instanceof InvalidOptionError && /prefix/.test(err.message) && /\/api/.test(err.message),
    )
    await app.close()
  })
})

describe('an auth hook in front of the peer endpoint', () => {
  test('counts as the peer failing (its breaker opens), and is reported once, not taken for a working peer', async () => {
    const [ownerPort, askerPort] = (await reservePorts(2)) as [number, number]
    const [ownerUrl, askerUrl] = urlsFor([ownerPort, askerPort]) as [string, string]
    const peers = [ownerUrl, askerUrl]
    const app = express()
    // The app's own auth runs before groupcache and refuses peers.
    app.use((req, res, next) => (req.headers['x-api-key'] === 'k' ? next() : void res.status(401).send('unauthorized')))
    app.use(expressGroupcache({ self: ownerUrl, peers, secret: 's' }))
    const server = createServer(app)
    await listen(server, ownerPort)
    const warnings: string[] = []
    const logger = { warn: (obj: unknown, msg?: string) => void warnings.push(`${msg ?? ''} ${JSON.stringify(obj)}`) }
    const asker = new Groupcache({ self: askerUrl, peers, secret: 's', logger, breaker: { failures: 3, backoffMs: 60_000 } })
    try {
      const group = asker.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => `local:${k}` })
      for (let i = 0; i < 4; i++) {
        const key = keyOwnedBy(asker, ownerUrl, `k${i}-`)
        assert.equal(await group.get(key), `local:${key}`)
      }
      assert.equal(asker.peerHealth().find((h) => h.peer === ownerUrl)?.state, 'open')
      const refused = warnings.filter((w) => /401/.test(w) && /in front of/.test(w))
      assert.equal(refused.length, 1, warnings.join('\n'))
    } finally {
      await asker.close()
      await close(server)
    }
  })
})

describe('cacheRoute without app.use(gc)', () => {
  test('Express renders with req.app, and warns once that peers cannot reach the endpoint', async () => {
    const gc = expressGroupcache({ self: SELF, peers: [SELF] })
    const app = express()
    let runs = 0
    app.get('/r/:id', gc.cacheRoute(), (req, res) => void res.send(`r ${String(req.params.id)} ${++runs}`))
    const server = createServer(app)
    const port = await listen(server)
    try {
      const warnings = await warningsWith('GROUPCACHE_NOT_MOUNTED', async () => {
        for (let i = 0; i < 3; i++) {
          const res = await rawRequest(port, '/r/1')
          assert.equal(res.status, 200)
          assert.equal(res.body.toString(), 'r 1 1')
        }
      })
      assert.equal(warnings.length, 1)
      assert.match(warnings[0]!, /app\.use/)
    } finally {
      await close(server)
      await gc.groupcache.close()
    }
  })

  test('Koa renders with ctx.app, and warns once', async () => {
    const gc = koaGroupcache({ self: SELF, peers: [SELF] })
    const app = new Koa()
    const router = new Router()
    let runs = 0
    router.get('/r/:id', gc.cacheRoute(), (ctx) => {
      ctx.body = `r ${String(ctx.params.id)} ${++runs}`
    })
    app.use(router.routes())
    const server = createServer(app.callback())
    const port = await listen(server)
    try {
      const warnings = await warningsWith('GROUPCACHE_NOT_MOUNTED', async () => {
        for (let i = 0; i < 3; i++) {
          const res = await rawRequest(port, '/r/1')
          assert.equal(res.status, 200)
          assert.equal(res.body.toString(), 'r 1 1')
        }
      })
      assert.equal(warnings.length, 1)
    } finally {
      await close(server)
      await gc.groupcache.close()
    }
  })
})

describe('registerMetrics', () => {
  test('takes the middleware, or anything with a .groupcache, as well as the instance', async () => {
    const express = expressGroupcache({ self: SELF, peers: [SELF] })
    const koa = koaGroupcache({ self: SELF, peers: [SELF] })
    try {
      for (const target of [express, koa, { groupcache: express.groupcache }]) {
        const registry = new Registry()
        const metrics = registerMetrics(target, { registry })
        const gc = 'groupcache' in target ? target.groupcache : (target as unknown as Groupcache)
        const group = gc.getGroup<string>('m') ?? gc.newGroup<string>({ name: 'm', maxBytes: 1 << 20, codec: 'string', load: (k) => k })
        await group.get('x')
        assert.match(await registry.metrics(), /groupcache_gets_total\{group="m"\} [1-9]/)
        metrics.unregister()
      }
    } finally {
      await express.groupcache.close()
      await koa.groupcache.close()
    }
  })

  test('refuses anything else at once, naming what it wants', () => {
    for (const bad of [{}, null, express(), { groupcache: {} }]) {
      assert.throws(() => registerMetrics(bad as never, { registry: new Registry() }), InvalidOptionError)
    }
  })
})

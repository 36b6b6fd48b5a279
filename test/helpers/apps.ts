// The same small app in each framework (and a bare `gc.listen()`), so that
// one suite can run against all of them.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import Router from '@koa/router'
import express from 'express'
import Fastify from 'fastify'
import Koa from 'koa'
import { groupcache as expressGroupcache } from '../../adapters/express.js'
import fastifyGroupcache from '../../adapters/fastify.js'
import { groupcache as koaGroupcache } from '../../adapters/koa.js'
import type { AdapterOptions } from '../../adapters/shared.js'
import { Groupcache, type GroupcacheOptions } from '../../src/index.js'

export type Framework = 'listen' | 'express' | 'express4' | 'fastify' | 'koa' | 'koa2'
export const FRAMEWORKS: Framework[] = ['listen', 'express', 'express4', 'fastify', 'koa', 'koa2']

// The previous majors, installed under aliases, to back README's claim that
// the adapters work with them too. Their API is the same as far as we use it.
const expressMajors = { express: express, express4: (await import('express4')).default as unknown as typeof express }
const koaMajors = { koa: Koa, koa2: (await import('koa2')).default as unknown as typeof Koa }

/** RunningApp is an app serving on 127.0.0.1 with the instance it mounted. */
export interface RunningApp {
  port: number
  groupcache: Groupcache
  close(): Promise<void>
}

/** CLOSE_GRACE_MS is how long an app's server lets requests in flight finish on close before it cuts them. */
const CLOSE_GRACE_MS = 5_000

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS)
    server.close(() => {
      clearTimeout(cut)
      resolve()
    })
    server.closeIdleConnections()
  })
}

function listenOn(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
  })
}

/**
 * startApp starts `framework` (user routes: `/whoami` answers whether the
 * handler reached the instance; `/item/:id` answers `group.get(id)` of the
 * group named `items`) on 127.0.0.1:`port` (0 for any) with a
 * Groupcache built from `options` by the adapter (which then owns it), and
 * lets `setup` add groups before the first request. `adapter` are the
 * adapter's own options (`servePeersFirst`).
 */
export async function startApp(
  framework: Framework,
  options: GroupcacheOptions,
  setup: (gc: Groupcache) => void,
  port = 0,
  adapter: AdapterOptions = {},
): Promise<RunningApp> {
  const itemOf = async (gc: Groupcache, id: string): Promise<unknown> => gc.getGroup('items')?.get(id)
  switch (framework) {
    case 'listen': {
      const gc = new Groupcache(options)
      setup(gc)
      const address = await gc.listen({ host: '127.0.0.1', port })
      return { port: address.port, groupcache: gc, close: () => gc.close() }
    }
    case 'express':
    case 'express4': {
      const app = expressMajors[framework]()
      const mw = expressGroupcache(options, adapter)
      setup(mw.groupcache)
      app.use(mw)
      app.get('/whoami', (req, res) => {
        res.json({ reached: req.groupcache === mw.groupcache })
      })
      app.get('/item/:id', async (req, res, next) => {
        try {
          res.json(await itemOf(req.groupcache, req.params.id))
        } catch (err) {
          next(err)
        }
      })
      const server = createServer(app)
      const bound = await listenOn(server, port)
      return { port: bound, groupcache: mw.groupcache, close: () => closeServer(server) }
    }
    case 'fastify': {
      const app = Fastify()
      await app.register(fastifyGroupcache, { ...options, ...adapter })
      setup(app.groupcache)
      app.get('/whoami', async (request) => ({ reached: request.groupcache === app.groupcache }))
      app.get<{ Params: { id: string } }>('/item/:id', async (request) => itemOf(request.groupcache, request.params.id))
      await app.listen({ host: '127.0.0.1', port })
      return { port: (app.server.address() as AddressInfo).port, groupcache: app.groupcache, close: () => app.close() }
    }
    case 'koa':
    case 'koa2': {
      const app = new koaMajors[framework]()
      const mw = koaGroupcache(options, adapter)
      setup(mw.groupcache)
      const router = new Router()
      router.get('/whoami', (ctx) => {
        ctx.body = { reached: ctx.groupcache === mw.groupcache && ctx.state.groupcache === mw.groupcache }
      })
      router.get('/item/:id', async (ctx) => {
        ctx.body = await itemOf(ctx.groupcache, ctx.params.id as string)
      })
      app.use(mw)
      app.use(router.routes())
      const server = createServer(app.callback())
      const bound = await listenOn(server, port)
      return { port: bound, groupcache: mw.groupcache, close: () => closeServer(server) }
    }
  }
}

// One app in this process, in the framework asked for, with the routes a
// test gives it (cached or not), each counting its runs: for attacks on the
// route cache that need one node only (the owner's replay runs in-process).
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import Router from '@koa/router'
import express from 'express'
import Fastify from 'fastify'
import Koa from 'koa'
import { groupcache as expressGroupcache } from '../../adapters/express.js'
import fastifyGroupcache from '../../adapters/fastify.js'
import { groupcache as koaGroupcache } from '../../adapters/koa.js'
import type { CacheRouteOptions } from '../../adapters/route-cache.js'
import type { Groupcache, GroupcacheOptions } from '../../src/index.js'

export type RouteFramework = 'express' | 'fastify' | 'koa'
export const ROUTE_FRAMEWORKS: RouteFramework[] = ['express', 'fastify', 'koa']

/** Reply is what a test route answers, whatever the framework. */
export interface Reply {
  status?: number
  headers?: Record<string, string>
  body: string
}

/** SeenRequest is what a test route's handler sees of its request. */
export interface SeenRequest {
  params: Record<string, string>
  url: string
  headers: Record<string, string | string[] | undefined>
  remoteAddress: string | undefined
}

/** TestRoute is a GET route; `cache` undefined leaves it uncached. */
export interface TestRoute {
  path: string
  cache?: CacheRouteOptions
  handler: (req: SeenRequest) => Reply | Promise<Reply>
}

/** CachedApp is a running app, with the runs of each route by path. */
export interface CachedApp {
  port: number
  groupcache: Groupcache
  runs: Record<string, number>
  seen: Record<string, SeenRequest[]>
  close(): Promise<void>
}

function listenOn(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

/**
 * startCachedApp starts `framework` on 127.0.0.1 (any port) with the adapter
 * built from `options` (it then owns the instance) and `routes`.
 */
export async function startCachedApp(framework: RouteFramework, options: GroupcacheOptions, routes: TestRoute[]): Promise<CachedApp> {
  const runs: Record<string, number> = {}
  const seen: Record<string, SeenRequest[]> = {}
  const run = async (route: TestRoute, req: SeenRequest): Promise<Reply> => {
    runs[route.path] = (runs[route.path] ?? 0) + 1
    ;(seen[route.path] ??= []).push(req)
    return route.handler(req)
  }
  switch (framework) {
    case 'express': {
      const app = express()
      const gc = expressGroupcache(options)
      app.use(gc)
      for (const route of routes) {
        const handler: express.RequestHandler = (req, res, next) => {
          const seenReq = {
            params: req.params as Record<string, string>,
            url: req.originalUrl,
            headers: req.headers,
            remoteAddress: req.socket.remoteAddress,
          }
          run(route, seenReq).then(
            (r) =>
              void res
                .status(r.status ?? 200)
                .set(r.headers ?? {})
                .send(r.body),
            next,
          )
        }
        if (route.cache === undefined) app.get(route.path, handler)
        else app.get(route.path, gc.cacheRoute(route.cache), handler)
      }
      const server = createServer(app)
      return { port: await listenOn(server), groupcache: gc.groupcache, runs, seen, close: () => closeServer(server) }
    }
    case 'koa': {
      const app = new Koa()
      app.silent = true
      const gc = koaGroupcache(options)
      const router = new Router()
      for (const route of routes) {
        const handler = async (ctx: Koa.Context): Promise<void> => {
          const r = await run(route, {
            params: ctx.params as Record<string, string>,
            url: ctx.originalUrl,
            headers: ctx.headers,
            remoteAddress: ctx.req.socket.remoteAddress,
          })
          ctx.status = r.status ?? 200
          ctx.set(r.headers ?? {})
          ctx.body = r.body
        }
        if (route.cache === undefined) router.get(route.path, handler)
        else router.get(route.path, gc.cacheRoute(route.cache), handler)
      }
      app.use(gc)
      app.use(router.routes())
      const server = createServer(app.callback())
      return { port: await listenOn(server), groupcache: gc.groupcache, runs, seen, close: () => closeServer(server) }
    }
    case 'fastify': {
      const app = Fastify()
      await app.register(fastifyGroupcache, options)
      for (const route of routes) {
        app.get(route.path, route.cache === undefined ? {} : { config: { groupcache: route.cache } }, async (request, reply) => {
          const r = await run(route, {
            params: request.params as Record<string, string>,
            url: request.url,
            headers: request.headers,
            remoteAddress: request.socket.remoteAddress,
          })
          return reply
            .code(r.status ?? 200)
            .headers(r.headers ?? {})
            .send(r.body)
        })
      }
      await app.listen({ host: '127.0.0.1', port: 0 })
      return { port: (app.server.address() as AddressInfo).port, groupcache: app.groupcache, runs, seen, close: () => app.close() }
    }
  }
}

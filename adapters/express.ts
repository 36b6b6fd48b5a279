import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Application, NextFunction, Request, Response } from 'express'
import { type Groupcache, servePeerRequest } from '../src/index.js'
import { type CacheRouteOptions, SOURCE_HEADER } from './route-cache.js'
import { type AdapterInput, type AdapterOptions, injectRenderer, loadInject, middlewareSetup, serveFirstFrom } from './shared.js'

declare global {
  namespace Express {
    interface Request {
      /** groupcache is the node this app serves, for route handlers. */
      groupcache: Groupcache
    }
  }
}

/**
 * pin copies an injected request's or response's methods onto the object
 * itself. Express re-parents every request and response to its own
 * prototypes, which would strip light-my-request's capturing methods;
 * light-my-request's own remedy is to re-parent Express's shared prototypes,
 * for the whole process, which breaks every real response after it. Own
 * properties survive the re-parenting, and nothing else is touched.
 */
function pin(target: object): void {
  const proto = Object.getPrototypeOf(target) as object
  for (const name of Object.getOwnPropertyNames(proto)) {
    if (name === 'constructor') continue
    Object.defineProperty(target, name, Object.getOwnPropertyDescriptor(proto, name) as PropertyDescriptor)
  }
}

/** Middleware is an Express middleware function. */
export type Middleware = (req: Request, res: Response, next: NextFunction) => void

/**
 * RouteMiddleware is what `cacheRoute` returns. It asks only for what it
 * reads, so that between a path and its handler it leaves Express's
 * inference of `req.params` from the path alone.
 */
export type RouteMiddleware = (
  req: IncomingMessage & { method: string; originalUrl: string },
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void

/** GroupcacheMiddleware is Express middleware that also carries its instance. */
export interface GroupcacheMiddleware extends Middleware {
  /** groupcache is the instance the middleware serves. */
  readonly groupcache: Groupcache
  /**
   * cacheRoute returns route middleware that serves the route's response
   * from the cluster's cache: `app.get('/report/:id', gc.cacheRoute({ ttlMs }), handler)`.
   */
  cacheRoute(options?: CacheRouteOptions): RouteMiddleware
}

/**
 * groupcache makes an Express app a groupcache node: `app.use(groupcache(…))`
 * at the app's root serves the peer endpoint under `basePath` (no body
 * parser involved) and sets `req.groupcache` for every route. Given options,
 * the middleware owns the instance and closes it when the app's HTTP server
 * closes; given an instance, the caller keeps it. With `servePeersFirst`
 * (the default with a secret), the first peer request that reaches it at
 * the root of the server puts the endpoint in front of Express.
 */
export function groupcache(input: AdapterInput, options?: AdapterOptions): GroupcacheMiddleware {
  const { instance, first, watch, routes, notMounted } = middlewareSetup(input, options)
  const basePath = instance.basePath
  let app: Application | undefined
  // The route cache renders by replaying requests into this very app, which
  // the first request through the middleware, or a cached route, shows.
  const renderWith = (known: Application): void => {
    app = known
    const dispatch = (injected: IncomingMessage, out: ServerResponse): void => {
      pin(injected)
      pin(out)
      known(injected as Request, out as Response)
    }
    routes.setRenderer(injectRenderer(dispatch))
  }
  function groupcacheMiddleware(req: Request, res: Response, next: NextFunction): void {
    watch(req.socket)
    if (app === undefined) renderWith(req.app)
    if (req.url.startsWith(basePath)) {
      // Peers skip Express from the next request on, unless this app is
      // mounted under a path (a baseUrl): the server's root is not its own.
      if (first && req.baseUrl === '') serveFirstFrom(instance, req, req.url, req.originalUrl)
      // The peer endpoint answers here: a cache hit before this returns.
      void servePeerRequest(instance.handler, req, res)
      return
    }
    req.groupcache = instance
    next()
  }
  function cacheRoute(options?: CacheRouteOptions): RouteMiddleware {
    loadInject() // without light-my-request, fail here, where the route is declared
    const decide = routes.route(options)
    return function groupcacheCacheRoute(req, res, next) {
      // Without app.use(gc) in front, nothing set req.groupcache: render
      // with the route's own app, and say once that peers cannot get here.
      // (Express hands route middleware its full Request; the type asks for less.)
      const full = req as unknown as Partial<Request> & { app: Application }
      if (full.groupcache === undefined) {
        notMounted()
        if (app === undefined) renderWith(full.app)
      }
      // The decision comes later, in a promise callback: a throw there would
      // be an unhandled rejection, which ends the process. Something else
      // may have answered meanwhile (a timeout middleware: writing then
      // throws ERR_HTTP_HEADERS_SENT), so an answered response is left as
      // it is, and any other throw goes to Express's error handling.
      decide({ method: req.method, url: req.originalUrl, headers: req.headers }).then((decision) => {
        if (decision.action === 'next') {
          if (decision.source !== undefined && !res.headersSent) res.setHeader(SOURCE_HEADER, decision.source)
          next()
          return
        }
        if (res.headersSent) return
        try {
          res.writeHead(decision.status, decision.headers)
          res.end(decision.body)
        } catch (err) {
          next(err)
        }
      }, next)
    }
  }
  return Object.assign(groupcacheMiddleware, { groupcache: instance, cacheRoute })
}

export default groupcache
// The route cache's options and defaults, for users of this subpath.
export {
  BYPASS_TTL_MS,
  type CacheRouteOptions,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_ROUTE_CACHE_BYTES,
  DEFAULT_ROUTE_GROUP,
  DEFAULT_ROUTE_TTL_MS,
  type RouteRequest,
  SOURCE_HEADER,
} from './route-cache.js'
export type { AdapterOptions } from './shared.js'

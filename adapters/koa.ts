import type { Context, Next } from 'koa'
import { type Groupcache, servePeerRequest } from '../src/index.js'
import { type CacheRouteOptions, SOURCE_HEADER } from './route-cache.js'
import { type AdapterInput, type AdapterOptions, injectRenderer, loadInject, middlewareSetup, serveFirstFrom } from './shared.js'

declare module 'koa' {
  interface DefaultContext {
    /** groupcache is the node this app serves, for route handlers. */
    groupcache: Groupcache
  }
  interface DefaultState {
    groupcache: Groupcache
  }
}

/** Middleware is a Koa middleware function. */
export type Middleware = (ctx: Context, next: Next) => Promise<void>

/** GroupcacheMiddleware is Koa middleware that also carries its instance. */
export interface GroupcacheMiddleware extends Middleware {
  /** groupcache is the instance the middleware serves. */
  readonly groupcache: Groupcache
  /**
   * cacheRoute returns route middleware that serves the route's response
   * from the cluster's cache: `router.get('/report/:id', gc.cacheRoute({ ttlMs }), handler)`.
   */
  cacheRoute(options?: CacheRouteOptions): Middleware
}

/**
 * groupcache makes a Koa app a groupcache node: `app.use(groupcache(…))`
 * serves the peer endpoint under `basePath` and sets `ctx.groupcache` and
 * `ctx.state.groupcache` for the middleware after it. Given options, the
 * middleware owns the instance and closes it when the app's HTTP server
 * closes; given an instance, the caller keeps it. With `servePeersFirst`
 * (the default with a secret), the first peer request that reaches it at
 * the root of the server puts the endpoint in front of Koa.
 */
export function groupcache(input: AdapterInput, options?: AdapterOptions): GroupcacheMiddleware {
  const { instance, first, watch, routes, notMounted } = middlewareSetup(input, options)
  const basePath = instance.basePath
  let rendering = false
  // The route cache renders by replaying requests into this very app, which
  // the first request through the middleware, or a cached route, shows.
  const renderWith = (ctx: Context): void => {
    rendering = true
    routes.setRenderer(injectRenderer(ctx.app.callback()))
  }
  async function groupcacheMiddleware(ctx: Context, next: Next): Promise<void> {
    watch(ctx.req.socket)
    if (!rendering) renderWith(ctx)
    if (ctx.url.startsWith(basePath)) {
      // Peers skip Koa from the next request on, unless a mount path was
      // taken off the URL: the server's root is not this app's.
      if (first) serveFirstFrom(instance, ctx.req, ctx.url, ctx.originalUrl)
      // The peer endpoint writes its answer itself (a cache hit before this
      // returns), so Koa must not write one: respond = false.
      ctx.respond = false
      await servePeerRequest(instance.handler, ctx.req, ctx.res)
      return
    }
    ctx.groupcache = instance
    ctx.state.groupcache = instance
    await next()
  }
  function cacheRoute(options?: CacheRouteOptions): Middleware {
    loadInject() // without light-my-request, fail here, where the route is declared
    const decide = routes.route(options)
    return async function groupcacheCacheRoute(ctx, next) {
      // Without app.use(gc) in front, nothing set ctx.groupcache: render
      // with the route's own app, and say once that peers cannot get here.
      if ((ctx as Partial<Context>).groupcache === undefined) {
        notMounted()
        if (!rendering) renderWith(ctx)
      }
      const decision = await decide({ method: ctx.method, url: ctx.originalUrl, headers: ctx.headers })
      if (decision.action === 'next') {
        if (decision.source !== undefined) ctx.set(SOURCE_HEADER, decision.source)
        await next()
        return
      }
      ctx.status = decision.status
      ctx.set(decision.headers)
      if (decision.body !== undefined) ctx.body = decision.body
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

import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HTTPMethods, onRequestHookHandler } from 'fastify'
import { type Groupcache, type GroupcacheOptions, InvalidOptionError, servePeerRequest } from '../src/index.js'
import { type CacheRouteOptions, RouteCaches, SOURCE_HEADER } from './route-cache.js'
import { type AdapterOptions, openEndpointWarning, resolveInstance, serveFirstFrom, servePeersFirstOption } from './shared.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** groupcache is the node this app serves. */
    groupcache: Groupcache
  }
  interface FastifyRequest {
    /** groupcache is the node this app serves, for route handlers. */
    groupcache: Groupcache
  }
  interface FastifyContextConfig {
    /**
     * groupcache caches this route's response across the cluster:
     * `app.get(url, { config: { groupcache: { ttlMs } } }, handler)`.
     */
    groupcache?: CacheRouteOptions | boolean | undefined
  }
}

/**
 * FastifyGroupcacheOptions: options for a new instance, or an existing one,
 * and the adapter's own (`servePeersFirst`).
 */
export type FastifyGroupcacheOptions = (GroupcacheOptions | { groupcache: Groupcache }) & AdapterOptions

// CACHED marks our onRequest hook, so a route copied by Fastify (its HEAD
// twin) does not get it twice.
const CACHED = Symbol('groupcache.cachedRoute')

async function groupcachePlugin(app: FastifyInstance, options: FastifyGroupcacheOptions): Promise<void> {
  if (app.hasDecorator('groupcache')) {
    throw new InvalidOptionError('groupcache is already registered on this Fastify instance')
  }
  // Peers ask every node for basePath at its root; under a prefix they would
  // get 404 and quietly load every key themselves.
  if (app.prefix !== '') {
    throw new InvalidOptionError(
      `expected the groupcache plugin at the root of the app, got it under the prefix ${JSON.stringify(app.prefix)}: ` +
        'peers ask for basePath at the root of every node. Register it on the root instance.',
    )
  }
  const { servePeersFirst, ...rest } = options
  const first = servePeersFirstOption({ servePeersFirst })
  // An instance built here logs through the app's logger, unless told otherwise.
  const { instance, owned } = resolveInstance('groupcache' in rest ? rest.groupcache : { logger: app.log, ...rest })
  app.decorate('groupcache', instance)
  if (!app.hasRequestDecorator('groupcache')) {
    app.decorateRequest('groupcache', {
      getter() {
        return instance
      },
    })
  }
  const warning = openEndpointWarning(instance)
  if (warning !== undefined) app.log.warn(warning)
  if (owned) app.addHook('onClose', () => instance.close())

  // Cached routes: the route's config asks for it; the route cache renders
  // on a key's owner by replaying the request into this app.
  const routes = new RouteCaches(instance)
  routes.setRenderer(async (url, headers) => {
    const res = await app.inject({ method: 'GET', url, headers })
    return { status: res.statusCode, headers: res.headers, body: res.rawPayload }
  })
  // A replay that reached a route that is not cached (only a peer's request
  // for a made-up key gets there) stops before that route's handler runs.
  app.addHook('onRequest', (request, reply, done) => {
    if (routes.isRender(request.headers)) {
      const cached = request.routeOptions.config?.groupcache
      if (cached === undefined || cached === false) {
        void reply.code(404).send()
        return
      }
    }
    done()
  })
  app.addHook('onRoute', (route) => {
    const options = route.config?.groupcache
    if (options === undefined || options === false) return
    const hooks = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]
    if (hooks.some((hook) => CACHED in hook)) return
    const decide = routes.route(options === true ? {} : options)
    const cached = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
      const decision = await decide({ method: request.method, url: request.url, headers: request.headers })
      if (decision.action === 'next') {
        if (decision.source !== undefined) reply.header(SOURCE_HEADER, decision.source)
        return
      }
      await reply.code(decision.status).headers(decision.headers).send(decision.body)
    }
    route.onRequest = [...hooks, Object.assign(cached, { [CACHED]: true }) as onRequestHookHandler]
  })

  // Peers are answered from the server's 'request' event, before Fastify
  // routes them, when asked or by default with a secret. The child below
  // still answers the requests that come another way: inject(), a server
  // that cannot be wrapped (HTTP/2), the requests after close().
  const front = first ?? instance.requiresSecret
  if (front) instance.servePeersFirst(app.server)
  // The endpoint lives in an encapsulated child under basePath: its body
  // parser (none: the body is never read) and its not-found handler stay out
  // of the host app. Every method Fastify knows is routed to the endpoint,
  // and anything else under basePath reaches it through the not-found
  // handler, so that it answers as every other adapter does (405, 404…).
  // The endpoint writes its answers itself (a cache hit before the handler
  // returns), so the reply is hijacked: Fastify sends nothing of its own.
  // A peer request that reaches it through a server the endpoint does not
  // stand in front of yet (the extra servers Fastify makes when it listens
  // on a name with several addresses, or one of the app's own handing
  // requests to `app.routing`) puts it there for the next ones, as the
  // Express and Koa middleware do.
  const serve = (request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined => {
    if (front) serveFirstFrom(instance, request.raw, request.raw.url ?? '', request.raw.url ?? '')
    reply.hijack()
    return servePeerRequest(instance.handler, request.raw, reply.raw)
  }
  await app.register(
    async (child) => {
      child.removeAllContentTypeParsers()
      child.addContentTypeParser('*', (_request, _payload, done) => done(null))
      child.route({ method: child.supportedMethods as HTTPMethods[], url: '/*', handler: serve })
      child.setNotFoundHandler(serve)
    },
    { prefix: instance.basePath.slice(0, -1) },
  )
}

/**
 * PLUGIN_META holds the three symbols that fastify-plugin would set, which
 * Fastify reads: skip-override shares the decorations with the app that
 * registers the plugin instead of an encapsulated child; the meta lets
 * Fastify check its own version (`5.x`) and answer `app.hasPlugin('groupcache')`;
 * the display name is the plugin's name in Fastify's logs. Set here, they
 * spare every install a package (a dependency of the core, or one more for
 * Fastify users to install) for three properties; the conformance suite
 * checks that Fastify honours them.
 */
const PLUGIN_META = {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'groupcache',
  [Symbol.for('plugin-meta')]: { fastify: '5.x', name: 'groupcache' },
}

/**
 * groupcache is a Fastify plugin that makes the app a groupcache node:
 * `await app.register(groupcache, { self, peers, secret })` serves the peer
 * endpoint under `basePath` and decorates `app.groupcache` and
 * `request.groupcache`. Given options, it owns the instance and closes it
 * with the app; given `{ groupcache: instance }`, the caller keeps it. With
 * `servePeersFirst` (the default with a secret), peers are answered in front
 * of Fastify on `app.server`.
 */
export const groupcache: FastifyPluginAsync<FastifyGroupcacheOptions> = Object.assign(groupcachePlugin, PLUGIN_META)

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

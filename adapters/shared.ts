import type { RequestListener } from 'node:http'
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'
import { Groupcache, type GroupcacheOptions, InvalidOptionError } from '../src/index.js'
import { type Captured, type Renderer, RouteCaches } from './route-cache.js'

/** AdapterInput is what every adapter accepts: options, or an instance. */
export type AdapterInput = GroupcacheOptions | Groupcache

/**
 * resolveInstance returns the instance to serve and whether the adapter owns
 * it: one built from options is the adapter's to close; one passed in stays
 * the caller's.
 */
export function resolveInstance(input: AdapterInput): { instance: Groupcache; owned: boolean } {
  if (input instanceof Groupcache) return { instance: input, owned: false }
  return { instance: new Groupcache(input), owned: true }
}

/**
 * openEndpointWarning is the one start-up warning an adapter gives when it
 * mounts the peer endpoint on the app's own port without a secret: whoever
 * can reach the app can then reach the endpoint, on loopback as anywhere
 * (a proxy in front, another process on the host).
 */
export function openEndpointWarning(gc: Groupcache): string | undefined {
  if (gc.requiresSecret) return undefined
  const changes = gc.acceptsChanges ? ' and, with dangerouslyAllowUnauthenticatedChanges, store, drop and clear entries' : ''
  return (
    `groupcache: the peer endpoint ${gc.basePath} is mounted on this app's port with no secret: anyone who can reach ` +
    `this app can read every cached value, make it run loaders and render cached routes${changes}. ` +
    'Set the `secret` option on every node.'
  )
}

/**
 * closeWithServer returns a function to call with each request's socket: the
 * first time it sees the server behind one, it closes `instance` when that
 * server closes. Express and Koa have no shutdown hook; their server does.
 */
export function closeWithServer(instance: Groupcache, owned: boolean): (socket: Socket) => void {
  let watching = !owned
  return (socket) => {
    if (watching) return
    const server = (socket as Socket & { server?: NodeJS.EventEmitter }).server
    if (server === undefined) return
    watching = true
    server.once('close', () => void instance.close())
  }
}

/**
 * middlewareSetup is what the Express and Koa middleware share: the
 * instance (and whether they own it), the one start-up warning, closing with
 * the server, and the route cache.
 */
export function middlewareSetup(input: AdapterInput): {
  instance: Groupcache
  watch: (socket: Socket) => void
  routes: RouteCaches
  /** notMounted warns, once, that a cached route ran without the middleware in front. */
  notMounted: () => void
} {
  const { instance, owned } = resolveInstance(input)
  const warning = openEndpointWarning(instance)
  if (warning !== undefined) process.emitWarning(warning, { code: 'GROUPCACHE_OPEN_ENDPOINT' })
  let warned = false
  const notMounted = (): void => {
    if (warned) return
    warned = true
    process.emitWarning(
      `groupcache: a cached route ran without the groupcache middleware in front of it: peers cannot reach ${instance.basePath} ` +
        'on this node, so they render its routes themselves. Mount it at the root of the app, before the routes: app.use(gc).',
      { code: 'GROUPCACHE_NOT_MOUNTED' },
    )
  }
  return { instance, watch: closeWithServer(instance, owned), routes: new RouteCaches(instance), notMounted }
}

/** Inject is the one light-my-request call the route cache makes. */
type Inject = (
  dispatch: RequestListener,
  options: { method: 'GET'; url: string; headers: Record<string, string> },
) => Promise<{ statusCode: number; headers: Captured['headers']; rawPayload: Buffer }>

/**
 * loadInject returns light-my-request's `inject`, with which the Express and
 * Koa route caches replay a request into the app. light-my-request is an
 * optional peer dependency, needed only for cached routes, so it is loaded
 * when a cached route is declared, not when an adapter is imported; without
 * it that declaration throws an InvalidOptionError that says what to install.
 */
export function loadInject(): Inject {
  let inject: typeof import('light-my-request')
  try {
    inject = createRequire(import.meta.url)('light-my-request') as typeof import('light-my-request')
  } catch (err) {
    const { code, message } = err as { code?: string; message?: string }
    if (code !== 'MODULE_NOT_FOUND' || !String(message).includes("'light-my-request'")) throw err
    throw new InvalidOptionError(
      'cacheRoute needs light-my-request (an optional peer dependency of groupcache/express and groupcache/koa): npm install light-my-request',
    )
  }
  // Typed by light-my-request's own declarations here, so that a change in
  // them fails the build, but not in ours: users without it need no types.
  return inject
}

/**
 * injectRenderer is the Express and Koa route caches' renderer: it replays a
 * GET into `dispatch`, the app's request listener, in-process.
 */
export function injectRenderer(dispatch: RequestListener): Renderer {
  return async (url, headers) => {
    const res = await loadInject()(dispatch, { method: 'GET', url, headers })
    return { status: res.statusCode, headers: res.headers, body: res.rawPayload }
  }
}

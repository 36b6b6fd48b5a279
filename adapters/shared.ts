import type { IncomingMessage, RequestListener } from 'node:http'
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'
import { Groupcache, type GroupcacheOptions, InvalidOptionError } from '../src/index.js'
import { type Captured, type Renderer, RouteCaches } from './route-cache.js'

/** AdapterInput is what every adapter accepts: options, or an instance. */
export type AdapterInput = GroupcacheOptions | Groupcache

/** AdapterOptions are what an adapter takes beside the node's own options. */
export interface AdapterOptions {
  /**
   * servePeersFirst answers peers from the HTTP server's 'request' event,
   * before the framework (see `gc.servePeersFirst`): peer requests then skip
   * the framework's per-request work, and also the app's middleware, hooks
   * and loggers. Default: true when the node has a `secret` (the endpoint
   * then authenticates every request itself), false without one, so that
   * middleware that guards the endpoint (an IP allow-list, auth) keeps
   * seeing every peer request; true without a secret must be asked for.
   */
  servePeersFirst?: boolean | undefined
}

/**
 * servePeersFirstOption checks the adapter's `servePeersFirst` option
 * before any instance is built; undefined leaves the default to the
 * instance: on with a secret, off without.
 */
export function servePeersFirstOption(options: AdapterOptions | undefined): boolean | undefined {
  const value = options?.servePeersFirst
  if (value !== undefined && typeof value !== 'boolean') throw InvalidOptionError.expected('options.servePeersFirst', 'a boolean', value)
  return value
}

/**
 * serveFirstFrom puts the endpoint in front of the server a peer request
 * came through, but only when the middleware saw it at the root of that
 * server: `url` is the target as the framework shows it to the middleware,
 * and it must be the one the server parsed, with no mount path stripped by
 * this framework (`originalUrl`) or by one around it (Express and Connect
 * keep theirs on the request). A sub-app mounted under a path would
 * otherwise take the root's peer URLs. A request made up in-process
 * (light-my-request) has no server behind it and changes nothing.
 */
export function serveFirstFrom(instance: Groupcache, req: IncomingMessage, url: string, originalUrl: string): void {
  if (url !== originalUrl || url !== req.url) return
  const outer = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl
  if (outer !== undefined && outer !== url) return
  const server = (req.socket as (Socket & { server?: unknown }) | undefined)?.server
  if (server !== undefined) instance.servePeersFirst(server as Parameters<Groupcache['servePeersFirst']>[0])
}

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
 * the server, the route cache, and whether to serve peers first.
 */
export function middlewareSetup(
  input: AdapterInput,
  options: AdapterOptions | undefined,
): {
  instance: Groupcache
  /** first: serve peers in front of the framework once a peer request shows the server. */
  first: boolean
  watch: (socket: Socket) => void
  routes: RouteCaches
  /** notMounted warns, once, that a cached route ran without the middleware in front. */
  notMounted: () => void
} {
  const first = servePeersFirstOption(options)
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
  return {
    instance,
    first: first ?? instance.requiresSecret,
    watch: closeWithServer(instance, owned),
    routes: new RouteCaches(instance),
    notMounted,
  }
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

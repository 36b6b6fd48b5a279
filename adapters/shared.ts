import type { Socket } from 'node:net'
import { Groupcache, type GroupcacheOptions } from '../src/index.js'
import { RouteCaches } from './route-cache.js'

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
  const changes = gc.acceptsChanges
    ? ' and, with dangerouslyAllowUnauthenticatedChanges, store, drop and clear entries'
    : ''
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

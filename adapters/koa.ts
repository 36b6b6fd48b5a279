import type { Context, Next } from 'koa'
import { toPeerRequest, type Groupcache } from '../src/index.js'
import { openEndpointWarning, resolveInstance, type AdapterInput } from './shared.js'

declare module 'koa' {
  interface DefaultContext {
    /** groupcache is the node this app serves, for route handlers. */
    groupcache: Groupcache
  }
  interface DefaultState {
    groupcache: Groupcache
  }
}

/** GroupcacheMiddleware is Koa middleware that also carries its instance. */
export interface GroupcacheMiddleware {
  (ctx: Context, next: Next): Promise<void>
  /** groupcache is the instance the middleware serves. */
  readonly groupcache: Groupcache
}

/**
 * groupcache makes a Koa app a groupcache node: `app.use(groupcache(…))`
 * serves the peer endpoint under `basePath` and sets `ctx.groupcache` and
 * `ctx.state.groupcache` for the middleware after it. Given options, the
 * middleware owns the instance and closes it when the app's HTTP server
 * closes; given an instance, the caller keeps it.
 */
export function groupcache(input: AdapterInput): GroupcacheMiddleware {
  const { instance, owned } = resolveInstance(input)
  const warning = openEndpointWarning(instance)
  if (warning !== undefined) process.emitWarning(warning, { code: 'GROUPCACHE_OPEN_ENDPOINT' })
  const basePath = instance.basePath
  let watching = !owned
  async function groupcacheMiddleware(ctx: Context, next: Next): Promise<void> {
    ctx.groupcache = instance
    ctx.state.groupcache = instance
    if (!watching) {
      // Koa has no shutdown hook; the server this request came through does.
      const server = (ctx.req.socket as { server?: NodeJS.EventEmitter }).server
      if (server !== undefined) {
        watching = true
        server.once('close', () => void instance.close())
      }
    }
    if (!ctx.url.startsWith(basePath)) {
      await next()
      return
    }
    const answer = await instance.handler(toPeerRequest(ctx.req, ctx.res))
    ctx.status = answer.status
    ctx.set(answer.headers)
    ctx.body = Buffer.from(answer.body.buffer, answer.body.byteOffset, answer.body.byteLength)
  }
  return Object.assign(groupcacheMiddleware, { groupcache: instance })
}

export default groupcache

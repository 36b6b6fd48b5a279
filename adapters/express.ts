import type { NextFunction, Request, Response } from 'express'
import { toPeerRequest, writePeerResponse, type Groupcache } from '../src/index.js'
import { openEndpointWarning, resolveInstance, type AdapterInput } from './shared.js'

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** groupcache is the node this app serves, for route handlers. */
      groupcache: Groupcache
    }
  }
}

/** GroupcacheMiddleware is Express middleware that also carries its instance. */
export interface GroupcacheMiddleware {
  (req: Request, res: Response, next: NextFunction): void
  /** groupcache is the instance the middleware serves. */
  readonly groupcache: Groupcache
}

/**
 * groupcache makes an Express app a groupcache node: `app.use(groupcache(…))`
 * at the app's root serves the peer endpoint under `basePath` (no body
 * parser involved) and sets `req.groupcache` for every route. Given options,
 * the middleware owns the instance and closes it when the app's HTTP server
 * closes; given an instance, the caller keeps it.
 */
export function groupcache(input: AdapterInput): GroupcacheMiddleware {
  const { instance, owned } = resolveInstance(input)
  const warning = openEndpointWarning(instance)
  if (warning !== undefined) process.emitWarning(warning, { code: 'GROUPCACHE_OPEN_ENDPOINT' })
  const basePath = instance.basePath
  let watching = !owned
  function groupcacheMiddleware(req: Request, res: Response, next: NextFunction): void {
    req.groupcache = instance
    if (!watching) {
      // Express has no shutdown hook; the server this request came through does.
      const server = (req.socket as { server?: NodeJS.EventEmitter }).server
      if (server !== undefined) {
        watching = true
        server.once('close', () => void instance.close())
      }
    }
    if (!req.url.startsWith(basePath)) {
      next()
      return
    }
    instance.handler(toPeerRequest(req, res)).then((answer) => writePeerResponse(res, answer), next)
  }
  return Object.assign(groupcacheMiddleware, { groupcache: instance })
}

export default groupcache

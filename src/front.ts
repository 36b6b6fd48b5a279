import { Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { Server as HttpsServer } from 'node:https'
import type { PeerHandler } from './handler.js'
import { servePeerRequest } from './node-http.js'

// Serving peers in front of an app: a framework does work for every request
// before its first middleware runs (Express several times what node:http
// does), so an adapter answers peers from the server's 'request' event
// itself and hands every other request to the listeners that were there,
// as engine.io's attach(server) does for its own path.

/** FrontServer is a server whose requests the peer endpoint can stand in front of. */
export type FrontServer = HttpServer | HttpsServer

type Listener = (...args: unknown[]) => unknown

/**
 * PeerFront stands in front of one server's 'request' listeners: a request
 * whose target starts with basePath is answered by the peer endpoint, and
 * every other one goes to the listeners it replaced, in their order, with
 * the server as `this`, as node:http would have called them. It steps aside
 * while the server is not listening (a framework answers the requests that
 * still arrive on open connections as it does when closing: Fastify 503s),
 * and restore() puts the listeners back where it stood.
 */
class PeerFront {
  readonly #server: FrontServer
  // The listeners as registered (once-wrappers included), so that a once
  // listener still runs once.
  readonly #originals: Listener[]
  readonly #restore = (): void => this.restore()
  readonly #forget: () => void
  #on = true
  readonly listener: (req: IncomingMessage, res: ServerResponse) => void

  constructor(server: FrontServer, basePath: string, handler: PeerHandler, forget: () => void) {
    this.#server = server
    this.#forget = forget
    const originals = server.rawListeners('request') as Listener[]
    this.#originals = originals
    const only = originals.length === 1 ? originals[0] : undefined
    this.listener = (req, res) => {
      // The same test the middleware makes on the same raw target: what it
      // would have answered is answered here, and nothing else.
      if (this.#on && req.url?.startsWith(basePath) === true && server.listening) {
        void servePeerRequest(handler, req, res)
      } else if (only !== undefined) {
        only.call(server, req, res)
      } else {
        for (const listener of originals) listener.call(server, req, res)
      }
    }
    server.removeAllListeners('request')
    server.on('request', this.listener)
    server.once('close', this.#restore)
  }

  /**
   * restore puts the replaced listeners back in this front's place. If
   * someone took the front off the server meanwhile (or wrapped it, as
   * engine.io would), it stays where it is and hands every request on.
   */
  restore(): void {
    if (!this.#on) return
    this.#on = false
    this.#forget()
    const server = this.#server
    server.removeListener('close', this.#restore)
    const current = server.rawListeners('request') as Listener[]
    const at = current.indexOf(this.listener as Listener)
    if (at === -1) return
    server.removeAllListeners('request')
    for (const listener of [...current.slice(0, at), ...this.#originals, ...current.slice(at + 1)]) server.on('request', listener)
  }
}

/**
 * PeerFronts are the servers one Groupcache stands in front of. It is a
 * Map, not a WeakMap, because close() must find every one of them to put
 * its listeners back; a server leaves it when it closes.
 */
export class PeerFronts {
  readonly #fronts = new Map<FrontServer, PeerFront>()
  readonly #basePath: string
  readonly #handler: PeerHandler

  constructor(basePath: string, handler: PeerHandler) {
    this.#basePath = basePath
    this.#handler = handler
  }

  /**
   * attach puts the peer endpoint in front of `server`'s request listeners,
   * once per server, and says whether it stands there. A server that is not
   * a node:http or node:https server (HTTP/2, a test double) is left alone.
   */
  attach(server: unknown): boolean {
    if (!(server instanceof HttpServer || server instanceof HttpsServer)) return false
    if (this.#fronts.has(server)) return true
    this.#fronts.set(server, new PeerFront(server, this.#basePath, this.#handler, () => this.#fronts.delete(server)))
    return true
  }

  /** restoreAll puts back every server's own listeners. */
  restoreAll(): void {
    for (const front of [...this.#fronts.values()]) front.restore()
  }
}

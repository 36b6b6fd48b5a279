import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { BreakerOptions, BreakerState } from './breaker.js'
import type { CacheStats } from './cache.js'
import type { Logger } from './diagnostics.js'
import { ClosedError, InvalidKeyError, InvalidOptionError } from './errors.js'
import { type FrontServer, PeerFronts } from './front.js'
import { drain, Group, type GroupNode, type GroupOptions, handOff, isStaleMs, isTtl, type ServedGroup, served } from './group.js'
import { createPeerHandler, type PeerHandler } from './handler.js'
import { CHANGE_GUARD_MS, DEFAULT_HANDOFF_MS, DEFAULT_PEEK_TIMEOUT_MS } from './handoff.js'
import { DEFAULT_PEER_TIMEOUT_MS, HttpTransport } from './http.js'
import { servePeerRequest } from './node-http.js'
import { type PeerHealth, Peers, type PeerTransport } from './peers.js'
import { DEFAULT_BASE_PATH, DEFAULT_MAX_KEY_BYTES } from './protocol.js'
import { DEFAULT_REPLICAS } from './ring.js'
import type { GroupStats } from './stats.js'

/** GroupcacheOptions configure a node; see README's options table. */
export interface GroupcacheOptions {
  /** self is this node's base URL, exactly as it appears in `peers`. */
  self: string
  /** peers are the base URLs of every node, this one included, in the same order everywhere. */
  peers: readonly string[]
  /** basePath is where peers serve each other (default '/_groupcache/'). */
  basePath?: string | undefined
  /** replicas is the number of ring points per peer (default 50, as Go). */
  replicas?: number | undefined
  /**
   * secret, when set, is required from peers as `Authorization: Bearer <secret>`.
   * A list accepts any of its secrets and sends the first: rotate by adding
   * the new secret second everywhere, then first, then dropping the old one.
   */
  secret?: string | readonly string[] | undefined
  /** peerTimeoutMs bounds one peer fetch, the owner's load included (default 10 000). */
  peerTimeoutMs?: number | undefined
  /** maxKeyBytes is the longest key accepted, in UTF-8 bytes (default 4096). */
  maxKeyBytes?: number | undefined
  /** now is the clock, in unix milliseconds (default Date.now); a seam for tests. */
  now?: (() => number) | undefined
  /** random draws hot-cache promotions (default Math.random); a seam for tests. */
  random?: (() => number) | undefined
  /** transport fetches from peers (default: HTTP with undici); a seam for tests. */
  transport?: PeerTransport | undefined
  /** breaker tunes the per-peer circuit breaker of the default transport. */
  breaker?: Pick<BreakerOptions, 'failures' | 'backoffMs' | 'maxBackoffMs'> | undefined
  /** logger hears state changes (a peer skipped, a peer back); pino-compatible. Default: none. */
  logger?: Logger | undefined
  /**
   * dangerouslyAllowUnauthenticatedChanges lets peers store, drop and clear
   * entries (`PUT`, `DELETE`, generations) without a `secret`, as anyone who
   * can reach the endpoint then can. Default false: without a secret the
   * endpoint serves GETs only, and `remove`, `set` and `clear` work on a
   * single node only.
   */
  dangerouslyAllowUnauthenticatedChanges?: boolean | undefined
  /**
   * handoffMs is how long after a peer-list change (or its start) this node
   * peeks at a moved key's previous owner before loading it (default 60 000; 0: never).
   */
  handoffMs?: number | undefined
  /** peekTimeoutMs bounds one peek at a previous owner (default 50). */
  peekTimeoutMs?: number | undefined
  /** handoffBytes caps what `close()` hands over per group, most recently used first (default: all of main). */
  handoffBytes?: number | undefined
}

/** CloseOptions are the options of `gc.close()`. */
export interface CloseOptions {
  /** graceMs bounds loads in flight and the hand-off together (default 5 000). */
  graceMs?: number | undefined
  /** handoff: false closes without handing entries over to their next owners. */
  handoff?: boolean | undefined
}

// A secret travels in an Authorization header: printable ASCII only (undici
// refuses anything else on every request, which would silently turn every
// peer fetch into a local load), and no spaces at either end, which HTTP trims.
const HEADER_SAFE = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/

/**
 * DEFAULT_CLOSE_GRACE_MS is how long `close()` lets loads in flight finish
 * before it aborts them: long enough for a typical query, short enough for
 * an orchestrator's shutdown deadline.
 */
export const DEFAULT_CLOSE_GRACE_MS = 5_000

/** NodeStats is what `gc.stats()` and `GET {basePath}_stats` answer. */
export interface NodeStats {
  self: string
  peers: Array<{ peer: string; self: boolean; state: BreakerState; failures: number; lastError?: string }>
  groups: Record<string, { stats: GroupStats; main: CacheStats; hot: CacheStats; generation: number }>
}

/** ListenOptions say where `gc.listen()` binds its dedicated peer server. */
export interface ListenOptions {
  port?: number | undefined
  host?: string | undefined
}

/**
 * checkPeerUrl accepts what Go's ring can share with us: an http(s) base URL
 * with no query, fragment or trailing slash, since the URL string itself is
 * hashed and every node must spell it byte for byte the same.
 */
function checkPeerUrl(option: string, value: unknown): string {
  const expected = "an http(s) base URL without a trailing '/', query or fragment, like 'http://10.0.0.1:3000'"
  if (typeof value !== 'string') throw InvalidOptionError.expected(option, expected, value)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw InvalidOptionError.expected(option, expected, value)
  }
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    value.endsWith('/') ||
    url.search !== '' ||
    url.hash !== '' ||
    url.username !== '' ||
    url.password !== ''
  ) {
    throw InvalidOptionError.expected(option, expected, value)
  }
  return value
}

function checkPeers(option: string, value: unknown, self: string): readonly string[] {
  if (!Array.isArray(value) || value.length === 0) throw InvalidOptionError.expected(option, 'a non-empty array of peer URLs', value)
  const seen = new Set<string>()
  value.forEach((peer, i) => {
    checkPeerUrl(`${option}[${i}]`, peer)
    if (seen.has(peer)) throw new InvalidOptionError(`expected ${option} to list each peer once, got ${peer} twice`)
    seen.add(peer)
  })
  if (!seen.has(self)) {
    throw new InvalidOptionError(`expected ${option} to include options.self (${self}), exactly as spelled there`)
  }
  return Object.freeze([...(value as string[])])
}

function positiveInteger(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw InvalidOptionError.expected(option, 'a positive integer', value)
  }
  return value
}

function nonNegativeInteger(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw InvalidOptionError.expected(option, 'a non-negative integer', value)
  }
  return value
}

function optionalFunction<F>(option: string, value: unknown, fallback: F): F {
  if (value === undefined) return fallback
  if (typeof value !== 'function') throw InvalidOptionError.expected(option, 'a function', value)
  return value as F
}

/**
 * Groupcache is one node of a cluster: it knows its peers, owns the ring
 * that maps keys to them, holds the groups, and serves peers' requests
 * through `handler` (mounted by an adapter) or `listen()` (its own port).
 * Nothing is global: several instances can live in one process.
 */
export class Groupcache {
  readonly self: string
  readonly basePath: string
  readonly replicas: number
  readonly maxKeyBytes: number
  readonly peerTimeoutMs: number
  /** requiresSecret is true when peers must present `secret` to be served. */
  readonly requiresSecret: boolean
  /**
   * acceptsChanges is true when peers may store, drop and clear entries:
   * with a secret, or with `dangerouslyAllowUnauthenticatedChanges`.
   */
  readonly acceptsChanges: boolean
  /**
   * handler is the framework-neutral peer endpoint: give it a method, a raw
   * request target, headers and a signal; write back what it resolves to.
   */
  readonly handler: PeerHandler
  readonly #groups = new Map<string, { group: Group<unknown>; served: ServedGroup }>()
  readonly #peers: Peers
  readonly #now: () => number
  readonly #random: () => number
  readonly #node: GroupNode
  readonly #handoffBytes: number
  readonly #logger: Logger | undefined
  #closed = false
  // Set once close() has handed the entries over: peeks are refused from then on.
  #gone = false
  #closing: Promise<void> | undefined
  #server: Server | undefined
  readonly #fronts: PeerFronts

  constructor(options: GroupcacheOptions) {
    if (typeof options !== 'object' || options === null) throw InvalidOptionError.expected('options', 'an object', options)
    this.self = checkPeerUrl('options.self', options.self)
    const peers = checkPeers('options.peers', options.peers, this.self)
    const basePath = options.basePath ?? DEFAULT_BASE_PATH
    if (typeof basePath !== 'string' || !basePath.startsWith('/') || !basePath.endsWith('/') || /[?#%\s]/.test(basePath)) {
      throw InvalidOptionError.expected('options.basePath', "a path that starts and ends with '/', like '/_groupcache/'", basePath)
    }
    this.basePath = basePath
    this.replicas = positiveInteger('options.replicas', options.replicas, DEFAULT_REPLICAS)
    this.maxKeyBytes = positiveInteger('options.maxKeyBytes', options.maxKeyBytes, DEFAULT_MAX_KEY_BYTES)
    this.peerTimeoutMs = positiveInteger('options.peerTimeoutMs', options.peerTimeoutMs, DEFAULT_PEER_TIMEOUT_MS)
    const secrets = options.secret === undefined ? [] : typeof options.secret === 'string' ? [options.secret] : options.secret
    if (
      !Array.isArray(secrets) ||
      (options.secret !== undefined && secrets.length === 0) ||
      secrets.some((secret) => typeof secret !== 'string' || !HEADER_SAFE.test(secret))
    ) {
      // The value itself is never echoed: it is a secret.
      throw new InvalidOptionError(
        'expected options.secret to be a non-empty string of printable ASCII without leading or trailing spaces, or a non-empty list of them',
      )
    }
    const secret = secrets[0] as string | undefined
    this.requiresSecret = secret !== undefined
    const unauthenticated = options.dangerouslyAllowUnauthenticatedChanges ?? false
    if (typeof unauthenticated !== 'boolean') {
      throw InvalidOptionError.expected('options.dangerouslyAllowUnauthenticatedChanges', 'a boolean', unauthenticated)
    }
    this.acceptsChanges = this.requiresSecret || unauthenticated
    this.#now = optionalFunction('options.now', options.now, Date.now)
    this.#random = optionalFunction('options.random', options.random, Math.random)
    const handoffMs = nonNegativeInteger('options.handoffMs', options.handoffMs, DEFAULT_HANDOFF_MS)
    const peekTimeoutMs = positiveInteger('options.peekTimeoutMs', options.peekTimeoutMs, DEFAULT_PEEK_TIMEOUT_MS)
    this.#handoffBytes = nonNegativeInteger('options.handoffBytes', options.handoffBytes, Number.MAX_SAFE_INTEGER)
    this.#logger = options.logger
    const transport = options.transport
    if (transport !== undefined && (typeof transport !== 'object' || transport === null || typeof transport.fetch !== 'function')) {
      throw InvalidOptionError.expected('options.transport', 'an object with a fetch method', transport)
    }
    this.#peers = new Peers(
      this.self,
      peers,
      this.replicas,
      transport ??
        new HttpTransport({
          basePath,
          timeoutMs: this.peerTimeoutMs,
          secret,
          breaker: { ...options.breaker, now: this.#now },
          logger: options.logger,
          random: this.#random,
          probeEarly: handoffMs > 0,
        }),
      { handoffMs, peekTimeoutMs, now: this.#now },
    )
    const node = this
    this.#node = {
      peers: this.#peers,
      maxKeyBytes: this.maxKeyBytes,
      acceptsChanges: this.acceptsChanges,
      changeGuardMs: Math.max(CHANGE_GUARD_MS, handoffMs),
      get closed() {
        return node.#closed
      },
      now: this.#now,
      random: this.#random,
    }
    this.handler = createPeerHandler({
      basePath,
      secrets,
      maxKeyBytes: this.maxKeyBytes,
      lookup: (name) => this.#groups.get(name)?.served,
      isClosed: () => this.#closed,
      isGone: () => this.#gone,
      stats: () => this.stats(),
      acceptsChanges: this.acceptsChanges,
      now: this.#now,
    })
    this.#fronts = new PeerFronts(basePath, this.handler)
  }

  /** peers is the current peer list, this node included. */
  get peers(): readonly string[] {
    return this.#peers.list
  }

  /** closed is true once `close()` was called. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * newGroup creates a group. Every node must create it with the same name
   * and codec; each node's `maxBytes` is its own budget.
   */
  newGroup<T = unknown>(options: GroupOptions<T>): Group<T> {
    if (this.#closed) throw new ClosedError()
    if (typeof options !== 'object' || options === null) throw InvalidOptionError.expected('options', 'an object', options)
    const { name, maxBytes, load, promote, maxEntryBytes } = options
    if (typeof name !== 'string' || name.length === 0) throw InvalidOptionError.expected('options.name', 'a non-empty string', name)
    if (Buffer.byteLength(name) > 255) throw InvalidOptionError.expected('options.name', 'at most 255 bytes', name)
    if (this.#groups.has(name)) {
      throw new InvalidOptionError(`expected options.name to be unique, but a group named ${JSON.stringify(name)} exists`)
    }
    if (typeof maxBytes !== 'number' || !Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw InvalidOptionError.expected('options.maxBytes', 'a non-negative integer', maxBytes)
    }
    if (load === undefined && options.loadMany === undefined)
      throw InvalidOptionError.expected('options.load', 'a function (or options.loadMany)', load)
    if (load !== undefined && typeof load !== 'function') throw InvalidOptionError.expected('options.load', 'a function', load)
    if (options.loadMany !== undefined && typeof options.loadMany !== 'function') {
      throw InvalidOptionError.expected('options.loadMany', 'a function', options.loadMany)
    }
    if (promote !== undefined && typeof promote !== 'boolean' && typeof promote !== 'function') {
      throw InvalidOptionError.expected('options.promote', 'a boolean or a function', promote)
    }
    positiveInteger('options.maxEntryBytes', maxEntryBytes, 1)
    positiveInteger('options.maxPeerLoads', options.maxPeerLoads, 1)
    if (options.ttlMs !== undefined && !isTtl(options.ttlMs)) {
      throw InvalidOptionError.expected('options.ttlMs', 'a positive number of milliseconds (Infinity for no expiry)', options.ttlMs)
    }
    if (options.staleMs !== undefined && !isStaleMs(options.staleMs)) {
      throw InvalidOptionError.expected(
        'options.staleMs',
        'a number of milliseconds, 0 or more (Infinity: until refreshed)',
        options.staleMs,
      )
    }
    positiveInteger('options.refreshRetryMs', options.refreshRetryMs, 1)
    if (options.notFoundTtlMs !== undefined && !isTtl(options.notFoundTtlMs)) {
      throw InvalidOptionError.expected(
        'options.notFoundTtlMs',
        'a positive number of milliseconds (Infinity for no expiry)',
        options.notFoundTtlMs,
      )
    }
    const loadTimeoutMs = options.loadTimeoutMs
    if (loadTimeoutMs !== undefined && (typeof loadTimeoutMs !== 'number' || !Number.isFinite(loadTimeoutMs) || loadTimeoutMs <= 0)) {
      throw InvalidOptionError.expected('options.loadTimeoutMs', 'a positive finite number of milliseconds', loadTimeoutMs)
    }
    const window = options.batchWindowMs
    if (window !== undefined && (typeof window !== 'number' || !Number.isFinite(window) || window < 0)) {
      throw InvalidOptionError.expected('options.batchWindowMs', 'a non-negative number of milliseconds', window)
    }
    let group: Group<T>
    try {
      group = new Group<T>(options, this.#node)
    } catch (err) {
      if (err instanceof TypeError) throw new InvalidOptionError(err.message)
      throw err
    }
    this.#groups.set(name, { group: group as Group<unknown>, served: group[served]() })
    return group
  }

  /** getGroup returns the group with this name, or undefined. */
  getGroup<T = unknown>(name: string): Group<T> | undefined {
    return this.#groups.get(name)?.group as Group<T> | undefined
  }

  /** ownerOf returns the peer URL that owns `key` on this node's ring. */
  ownerOf(key: string): string {
    if (typeof key !== 'string') throw new InvalidKeyError(`expected key to be a string, got ${typeof key}`)
    return this.#peers.ownerOf(key) as string
  }

  /**
   * setPeers replaces the peer list wholesale, as Go's `Set` does. `self`
   * must stay in it. Loads in flight finish where they started.
   */
  setPeers(peers: readonly string[]): void {
    if (this.#closed) throw new ClosedError()
    this.#peers.replace(checkPeers('peers', peers, this.self))
  }

  /**
   * listen serves the peer endpoint on a dedicated node:http server, for
   * apps that keep peers off their public port. Resolves to the bound address.
   */
  async listen(options: ListenOptions = {}): Promise<AddressInfo> {
    if (this.#closed) throw new ClosedError()
    if (this.#server !== undefined) throw new InvalidOptionError('listen() was already called on this instance')
    const port = options.port ?? 0
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw InvalidOptionError.expected('options.port', 'a port number', port)
    // Room for the longest escaped key: three bytes per key byte, plus the rest.
    const maxHeaderSize = Math.max(16 * 1024, 3 * this.maxKeyBytes + 4 * 1024)
    const handler = this.handler
    const server = createServer({ maxHeaderSize }, (req, res) => {
      void servePeerRequest(handler, req, res)
    })
    this.#server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, options.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    return server.address() as AddressInfo
  }

  /**
   * servePeersFirst answers peers on `server` before its own request
   * listeners run: a request whose target starts with `basePath` is answered
   * by the peer endpoint from the server's 'request' event, and every other
   * one goes to the listeners that were there, unchanged. The adapters call
   * it (see their `servePeersFirst` option) so that peers skip the
   * framework's per-request work and its middleware, hooks and loggers too.
   * Once per server; undone by `close()` or when the server closes. Returns
   * false, and leaves the server alone, after `close()` and for a server
   * that is not a node:http or node:https server (HTTP/2).
   */
  servePeersFirst(server: FrontServer): boolean {
    if (this.#closed) return false
    return this.#fronts.attach(server)
  }

  /**
   * stats is this node's view of the cluster, as `GET {basePath}_stats`
   * answers it: itself, each peer with its health, every group's counters.
   */
  stats(): NodeStats {
    const health = new Map(this.peerHealth().map((h) => [h.peer, h]))
    const groups: NodeStats['groups'] = {}
    for (const [name, { group }] of this.#groups) {
      groups[name] = { stats: group.stats, main: group.cacheStats('main'), hot: group.cacheStats('hot'), generation: group.generation }
    }
    return {
      self: this.self,
      peers: this.peers.map((peer) => {
        const h = health.get(peer)
        return peer === this.self
          ? { peer, self: true, state: 'closed', failures: 0 }
          : {
              peer,
              self: false,
              state: h?.state ?? 'closed',
              failures: h?.failures ?? 0,
              ...(h?.lastError === undefined ? {} : { lastError: h.lastError }),
            }
      }),
      groups,
    }
  }

  /** peerHealth reports what this node knows of each peer (circuit state, last error). */
  peerHealth(): PeerHealth[] {
    return this.#peers.health()
  }

  /**
   * close winds the node down: servers it answered peers in front of
   * (`servePeersFirst`) get their own listeners back, peer requests get 503
   * at once and later gets reject with ClosedError; loads in flight may
   * finish for up to `graceMs`
   * (default 5 s), then are aborted; then, within what is left of `graceMs`,
   * each group's main-cache entries are handed to the nodes that own their
   * keys without this one (unless `handoff: false`); then every server and
   * client socket is closed. Calling it again returns the same promise.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.#closing ??= this.#close(options.graceMs ?? DEFAULT_CLOSE_GRACE_MS, options.handoff !== false)
    return this.#closing
  }

  /**
   * mayHandOff says whether close() may hand entries over. A hand-off is a
   * change (a PUT), which peers take only with the secret: without one it is
   * skipped, and said so once (the peers load those keys again), unless
   * `dangerouslyAllowUnauthenticatedChanges` lets it through.
   */
  #mayHandOff(): boolean {
    if (this.acceptsChanges) return true
    const holding = [...this.#groups.values()].some(({ group }) => group.cacheStats('main').items > 0)
    if (holding && this.#peers.list.length > 1) {
      const message =
        'groupcache: close() hands no entries over to the other nodes: a hand-off needs options.secret on every node (or options.dangerouslyAllowUnauthenticatedChanges); their keys load again'
      if (this.#logger !== undefined) this.#logger.warn({ self: this.self }, message)
      else process.emitWarning(message, { code: 'GROUPCACHE_NO_HANDOFF' })
    }
    return false
  }

  async #close(graceMs: number, handoff: boolean): Promise<void> {
    const started = performance.now()
    this.#closed = true
    // From now on the framework sees peer requests again, and answers them
    // through the adapter as it did before servePeersFirst: 503, peeks.
    this.#fronts.restoreAll()
    // The peer server keeps listening until the hand-off is done, answering
    // 503 to everything but peeks: the nodes that took this one's keys may
    // still take its copies, while it drains and hands the rest over.
    const server = this.#server
    await Promise.all([...this.#groups.values()].map(({ group }) => group[drain](graceMs)))
    const left = graceMs - (performance.now() - started)
    if (handoff && left > 0 && this.#handoffBytes > 0 && this.#mayHandOff()) {
      // Not unref()ed: a process waiting on close() must not exit under it.
      const stop = new AbortController()
      const timer = setTimeout(() => stop.abort(), left)
      await Promise.all([...this.#groups.values()].map(({ group }) => group[handOff](this.#handoffBytes, stop.signal)))
      clearTimeout(timer)
    }
    this.#gone = true
    const serverClosed = server === undefined ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()))
    // Whatever answers were in flight have been written by now, or never will.
    server?.closeAllConnections()
    await Promise.all([serverClosed, this.#peers.close(graceMs)])
  }
}

/**
 * GroupcacheErrorCode lists every stable code this library throws. Users match
 * on `err.code`, never on messages, so a code is never renamed once released.
 */
export type GroupcacheErrorCode =
  | 'ERR_GROUPCACHE_INVALID_OPTION'
  | 'ERR_GROUPCACHE_INVALID_KEY'
  | 'ERR_GROUPCACHE_LOAD_FAILED'
  | 'ERR_GROUPCACHE_LOAD_TIMEOUT'
  | 'ERR_GROUPCACHE_NOT_FOUND'
  | 'ERR_GROUPCACHE_CODEC'
  | 'ERR_GROUPCACHE_PEER'
  | 'ERR_GROUPCACHE_ABORTED'
  | 'ERR_GROUPCACHE_CLOSED'
  | 'ERR_GROUPCACHE_TOO_LARGE'
  | 'ERR_GROUPCACHE_PEERS_UNREACHABLE'
  | 'ERR_GROUPCACHE_OVERLOADED'
  | 'ERR_GROUPCACHE_DISCOVERY'

/**
 * HTTP_STATUS is the status each code stands for, and whether its message
 * is safe to show a client (`expose`). Express, Fastify and Koa read
 * `status`/`statusCode` and `expose` from an error that reaches their error
 * handler, so a handler that passes on `group.get`'s error answers 404 for
 * a missing key, not 500. Loader and peer errors may carry internals (a
 * query, a host): not exposed.
 */
const HTTP_STATUS: Readonly<Record<GroupcacheErrorCode, readonly [status: number, expose: boolean]>> = {
  ERR_GROUPCACHE_INVALID_OPTION: [500, false],
  ERR_GROUPCACHE_INVALID_KEY: [400, true],
  ERR_GROUPCACHE_LOAD_FAILED: [500, false],
  ERR_GROUPCACHE_LOAD_TIMEOUT: [504, false],
  ERR_GROUPCACHE_NOT_FOUND: [404, true],
  ERR_GROUPCACHE_CODEC: [500, false],
  ERR_GROUPCACHE_PEER: [502, false],
  ERR_GROUPCACHE_ABORTED: [503, false],
  ERR_GROUPCACHE_CLOSED: [503, false],
  ERR_GROUPCACHE_TOO_LARGE: [413, true],
  ERR_GROUPCACHE_PEERS_UNREACHABLE: [502, false],
  ERR_GROUPCACHE_OVERLOADED: [503, false],
  ERR_GROUPCACHE_DISCOVERY: [503, false],
}

/**
 * GroupcacheError is the base of every error this library creates, so one
 * `instanceof` check separates ours from the rest. `cause` carries the
 * underlying error when there is one. `status` (and its alias
 * `statusCode`) and `expose` are what web frameworks' error handlers read.
 */
export class GroupcacheError extends Error {
  readonly code: GroupcacheErrorCode
  /** status is the HTTP status this error stands for (404 not found, 400 bad key, …). */
  readonly status: number
  /** statusCode is `status`, under the name Fastify and node:http use. */
  readonly statusCode: number
  /** expose says whether the message is safe to show a client (Koa, http-errors). */
  readonly expose: boolean
  /**
   * key, on an error a `getMany` rejects with, is the key it belongs to, so
   * that a caller who asked for many keys learns which one failed.
   */
  declare key?: string | undefined

  constructor(code: GroupcacheErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'GroupcacheError'
    const [status, expose] = HTTP_STATUS[code]
    this.status = status
    this.statusCode = status
    this.expose = expose
  }
}

/**
 * InvalidOptionError reports misuse at construction time (a bad option, a
 * duplicate group name, a `self` missing from `peers`). The message names the
 * option, as in "expected options.replicas to be a positive integer, got -1".
 */
export class InvalidOptionError extends GroupcacheError {
  constructor(message: string) {
    super('ERR_GROUPCACHE_INVALID_OPTION', message)
    this.name = 'InvalidOptionError'
  }

  /**
   * expected is the one way every option check reports a bad value, so that
   * core and adapters word it alike: "expected options.replicas to be a
   * positive integer, got -1". `got` is described, never dumped.
   */
  static expected(option: string, expected: string, got: unknown): InvalidOptionError {
    return new InvalidOptionError(`expected ${option} to be ${expected}, got ${describe(got)}`)
  }
}

/**
 * InvalidKeyError is thrown before any I/O when a key is not a string, is
 * longer than `maxKeyBytes` in UTF-8, or holds a lone surrogate (no UTF-8
 * form at all): such a key could never be sent to a peer.
 */
export class InvalidKeyError extends GroupcacheError {
  constructor(message: string) {
    super('ERR_GROUPCACHE_INVALID_KEY', message)
    this.name = 'InvalidKeyError'
  }
}

/**
 * LoadError means the loader failed, on this node or on the key's owner. The
 * owner's verdict is final: the caller's node does not load the key a second
 * time. Loader errors are never cached.
 */
export class LoadError extends GroupcacheError {
  /** `code` is for LoadTimeoutError; a LoadError of its own is 'ERR_GROUPCACHE_LOAD_FAILED'. */
  constructor(
    message: string,
    options?: { cause?: unknown },
    code: 'ERR_GROUPCACHE_LOAD_FAILED' | 'ERR_GROUPCACHE_LOAD_TIMEOUT' = 'ERR_GROUPCACHE_LOAD_FAILED',
  ) {
    super(code, message, options)
    this.name = 'LoadError'
  }
}

/**
 * LoadTimeoutError means a load ran past the group's `loadTimeoutMs` (on
 * this node or on the key's owner) and was given up: the loader's
 * `ctx.signal` aborted with it, its callers were answered with it, and
 * whatever the loader returns later is dropped. It is a LoadError, so the
 * owner's timeout is a verdict too: the caller's node does not load the key
 * a second time against a database that hangs. Its status is 504.
 */
export class LoadTimeoutError extends LoadError {
  constructor(message: string) {
    super(message, undefined, 'ERR_GROUPCACHE_LOAD_TIMEOUT')
    this.name = 'LoadTimeoutError'
  }
}

/**
 * NotFoundError is what a loader throws to say that the key does not exist.
 * It travels from the owner to the caller as a 404 with the
 * `x-groupcache-error` header, so callers on every node see the same verdict.
 */
export class NotFoundError extends GroupcacheError {
  constructor(message = 'not found', options?: { cause?: unknown }) {
    super('ERR_GROUPCACHE_NOT_FOUND', message, options)
    this.name = 'NotFoundError'
  }
}

/**
 * CodecError means a value could not be encoded (the loader returned
 * something the group's codec cannot represent) or stored bytes could not be
 * decoded (a peer sent bytes made by a different codec).
 */
export class CodecError extends GroupcacheError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_GROUPCACHE_CODEC', message, options)
    this.name = 'CodecError'
  }
}

/**
 * PeerError is a transport failure talking to a peer: refused, reset, timed
 * out, or an answer without our error marker. `get` never throws it; it is
 * counted in `peerErrors` and the key is loaded locally instead (Go's rule).
 */
export class PeerError extends GroupcacheError {
  readonly peer: string
  /** peerStatus is the status the peer answered, if it answered (`status` is 502). */
  readonly peerStatus: number | undefined

  constructor(peer: string, message: string, options?: { cause?: unknown; status?: number | undefined }) {
    super('ERR_GROUPCACHE_PEER', message, options)
    this.name = 'PeerError'
    this.peer = peer
    this.peerStatus = options?.status
  }
}

/**
 * AbortedError rejects a `get` whose caller's signal aborted. Only that caller
 * gives up; the shared load goes on for the others. `cause` is the signal's
 * reason. Its name is 'AbortError', as the platform's aborts are.
 */
export class AbortedError extends GroupcacheError {
  constructor(reason: unknown) {
    super('ERR_GROUPCACHE_ABORTED', 'the operation was aborted', { cause: reason })
    this.name = 'AbortError'
  }
}

/**
 * ClosedError rejects work started after `close()`, and the callers of a
 * load still running when close()'s grace period ends.
 */
export class ClosedError extends GroupcacheError {
  constructor(message = 'the Groupcache instance is closed') {
    super('ERR_GROUPCACHE_CLOSED', message)
    this.name = 'ClosedError'
  }
}

/**
 * TooLargeError rejects a `set` whose entry could never be stored: larger
 * than the group's `maxEntryBytes`.
 */
export class TooLargeError extends GroupcacheError {
  constructor(message: string) {
    super('ERR_GROUPCACHE_TOO_LARGE', message)
    this.name = 'TooLargeError'
  }
}

/**
 * UnreachablePeersError rejects a `remove`, `set` or `clear` that could not
 * update every peer: it was unreachable, or it is a Go groupcache node, which
 * cannot remove, store or clear. The others were updated; `failures` says
 * which were not and why, so the caller can retry or alert. Never silently
 * skipped.
 */
export class UnreachablePeersError extends GroupcacheError {
  readonly failures: ReadonlyArray<{ peer: string; error: unknown }>

  constructor(what: string, failures: ReadonlyArray<{ peer: string; error: unknown }>) {
    const list = failures.map((f) => `${f.peer} (${errorMessage(f.error)})`).join(', ')
    super('ERR_GROUPCACHE_PEERS_UNREACHABLE', `${what} failed on ${failures.length} peer(s): ${list}`)
    this.name = 'UnreachablePeersError'
    this.failures = failures
  }

  /** peers lists the peers that were not updated. */
  get peers(): string[] {
    return this.failures.map((f) => f.peer)
  }
}

/**
 * OverloadedError refuses a peer's request that would start one load too
 * many (the group's `maxPeerLoads`): a flood of distinct keys from outside
 * must not stampede the database. Peers get a 503 with `Retry-After`; ours
 * ask again after it (within their peerTimeoutMs), Go's load the key.
 */
export class OverloadedError extends GroupcacheError {
  constructor(message: string) {
    super('ERR_GROUPCACHE_OVERLOADED', message)
    this.name = 'OverloadedError'
  }
}

/**
 * DiscoveryErrorReason says why a refresh kept the old peers: the lookup
 * failed or found no address ('resolve'), or the addresses found did not
 * include this node's own `self` ('self-missing'), which `setPeers` would refuse.
 */
export type DiscoveryErrorReason = 'resolve' | 'self-missing'

/**
 * DiscoveryError is what `onError` receives when a refresh kept the old
 * peers. It is reported, never thrown from the timer: discovery trouble
 * degrades the cache (fewer peers, more local loads), it does not stop the app.
 * Its code is 'ERR_GROUPCACHE_DISCOVERY'; `cause` is the DNS error when
 * there is one; `peers` is what was found.
 */
export class DiscoveryError extends GroupcacheError {
  readonly reason: DiscoveryErrorReason
  readonly hostname: string
  readonly peers: readonly string[]

  constructor(
    reason: DiscoveryErrorReason,
    hostname: string,
    message: string,
    options?: { cause?: unknown; peers?: readonly string[] | undefined },
  ) {
    super('ERR_GROUPCACHE_DISCOVERY', message, options)
    this.name = 'DiscoveryError'
    this.reason = reason
    this.hostname = hostname
    this.peers = options?.peers ?? []
  }
}

/**
 * BodyTooLarge is what a PeerRequest's `readBody` rejects with past its
 * limit, so the peer handler can answer 413. It never reaches users, so it
 * is not exported from the package.
 */
export class BodyTooLarge extends Error {}

/** errorMessage renders any thrown value as text, for wrapping it. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}

/**
 * describe renders a bad value for an error message: strings quoted, numbers
 * as they are, anything bigger by its kind only (it may be large, or secret).
 */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'function') return 'a function'
  if (Array.isArray(value)) return 'an array'
  if (value === null) return 'null'
  if (typeof value === 'object') return 'an object'
  return String(value)
}

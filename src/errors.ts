/**
 * GroupcacheErrorCode lists every stable code this library throws. Users match
 * on `err.code`, never on messages, so a code is never renamed once released.
 */
export type GroupcacheErrorCode =
  | 'ERR_GROUPCACHE_INVALID_OPTION'
  | 'ERR_GROUPCACHE_INVALID_KEY'
  | 'ERR_GROUPCACHE_LOAD_FAILED'
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
 * GroupcacheError is the base of every error this library creates, so one
 * `instanceof` check separates ours from the rest. `cause` carries the
 * underlying error when there is one.
 */
export class GroupcacheError extends Error {
  readonly code: GroupcacheErrorCode
  /**
   * key, on an error a `getMany` rejects with, is the key it belongs to, so
   * that a caller who asked for many keys learns which one failed.
   */
  declare key?: string | undefined

  constructor(code: GroupcacheErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'GroupcacheError'
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
 * InvalidKeyError is thrown before any I/O when a key is not a string or is
 * longer than `maxKeyBytes` in UTF-8: such a key could never be sent to a peer.
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
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_GROUPCACHE_LOAD_FAILED', message, options)
    this.name = 'LoadError'
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
  readonly status: number | undefined

  constructor(peer: string, message: string, options?: { cause?: unknown; status?: number | undefined }) {
    super('ERR_GROUPCACHE_PEER', message, options)
    this.name = 'PeerError'
    this.peer = peer
    this.status = options?.status
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
 * ClosedError rejects work started after `close()`.
 */
export class ClosedError extends GroupcacheError {
  constructor() {
    super('ERR_GROUPCACHE_CLOSED', 'the Groupcache instance is closed')
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
 * must not stampede the database. Peers get a 503 with `Retry-After` and
 * load the key themselves, as for any transport failure.
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

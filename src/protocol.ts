import {
  AbortedError,
  CodecError,
  errorMessage,
  GroupcacheError,
  LoadError,
  LoadTimeoutError,
  NotFoundError,
  OverloadedError,
  PeerError,
} from './errors.js'

// The facts of the peer protocol that the client (http.ts) and the server
// (handler.ts) must agree on, kept in one place so they cannot drift apart.
// PROTOCOL.md describes the wire; Go's http.go is the other side of it.

/** DEFAULT_BASE_PATH is where peers serve each other, as in Go. */
export const DEFAULT_BASE_PATH = '/_groupcache/'

/**
 * DEFAULT_MAX_KEY_BYTES caps a key's UTF-8 length. Escaped, such a key (at
 * most three times as long) still fits Node's default 16 KB header limit.
 */
export const DEFAULT_MAX_KEY_BYTES = 4096

/**
 * STATS_PATH, under `basePath`, answers this node's view of the cluster as
 * JSON (same auth as the peer endpoint): itself, its peers' health, and every
 * group's counters.
 */
export const STATS_PATH = '_stats'

/**
 * ERROR_HEADER marks an error answer as a verdict of the owner's loader (not
 * found, load failed), which the caller must not retry locally. An answer
 * without it, as from a proxy or a Go peer, is a transport failure.
 */
export const ERROR_HEADER = 'x-groupcache-error'

/**
 * GENERATION_HEADER carries a group's generation (see `group.clear()`) on
 * requests and answers between our peers, so that a node that missed a clear
 * catches up on its next exchange. Go peers neither send nor read it.
 */
export const GENERATION_HEADER = 'x-groupcache-generation'

/**
 * PROTOCOL_HEADER is on every answer of our peer endpoint. Go's server
 * ignores the method and would answer a PUT or DELETE as a GET (running its
 * loader), so our client sends those only to peers that have shown it.
 */
export const PROTOCOL_HEADER = 'x-groupcache-protocol'
/** PROTOCOL_VERSION is the value of PROTOCOL_HEADER this version speaks. */
export const PROTOCOL_VERSION = '1'

/**
 * REFRESH_HEADER marks a fetch by a node that holds a stale copy of the key
 * and asks on behalf of no waiting caller. Its value is how long, in ms, the
 * owner may hold the answer while a refresh of the key runs there, so that
 * the new value arrives as soon as it exists, in one request, without
 * polling. Go peers ignore it and answer at once, as for any GET.
 */
export const REFRESH_HEADER = 'x-groupcache-refresh'

/**
 * MAX_REFRESH_WAIT_MS caps how long the server holds an answer for a refresh
 * (REFRESH_HEADER), whatever a peer asks for.
 */
export const MAX_REFRESH_WAIT_MS = 60_000

/**
 * parseRefreshWait reads REFRESH_HEADER: a whole number of milliseconds, at
 * most MAX_REFRESH_WAIT_MS; anything else (absent, as from Go peers, or
 * malformed) is 0: answer at once.
 */
export function parseRefreshWait(value: string | readonly string[] | undefined): number {
  if (typeof value !== 'string' || !/^[0-9]{1,9}$/.test(value)) return 0
  return Math.min(Number(value), MAX_REFRESH_WAIT_MS)
}

/** PROTOBUF is the content type of a GetResponse. */
export const PROTOBUF = 'application/x-protobuf'

/**
 * MAX_ERROR_TEXT caps the text of an error answer, both what the server
 * writes and what the client reads into an error message.
 */
export const MAX_ERROR_TEXT = 1024

const UNRESERVED = /^[A-Za-z0-9\-_.~]*$/

/**
 * escapePathPart percent-encodes every byte outside `A–Z a–z 0–9 - _ . ~`.
 * Go's servers and ours both decode this back to the exact key, where Go's
 * own `url.QueryEscape` would turn a space into `+` (PROTOCOL.md).
 */
export function escapePathPart(part: string): string {
  if (UNRESERVED.test(part)) return part
  return encodeURIComponent(part).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

/**
 * unescapePathPart form-decodes one part of a raw path (`+` is a space, then
 * `%XX`), which understands both Go's clients and ours. It throws a URIError
 * on a malformed escape or bytes that are not UTF-8: such a key could only
 * be guessed at, and two different byte keys must never share an entry.
 */
export function unescapePathPart(part: string): string {
  if (part.indexOf('%') === -1 && part.indexOf('+') === -1) return part
  return decodeURIComponent(part.replaceAll('+', ' '))
}

/** keyPath is the path of a key under `basePath`: `{group}/{key}`, both escaped. */
export function keyPath(group: string, key: string): string {
  return `${escapePathPart(group)}/${escapePathPart(key)}`
}

/** bearer is the Authorization header value for a secret. */
export function bearer(secret: string): string {
  return `Bearer ${secret}`
}

/**
 * parseGeneration reads a generation header: a positive safe integer, or
 * undefined for anything else (absent, as from Go peers, or malformed).
 */
export function parseGeneration(value: string | readonly string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^[1-9][0-9]{0,15}$/.test(value)) return undefined
  const n = Number(value)
  return Number.isSafeInteger(n) ? n : undefined
}

/**
 * MAX_GENERATION_LEAD_MS bounds how far a generation may run ahead of this
 * node's clock. `clear()` picks the next generation from the clock (at
 * least one more than the last), so generations from honest peers are never
 * further ahead than their clocks' skew. A forged or broken one beyond the
 * bound is ignored: otherwise one request could push a group to the last
 * safe integer, after which no `clear()` could ever pick a next one.
 */
export const MAX_GENERATION_LEAD_MS = 60 * 60 * 1000

/**
 * acceptGeneration reads a generation from a peer: a positive safe integer
 * no further than MAX_GENERATION_LEAD_MS ahead of `now`, else undefined.
 */
export function acceptGeneration(value: string | readonly string[] | number | undefined, now: number): number | undefined {
  const n = typeof value === 'number' ? value : parseGeneration(value)
  if (n === undefined || !Number.isSafeInteger(n) || n <= 0) return undefined
  return n <= now + MAX_GENERATION_LEAD_MS ? n : undefined
}

/**
 * OVERLOADED_RETRY_AFTER_S is the Retry-After of a 503 from maxPeerLoads:
 * about how long it takes a typical load to free a slot.
 */
export const OVERLOADED_RETRY_AFTER_S = 1

/**
 * ErrorAnswer is how the server answers a failed get: a status, a one-line
 * text and the headers that go with them.
 */
export interface ErrorAnswer {
  status: number
  message: string
  headers: Record<string, string>
}

/**
 * errorAnswer maps an error of a get to its answer. A loader's verdict (not
 * found, load failed, a value the codec could not encode) carries
 * ERROR_HEADER, so the caller takes it as final; so does an overload, after
 * which our caller asks again; anything else (aborted, closing) is a plain
 * failure, after which the caller loads the key itself, as it would for any
 * unreachable peer.
 */
export function errorAnswer(err: unknown): ErrorAnswer {
  const message = errorMessage(err).slice(0, MAX_ERROR_TEXT)
  if (err instanceof NotFoundError) return { status: 404, message, headers: { [ERROR_HEADER]: err.code } }
  if (err instanceof AbortedError) return { status: 503, message: 'aborted', headers: {} }
  // Marked, so that our peers wait and ask again instead of loading the key
  // themselves (a second load, which the cap exists to prevent).
  if (err instanceof OverloadedError) {
    return { status: 503, message, headers: { 'retry-after': String(OVERLOADED_RETRY_AFTER_S), [ERROR_HEADER]: err.code } }
  }
  if (err instanceof GroupcacheError && (err.code === 'ERR_GROUPCACHE_CLOSED' || err.code === 'ERR_GROUPCACHE_INVALID_KEY')) {
    return { status: err.code === 'ERR_GROUPCACHE_CLOSED' ? 503 : 400, message, headers: {} }
  }
  // A load's timeout is a verdict too, with its own code, but still a 500 on
  // the wire: Go peers know no 504 from an owner.
  const code = err instanceof CodecError || err instanceof LoadTimeoutError ? err.code : 'ERR_GROUPCACHE_LOAD_FAILED'
  return { status: 500, message, headers: { [ERROR_HEADER]: code } }
}

/**
 * answerError turns an answer other than the one expected into the right
 * error: the owner's verdict when it carries ERROR_HEADER, else a PeerError.
 */
export function answerError(peer: string, status: number, errorCode: string | undefined, body: Uint8Array): GroupcacheError {
  const text = Buffer.from(body).toString('utf8').slice(0, MAX_ERROR_TEXT)
  return verdictError(errorCode, text.trimEnd()) ?? new PeerError(peer, `peer ${peer} answered ${status}: ${text.trim()}`, { status })
}

/**
 * verdictError rebuilds the error an owner reported with ERROR_HEADER (or
 * in a batch item): undefined for any code that is no loader's verdict.
 */
export function verdictError(code: string | undefined, message: string): GroupcacheError | undefined {
  switch (code) {
    case 'ERR_GROUPCACHE_NOT_FOUND':
      return new NotFoundError(message)
    case 'ERR_GROUPCACHE_LOAD_FAILED':
      return new LoadError(message)
    case 'ERR_GROUPCACHE_LOAD_TIMEOUT':
      return new LoadTimeoutError(message)
    case 'ERR_GROUPCACHE_CODEC':
      return new CodecError(message)
    default:
      return undefined
  }
}

import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Pool, errors } from 'undici'
import {
  AbortedError,
  CodecError,
  GroupcacheError,
  LoadError,
  NotFoundError,
  PeerError,
  errorMessage,
} from './errors.js'
import { decodeGetResponse, encodeGetResponse, type GetResponse } from './wire.js'

/** DEFAULT_BASE_PATH is where peers serve each other, as in Go. */
export const DEFAULT_BASE_PATH = '/_groupcache/'

/**
 * DEFAULT_PEER_TIMEOUT_MS bounds one peer fetch, including the owner's load.
 * It must exceed the slowest load: a non-owner that times out loads the key
 * itself, which is a second load of that key.
 */
export const DEFAULT_PEER_TIMEOUT_MS = 10_000

/**
 * DEFAULT_MAX_KEY_BYTES caps a key's UTF-8 length. Escaped, such a key (at
 * most three times as long) still fits Node's default 16 KB header limit.
 */
export const DEFAULT_MAX_KEY_BYTES = 4096

/**
 * DEFAULT_PEER_CONNECTIONS is the number of keep-alive connections this node
 * opens to each peer at most.
 */
export const DEFAULT_PEER_CONNECTIONS = 32

/**
 * ERROR_HEADER marks an error answer as a verdict of the owner's loader (not
 * found, load failed), which the caller must not retry locally. An answer
 * without it, as from a proxy or a Go peer, is a transport failure.
 */
export const ERROR_HEADER = 'x-groupcache-error'

const PROTOBUF = 'application/x-protobuf'
const TEXT = 'text/plain; charset=utf-8'
const MAX_ERROR_TEXT = 1024

/**
 * PeerTransport fetches a key's value from its owner. The default speaks
 * HTTP to Go-compatible peers; tests may inject their own. It rejects with a
 * PeerError when the owner could not answer (the caller then loads locally)
 * and with the owner's own GroupcacheError (not found, load failed) when it
 * answered with a verdict.
 */
export interface PeerTransport {
  fetch(peer: string, group: string, key: string, signal: AbortSignal): Promise<GetResponse>
  /** setPeers opens what is needed for a new peer list and drops the rest. */
  setPeers?(peers: readonly string[]): void
  close?(): Promise<void>
}

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

function bearer(secret: string): string {
  return `Bearer ${secret}`
}

/**
 * HttpTransport is the default PeerTransport: one keep-alive undici Pool per
 * peer, a timeout and the caller's AbortSignal on every request.
 */
export class HttpTransport implements PeerTransport {
  readonly #pools = new Map<string, { pool: Pool; prefix: string }>()
  readonly #basePath: string
  readonly #timeoutMs: number
  readonly #headers: Record<string, string>
  readonly #connections: number

  constructor(options: { basePath: string; timeoutMs: number; secret?: string | undefined; connections?: number }) {
    this.#basePath = options.basePath
    this.#timeoutMs = options.timeoutMs
    this.#headers = options.secret === undefined ? {} : { authorization: bearer(options.secret) }
    this.#connections = options.connections ?? DEFAULT_PEER_CONNECTIONS
  }

  setPeers(peers: readonly string[]): void {
    const wanted = new Set(peers)
    for (const [peer, { pool }] of this.#pools) {
      if (!wanted.has(peer)) {
        this.#pools.delete(peer)
        void pool.close().catch(() => {})
      }
    }
    for (const peer of wanted) {
      if (this.#pools.has(peer)) continue
      const url = new URL(peer)
      this.#pools.set(peer, {
        pool: new Pool(url.origin, { connections: this.#connections, pipelining: 1 }),
        prefix: url.pathname === '/' ? '' : url.pathname,
      })
    }
  }

  async fetch(peer: string, group: string, key: string, signal: AbortSignal): Promise<GetResponse> {
    const target = this.#pools.get(peer)
    if (target === undefined) throw new PeerError(peer, `${peer} is not a current peer`)
    const path = `${target.prefix}${this.#basePath}${escapePathPart(group)}/${escapePathPart(key)}`
    let status: number
    let body: Uint8Array
    let errorCode: string | undefined
    try {
      // undici's own timers bound the wait for the answer (the owner's load
      // included) and each pause in its body: cheaper per request than a
      // timeout signal, which costs a timer and a composite signal.
      const res = await target.pool.request({
        path,
        method: 'GET',
        headers: this.#headers,
        signal,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      })
      status = res.statusCode
      const marker = res.headers[ERROR_HEADER]
      errorCode = Array.isArray(marker) ? marker[0] : marker
      body = new Uint8Array(await res.body.arrayBuffer())
    } catch (err) {
      if (signal.aborted) throw new AbortedError(signal.reason)
      const timedOut = err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError
      const why = timedOut ? `timed out after ${this.#timeoutMs} ms` : errorMessage(err)
      throw new PeerError(peer, `peer ${peer} failed: ${why}`, { cause: err })
    }
    if (status === 200) {
      try {
        return decodeGetResponse(body)
      } catch (err) {
        throw new PeerError(peer, `peer ${peer} sent a malformed answer: ${errorMessage(err)}`, { cause: err, status })
      }
    }
    const text = Buffer.from(body).toString('utf8').slice(0, MAX_ERROR_TEXT)
    const verdict = verdictError(errorCode, text)
    if (verdict !== undefined) throw verdict
    throw new PeerError(peer, `peer ${peer} answered ${status}: ${text.trim()}`, { status })
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()]
    this.#pools.clear()
    await Promise.all(pools.map(({ pool }) => pool.close().catch(() => {})))
  }
}

/** verdictError rebuilds the error an owner reported with ERROR_HEADER. */
function verdictError(code: string | undefined, message: string): GroupcacheError | undefined {
  switch (code) {
    case 'ERR_GROUPCACHE_NOT_FOUND':
      return new NotFoundError(message)
    case 'ERR_GROUPCACHE_LOAD_FAILED':
      return new LoadError(message)
    case 'ERR_GROUPCACHE_CODEC':
      return new CodecError(message)
    default:
      return undefined
  }
}

/**
 * PeerRequest is what the framework-neutral handler needs of an HTTP
 * request: the method, the raw request target (path and query, not decoded),
 * the headers with lower-case names, and a signal that aborts when the
 * client goes away.
 */
export interface PeerRequest {
  method: string
  url: string
  headers: Readonly<Record<string, string | readonly string[] | undefined>>
  signal?: AbortSignal
}

/** PeerResponse is the handler's answer, for the adapter to write as is. */
export interface PeerResponse {
  status: number
  headers: Record<string, string>
  body: Uint8Array
}

/** PeerHandler serves the peer endpoint; it never rejects. */
export type PeerHandler = (req: PeerRequest) => Promise<PeerResponse>

/** ServedValue is what a group gives the handler for a peer's request. */
export interface ServedValue {
  bytes: Uint8Array
  expire: number
}

/**
 * ServedGroup is the handler's view of a group. It reads `request.signal`
 * only when it has to load, so that adapters can make the signal lazily:
 * most peer requests are cache hits, and a signal per request is not free.
 */
export interface ServedGroup {
  serve(key: string, request: { readonly signal?: AbortSignal | undefined }): Promise<ServedValue>
}

function text(status: number, message: string, extra?: Record<string, string>): PeerResponse {
  return {
    status,
    headers: { 'content-type': TEXT, 'x-content-type-options': 'nosniff', ...extra },
    body: Buffer.from(`${message}\n`),
  }
}

/**
 * SecretCheck compares an Authorization header with the expected one in
 * constant time. Both sides are hashed first, so neither the content nor the
 * length of the secret leaks through timing.
 */
class SecretCheck {
  readonly #expected: Buffer

  constructor(secret: string) {
    this.#expected = createHash('sha256').update(bearer(secret)).digest()
  }

  accepts(header: string | readonly string[] | undefined): boolean {
    const given = typeof header === 'string' ? header : ''
    const digest = createHash('sha256').update(given).digest()
    return timingSafeEqual(digest, this.#expected)
  }
}

/**
 * createPeerHandler builds the framework-neutral peer endpoint. Checks run
 * in an order that gives nothing away: the path must be under `basePath`
 * (else 404), then the secret (401, before any group is looked at), the
 * method (405), the escapes (400), the group (404) and the key's length (400).
 */
export function createPeerHandler(options: {
  basePath: string
  secret?: string | undefined
  maxKeyBytes: number
  lookup: (group: string) => ServedGroup | undefined
  isClosed: () => boolean
}): PeerHandler {
  const { basePath, maxKeyBytes, lookup, isClosed } = options
  const check = options.secret === undefined ? undefined : new SecretCheck(options.secret)
  return async function groupcachePeerHandler(req: PeerRequest): Promise<PeerResponse> {
    const query = req.url.indexOf('?')
    const path = query === -1 ? req.url : req.url.slice(0, query)
    if (!path.startsWith(basePath)) return text(404, 'not found')
    if (check !== undefined && !check.accepts(req.headers.authorization)) {
      return text(401, 'unauthorized', { 'www-authenticate': 'Bearer' })
    }
    if (req.method !== 'GET') return text(405, 'method not allowed', { allow: 'GET' })
    if (isClosed()) return text(503, 'closing', { connection: 'close' })
    const rest = path.slice(basePath.length)
    const slash = rest.indexOf('/')
    if (slash === -1) return text(400, 'bad request: expected {group}/{key}')
    let groupName: string
    let key: string
    try {
      groupName = unescapePathPart(rest.slice(0, slash))
      key = unescapePathPart(rest.slice(slash + 1))
    } catch {
      return text(400, 'bad request: malformed escape')
    }
    const group = lookup(groupName)
    if (group === undefined) return text(404, `no such group: ${groupName.slice(0, 200)}`)
    if (Buffer.byteLength(key) > maxKeyBytes) return text(400, `bad request: key longer than ${maxKeyBytes} bytes`)
    try {
      const value = await group.serve(key, req)
      return {
        status: 200,
        headers: { 'content-type': PROTOBUF },
        body: encodeGetResponse({ value: value.bytes, expire: value.expire }),
      }
    } catch (err) {
      return errorResponse(err)
    }
  }
}

function errorResponse(err: unknown): PeerResponse {
  const message = errorMessage(err).slice(0, MAX_ERROR_TEXT)
  if (err instanceof NotFoundError) return text(404, message, { [ERROR_HEADER]: err.code })
  if (err instanceof AbortedError) return text(503, 'aborted')
  if (err instanceof GroupcacheError && (err.code === 'ERR_GROUPCACHE_CLOSED' || err.code === 'ERR_GROUPCACHE_INVALID_KEY')) {
    return text(err.code === 'ERR_GROUPCACHE_CLOSED' ? 503 : 400, message)
  }
  const code = err instanceof CodecError ? err.code : 'ERR_GROUPCACHE_LOAD_FAILED'
  return text(500, message, { [ERROR_HEADER]: code })
}

/**
 * toPeerRequest adapts a node:http request for the handler, as every
 * adapter and `listen()` need. Its signal aborts when the client goes away
 * before the answer is written; it is made only if a load asks for it, since
 * most peer requests are cache hits and a signal per request is not free.
 */
export function toPeerRequest(req: IncomingMessage, res: ServerResponse): PeerRequest {
  let controller: AbortController | undefined
  let gone = false
  res.once('close', () => {
    gone = !res.writableFinished
    if (gone) controller?.abort()
  })
  return {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: req.headers,
    get signal() {
      if (controller === undefined) {
        controller = new AbortController()
        if (gone) controller.abort()
      }
      return controller.signal
    },
  }
}

/** writePeerResponse writes the handler's answer on a node:http response. */
export function writePeerResponse(res: ServerResponse, answer: PeerResponse): void {
  if (res.headersSent || res.destroyed) return
  res.writeHead(answer.status, { ...answer.headers, 'content-length': answer.body.length })
  res.end(answer.body)
}

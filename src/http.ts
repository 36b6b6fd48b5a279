import { EventEmitter } from 'node:events'
import { Pool, errors } from 'undici'
import { Breaker, type BreakerOptions, type BreakerState } from './breaker.js'
import type { Logger } from './diagnostics.js'
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
 * PEER_KIND_TTL_MS is how long the client trusts what it learnt about a
 * peer (ours or Go's), so that a node replaced by the other kind is noticed.
 */
const PEER_KIND_TTL_MS = 60_000

/** PROTOBUF is the content type of a GetResponse. */
export const PROTOBUF = 'application/x-protobuf'
const MAX_ERROR_TEXT = 1024

/**
 * PeerTransport fetches a key's value from its owner. The default speaks
 * HTTP to Go-compatible peers; tests may inject their own. It rejects with a
 * PeerError when the owner could not answer (the caller then loads locally)
 * and with the owner's own GroupcacheError (not found, load failed) when it
 * answered with a verdict.
 */
export interface PeerTransport {
  /**
   * fetch asks the owner for a key. `generation` is this node's generation of
   * the group (0 until a `clear()`); the answer carries the owner's.
   * `refresh` says this node holds a stale copy: the owner may hold the
   * answer until its own refresh of the key ends (see REFRESH_HEADER).
   */
  fetch(peer: string, group: string, key: string, signal: AbortSignal, generation?: number, refresh?: boolean): Promise<PeerValue>
  /** remove drops a key from a peer's caches (`DELETE`). */
  remove?(peer: string, group: string, key: string): Promise<void>
  /** set stores a value in a peer's main cache (`PUT`); `staleUntil` ends its stale window (0: none). */
  set?(peer: string, group: string, key: string, value: Uint8Array, expire: number, staleUntil?: number): Promise<void>
  /** clear moves a peer's group to `generation`, dropping older entries. */
  clear?(peer: string, group: string, generation: number): Promise<void>
  /** setPeers opens what is needed for a new peer list and drops the rest. */
  setPeers?(peers: readonly string[]): void
  /** health reports what the transport knows of each peer. */
  health?(): PeerHealth[]
  /** close ends every connection, after at most `graceMs` for requests in flight. */
  close?(graceMs?: number): Promise<void>
}

/**
 * DEFAULT_MAX_RESPONSE_BYTES caps what this node reads from a peer in one
 * answer, so a broken or hostile peer cannot exhaust its memory.
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

/** PeerHealth is what a node knows of one peer's health. */
export interface PeerHealth {
  peer: string
  state: BreakerState
  /** failures counts failed requests in a row. */
  failures: number
  lastError: string | undefined
}

/**
 * readLimited reads an answer's body, refusing one larger than `max` bytes
 * before reading it when its length is declared, and as soon as it passes
 * `max` when it is not.
 */
async function readLimited(body: AsyncIterable<Buffer> & { arrayBuffer(): Promise<ArrayBuffer>; destroy(): unknown }, length: string | undefined, max: number): Promise<Uint8Array> {
  if (length !== undefined) {
    if (Number(length) > max) {
      body.destroy()
      throw new Error(`answer of ${length} bytes is over the limit of ${max}`)
    }
    return new Uint8Array(await body.arrayBuffer())
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > max) {
      body.destroy()
      throw new Error(`answer is over the limit of ${max} bytes`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

/**
 * PeerValue is an owner's answer: the value's bytes, its absolute expiry in
 * unix ms (0 for none), the end of its stale window (0 for none; absent from
 * transports that predate it) and the generation its load began in (0 from
 * Go peers and before any `clear()`).
 */
export interface PeerValue {
  value: Uint8Array
  expire: number
  staleUntil?: number
  generation: number
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

/** bearer is the Authorization header value for a secret. */
export function bearer(secret: string): string {
  return `Bearer ${secret}`
}

/**
 * HttpTransport is the default PeerTransport: one keep-alive undici Pool per
 * peer, a timeout and the caller's AbortSignal on every request.
 */
export class HttpTransport implements PeerTransport {
  readonly #pools = new Map<string, { pool: Pool; prefix: string; breaker: Breaker }>()
  // What each peer has shown it is: ours (PUT, DELETE) or not (Go).
  readonly #kinds = new Map<string, { ours: Promise<boolean>; until: number }>()
  readonly #basePath: string
  readonly #timeoutMs: number
  readonly #headers: Record<string, string>
  readonly #connections: number
  readonly #maxResponseBytes: number
  readonly #breaker: BreakerOptions

  constructor(options: {
    basePath: string
    timeoutMs: number
    secret?: string | undefined
    connections?: number
    maxResponseBytes?: number
    breaker?: BreakerOptions
    logger?: Logger | undefined
  }) {
    this.#basePath = options.basePath
    this.#timeoutMs = options.timeoutMs
    this.#headers = options.secret === undefined ? {} : { authorization: bearer(options.secret) }
    this.#connections = options.connections ?? DEFAULT_PEER_CONNECTIONS
    this.#maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES
    const logger = options.logger
    this.#breaker = {
      ...options.breaker,
      // One line per transition, never one per failed request.
      onChange: (state, breaker) => {
        if (logger === undefined) return
        if (state === 'open') {
          logger.warn({ peer: breaker.peer, failures: breaker.failures, lastError: breaker.lastError }, 'groupcache: peer skipped after repeated failures')
        } else {
          ;(logger.info ?? logger.warn).call(logger, { peer: breaker.peer }, 'groupcache: peer answers again')
        }
      },
    }
  }

  setPeers(peers: readonly string[]): void {
    const wanted = new Set(peers)
    for (const [peer, { pool }] of this.#pools) {
      if (!wanted.has(peer)) {
        this.#pools.delete(peer)
        this.#kinds.delete(peer)
        void pool.close().catch(() => {})
      }
    }
    for (const peer of wanted) {
      if (this.#pools.has(peer)) continue
      const url = new URL(peer)
      this.#pools.set(peer, {
        pool: new Pool(url.origin, { connections: this.#connections, pipelining: 1 }),
        prefix: url.pathname === '/' ? '' : url.pathname,
        breaker: new Breaker({ ...this.#breaker, peer }),
      })
    }
  }

  async fetch(peer: string, group: string, key: string, signal: AbortSignal, generation = 0, refresh = false): Promise<PeerValue> {
    let headers = generation > 0 ? { ...this.#headers, [GENERATION_HEADER]: String(generation) } : this.#headers
    // Half the deadline: the owner answers with what it has before this
    // node gives up on it (which would count against the peer's circuit).
    if (refresh) headers = { ...headers, [REFRESH_HEADER]: String(Math.floor(this.#timeoutMs / 2)) }
    const res = await this.#request(peer, 'GET', keyPath(group, key), headers, undefined, signal)
    if (res.status === 200) {
      let msg: GetResponse
      try {
        msg = decodeGetResponse(res.body)
      } catch (err) {
        this.#pools.get(peer)?.breaker.failure('a malformed answer')
        throw new PeerError(peer, `peer ${peer} sent a malformed answer: ${errorMessage(err)}`, { cause: err, status: 200 })
      }
      return {
        value: msg.value,
        expire: msg.expire ?? 0,
        staleUntil: msg.staleUntil ?? 0,
        generation: parseGeneration(res.generation) ?? 0,
      }
    }
    throw failure(peer, res)
  }

  /**
   * ours resolves once `peer` has shown that it understands PUT and DELETE,
   * and rejects with a PeerError for a Go peer. The probe, `GET {basePath}`,
   * is one both kinds answer with a 400 without loading anything.
   */
  async #ours(peer: string, what: string): Promise<void> {
    let known = this.#kinds.get(peer)
    if (known === undefined || known.until < Date.now()) {
      const probe = this.#request(peer, 'GET', '', this.#headers).then((res) => res.protocol !== undefined)
      known = { ours: probe, until: Date.now() + PEER_KIND_TTL_MS }
      this.#kinds.set(peer, known)
      probe.catch(() => this.#kinds.delete(peer))
    }
    if (!(await known.ours)) {
      throw new PeerError(peer, `peer ${peer} does not speak this library's protocol (a Go groupcache node?): it cannot ${what}`)
    }
  }

  async remove(peer: string, group: string, key: string): Promise<void> {
    await this.#ours(peer, 'remove keys')
    const res = await this.#request(peer, 'DELETE', keyPath(group, key), this.#headers)
    if (res.status !== 204) throw failure(peer, res)
  }

  async set(peer: string, group: string, key: string, value: Uint8Array, expire: number, staleUntil = 0): Promise<void> {
    await this.#ours(peer, 'store values')
    const body = encodeGetResponse({ value, expire, staleUntil })
    const headers = { ...this.#headers, 'content-type': PROTOBUF }
    const res = await this.#request(peer, 'PUT', keyPath(group, key), headers, body)
    if (res.status !== 204) throw failure(peer, res)
  }

  async clear(peer: string, group: string, generation: number): Promise<void> {
    await this.#ours(peer, 'clear groups')
    const headers = { ...this.#headers, [GENERATION_HEADER]: String(generation) }
    const res = await this.#request(peer, 'DELETE', escapePathPart(group), headers)
    if (res.status !== 204) throw failure(peer, res)
  }

  async #request(
    peer: string,
    method: 'GET' | 'PUT' | 'DELETE',
    path: string,
    headers: Record<string, string>,
    body?: Uint8Array,
    signal?: AbortSignal,
  ): Promise<RawAnswer> {
    const target = this.#pools.get(peer)
    if (target === undefined) throw new PeerError(peer, `${peer} is not a current peer`)
    const breaker = target.breaker
    if (!breaker.allow()) {
      throw new PeerError(peer, `peer ${peer} is skipped for now after ${breaker.failures} failures in a row (last: ${breaker.lastError})`)
    }
    // One deadline for the whole exchange, the owner's load included. undici's
    // own timeouts tick once a second, too coarse for a short peerTimeoutMs,
    // and a timeout AbortSignal (plus AbortSignal.any) costs several times
    // what a plain timer and an EventEmitter do, on every request.
    const abort = new EventEmitter()
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      abort.emit('abort')
    }, this.#timeoutMs)
    const onAbort = (): void => {
      abort.emit('abort')
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    let answer: RawAnswer
    try {
      const res = await target.pool.request({
        path: `${target.prefix}${this.#basePath}${path}`,
        method,
        headers,
        body,
        signal: abort,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      })
      answer = {
        status: res.statusCode,
        errorCode: firstHeader(res.headers[ERROR_HEADER]),
        generation: firstHeader(res.headers[GENERATION_HEADER]),
        protocol: firstHeader(res.headers[PROTOCOL_HEADER]),
        body: await readLimited(res.body, firstHeader(res.headers['content-length']), this.#maxResponseBytes),
      }
    } catch (err) {
      if (signal?.aborted) {
        breaker.release()
        throw new AbortedError(signal.reason)
      }
      const late = timedOut || err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError
      const why = late ? `timed out after ${this.#timeoutMs} ms` : errorMessage(err)
      breaker.failure(why)
      throw new PeerError(peer, `peer ${peer} failed: ${why}`, { cause: err })
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    // A 5xx without our marker is the peer (or a proxy before it) failing;
    // anything else, a loader's verdict included, shows a working peer.
    if (answer.status >= 500 && answer.errorCode === undefined) breaker.failure(`answered ${answer.status}`)
    else breaker.success()
    return answer
  }

  /** health reports each peer's circuit, for operators. */
  health(): PeerHealth[] {
    return [...this.#pools].map(([peer, { breaker }]) => ({
      peer,
      state: breaker.state,
      failures: breaker.failures,
      lastError: breaker.lastError,
    }))
  }

  /**
   * close lets requests in flight finish for up to `graceMs`, then destroys
   * whatever is left, so that no socket outlives the instance.
   */
  async close(graceMs = 0): Promise<void> {
    const pools = [...this.#pools.values()].map(({ pool }) => pool)
    this.#pools.clear()
    this.#kinds.clear()
    await Promise.all(
      pools.map(async (pool) => {
        let timer: NodeJS.Timeout | undefined
        const late = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs)
        })
        await Promise.race([pool.close().catch(() => {}), late])
        clearTimeout(timer)
        if (!pool.destroyed) await pool.destroy().catch(() => {})
      }),
    )
  }

}

interface RawAnswer {
  status: number
  errorCode: string | undefined
  generation: string | undefined
  protocol: string | undefined
  body: Uint8Array
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

function keyPath(group: string, key: string): string {
  return `${escapePathPart(group)}/${escapePathPart(key)}`
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

/** failure turns an answer other than the expected one into the right error. */
function failure(peer: string, res: RawAnswer): GroupcacheError {
  const text = Buffer.from(res.body).toString('utf8').slice(0, MAX_ERROR_TEXT)
  return verdictError(res.errorCode, text) ?? new PeerError(peer, `peer ${peer} answered ${res.status}: ${text.trim()}`, { status: res.status })
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

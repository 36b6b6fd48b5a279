import type { IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import { Client, type Dispatcher, Pool } from 'undici'
import { BATCH_CONTENT_TYPE, type BatchItem, chunkKeys, decodeBatchAnswer, encodeBatchKeys } from './batch.js'
import { Breaker, type BreakerOptions } from './breaker.js'
import { Deadlines, type Expiring } from './deadlines.js'
import { DEFERRED_TYPE, decodeDeferred, WAIT_HEADER } from './deferred.js'
import type { Logger } from './diagnostics.js'
import { AbortedError, errorMessage, GroupcacheError, PeerError } from './errors.js'
import type { AbortSource } from './flight.js'
import type { PeerValue } from './group.js'
import { HANDOFF_TYPE, PEEK_HEADER } from './handoff.js'
import { type PeerHealth, type PeerTransport, takesAbortSource } from './peers.js'
import {
  answerError,
  bearer,
  ERROR_HEADER,
  escapePathPart,
  GENERATION_HEADER,
  keyPath,
  MAX_ERROR_TEXT,
  PROTOBUF,
  PROTOCOL_HEADER,
  parseGeneration,
  REFRESH_HEADER,
  verdictError,
} from './protocol.js'
import { decodeGetResponse, encodeGetResponse, type GetResponse } from './wire.js'

// The peer client: how this node asks the others. The server side is
// handler.ts; what both must agree on is protocol.ts.

/**
 * DEFAULT_PEER_TIMEOUT_MS bounds the silence of one peer fetch. An owner of
 * ours that is still loading sends heartbeats (deferred.ts), so only a
 * silent owner times out; a Go owner sends none, so for it this bounds the
 * whole fetch, its load included, and a slower load is loaded twice.
 */
export const DEFAULT_PEER_TIMEOUT_MS = 10_000

/**
 * DEFAULT_PEER_CONNECTIONS is the number of keep-alive connections this node
 * opens to each peer at most.
 */
export const DEFAULT_PEER_CONNECTIONS = 32

/**
 * PEER_KIND_TTL_MS is how long the client trusts what it learnt about a
 * peer (ours or Go's), so that a node replaced by the other kind is noticed.
 */
const PEER_KIND_TTL_MS = 60_000

/**
 * DEFAULT_MAX_RESPONSE_BYTES caps what this node reads from a peer in one
 * answer, so a broken or hostile peer cannot exhaust its memory.
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

/**
 * HttpTransport is the default PeerTransport: one keep-alive undici Pool per
 * peer, a timeout and the caller's AbortSignal on every request.
 */
export class HttpTransport implements PeerTransport {
  // fetch reads only what an AbortSource has of its signal.
  readonly [takesAbortSource] = true
  readonly #pools = new Map<string, { pool: Pool; prefix: string; breaker: Breaker }>()
  // What each peer has shown it is: ours (PUT, DELETE) or not (Go).
  // An early probe (see probeNow) fails no one: whoever waits on it probes again.
  readonly #kinds = new Map<string, { ours: Promise<boolean>; until: number; early?: boolean }>()
  // Peers of ours too old for batches (they answered one with 405), until when.
  readonly #noBatches = new Map<string, number>()
  readonly #basePath: string
  readonly #timeoutMs: number
  readonly #headers: Record<string, string>
  // What a fetch sends: the secret, and the silence this node tolerates, so
  // that an owner still loading the key answers early and keeps in touch.
  readonly #fetchHeaders: Record<string, string>
  readonly #random: () => number
  readonly #probeEarly: boolean
  readonly #breaker: BreakerOptions
  readonly #logger: Logger | undefined
  // Peer and status of each refusal reported already: one line each, ever.
  readonly #refusals = new Set<string>()
  // The deadline of every exchange in flight, on one timer.
  readonly #deadlines = new Deadlines()

  constructor(options: {
    basePath: string
    timeoutMs: number
    secret?: string | undefined
    breaker?: BreakerOptions | undefined
    logger?: Logger | undefined
    /** random draws the jitter of retries (default Math.random). */
    random?: (() => number) | undefined
    /** probeEarly probes each new peer for our marker at once, for peeks (default false). */
    probeEarly?: boolean | undefined
  }) {
    this.#probeEarly = options.probeEarly ?? false
    this.#basePath = options.basePath
    this.#timeoutMs = options.timeoutMs
    this.#headers = options.secret === undefined ? {} : { authorization: bearer(options.secret) }
    this.#fetchHeaders = { ...this.#headers, [WAIT_HEADER]: String(options.timeoutMs) }
    this.#random = options.random ?? Math.random
    const logger = options.logger
    this.#logger = logger
    this.#breaker = {
      ...options.breaker,
      // One line per transition, never one per failed request.
      onChange: (state, breaker) => {
        if (logger === undefined) return
        if (state === 'open') {
          logger.warn(
            { peer: breaker.peer, failures: breaker.failures, lastError: breaker.lastError },
            'groupcache: peer skipped after repeated failures',
          )
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
        this.#noBatches.delete(peer)
        void pool.close().catch(() => {})
      }
    }
    for (const peer of wanted) {
      if (this.#pools.has(peer)) continue
      const url = new URL(peer)
      this.#pools.set(peer, {
        pool: new Pool(url.origin, { connections: DEFAULT_PEER_CONNECTIONS, pipelining: 1, factory: PeerClient.create }),
        prefix: url.pathname === '/' ? '' : url.pathname,
        breaker: new Breaker({ ...this.#breaker, peer }),
      })
      if (this.#probeEarly) this.#probeNow(peer)
    }
  }

  async fetch(
    peer: string,
    group: string,
    key: string,
    signal: AbortSource,
    generation = 0,
    extra?: Record<string, string>,
    refresh = false,
    accept?: (value: Uint8Array) => void,
  ): Promise<PeerValue> {
    let headers = generation > 0 ? { ...this.#fetchHeaders, [GENERATION_HEADER]: String(generation) } : this.#fetchHeaders
    if (extra !== undefined) headers = { ...lowerCased(extra), ...headers }
    // Half the deadline: the owner answers with what it has before this
    // node gives up on it (which would count against the peer's circuit).
    if (refresh) headers = { ...headers, [REFRESH_HEADER]: String(Math.floor(this.#timeoutMs / 2)) }
    const path = keyPath(group, key)
    // One deadline for the whole exchange, retries included.
    const deadline = performance.now() + this.#timeoutMs
    for (;;) {
      const res = await this.#request(peer, 'GET', path, headers, { signal, judged: false, timeoutMs: deadline - performance.now() })
      if (res.status === 200) return readValue(peer, res, accept)
      this.#judge(res)
      if (res.status !== 503 || res.errorCode !== OVERLOADED) throw answerError(peer, res.status, res.errorCode, res.body)
      // The owner is alive but at its cap: loading the key here would be the
      // very duplicate load the cap prevents. Ask again after Retry-After
      // (jittered, so refused askers do not come back at once), as long as
      // the deadline allows; past it, this node loads the key after all.
      const delay = retryDelay(res.retryAfter, this.#random())
      if (performance.now() + delay >= deadline) {
        throw new PeerError(peer, `peer ${peer} stayed at its cap of loads for peers for ${this.#timeoutMs} ms`, { status: 503 })
      }
      await pause(delay, signal)
    }
  }

  /**
   * ours resolves once `peer` has shown that it understands PUT and DELETE,
   * and rejects with a PeerError for a Go peer. The probe, `GET {basePath}`,
   * is one both kinds answer with a 400 without loading anything.
   */
  async #ours(peer: string, what: string): Promise<void> {
    if (!(await this.#isOurs(peer))) {
      throw new PeerError(peer, `peer ${peer} does not speak this library's protocol (a Go groupcache node?): it cannot ${what}`)
    }
  }

  /**
   * probeNow learns what `peer` is ahead of need: a peek's short deadline
   * has no room for the probe that must come first, least of all on a node
   * that has just started. It is quiet (no breaker), and its failure fails
   * nobody: a peer not listening yet is probed again by whoever needs to
   * know, and whoever waited on this probe does that.
   */
  #probeNow(peer: string): void {
    const ours = this.#request(peer, 'GET', '', this.#headers, { quiet: true }).then((res) => res.protocol !== undefined)
    const known = { ours, until: Date.now() + PEER_KIND_TTL_MS, early: true }
    this.#kinds.set(peer, known)
    ours.catch(() => {
      if (this.#kinds.get(peer) === known) this.#kinds.delete(peer)
    })
  }

  /** isOurs says whether `peer` has shown our marker; it rejects when the probe could not be made. */
  #isOurs(peer: string): Promise<boolean> {
    let known = this.#kinds.get(peer)
    if (known === undefined || known.until < Date.now()) {
      const probe = this.#request(peer, 'GET', '', this.#headers).then((res) => res.protocol !== undefined)
      known = { ours: probe, until: Date.now() + PEER_KIND_TTL_MS }
      this.#kinds.set(peer, known)
      probe.catch(() => this.#kinds.delete(peer))
    }
    if (known.early === true) return known.ours.catch(() => this.#isOurs(peer))
    return known.ours
  }

  /**
   * peek asks `peer` for its cached copy of a key, within `timeoutMs` (the
   * marker probe included). Any failure is a miss: a peek is an optimisation,
   * so it neither throws nor counts against the peer's circuit, and a peer
   * whose circuit is not closed is not asked.
   */
  async peek(peer: string, group: string, key: string, generation: number, timeoutMs: number): Promise<PeerValue | undefined> {
    const found = await this.peekMany(peer, group, [key], generation, timeoutMs)
    return found.get(key)
  }

  /**
   * peekMany is `peek` for several keys: one `GET` for one key, else one
   * `POST {group}` batch per chunk, all with PEEK_HEADER, within `timeoutMs`
   * together. It resolves to the copies that arrived in time.
   */
  async peekMany(
    peer: string,
    group: string,
    keys: readonly string[],
    generation: number,
    timeoutMs: number,
  ): Promise<Map<string, PeerValue>> {
    const found = new Map<string, PeerValue>()
    const target = this.#pools.get(peer)
    if (target === undefined || target.breaker.state !== 'closed' || keys.length === 0) return found
    let late = false
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs)
    })
    const keep = (key: string, value: PeerValue): void => {
      if (!late) found.set(key, value)
    }
    // A peer that is gone refuses at once; one that is stuck costs the
    // deadline, once per batch of misses (its circuit, if it is a current
    // peer, soon opens on its fetches, and then it is not asked at all).
    const work = this.#peekMany(peer, group, keys, generation, timeoutMs, keep).catch(() => {})
    await Promise.race([work, deadline])
    late = true
    clearTimeout(timer)
    return found
  }

  /**
   * fetchMany asks `peer` for many keys: one `POST {group}` batch per chunk
   * (`MAX_BATCH_KEYS` keys, `MAX_BATCH_BODY_BYTES` of them) to a peer that
   * has shown our marker, and one GET per key to any other (Go's server
   * would not understand a batch). Keys a batch answer leaves out (it keeps
   * under `MAX_BATCH_ANSWER_BYTES`), and every key of a batch an older peer
   * of ours refuses, are fetched one GET each. Keys the owner refused for
   * overload are asked for again, as `fetch` does (see fetchChunk). A chunk
   * that fails as a whole (a transport failure, a 503) gives each of its
   * keys that error. `extra` headers (a tracer's) go with every request.
   */
  async fetchMany(
    peer: string,
    group: string,
    keys: readonly string[],
    signal: AbortSignal,
    generation = 0,
    extra?: Record<string, string>,
  ): Promise<Map<string, PeerValue | Error>> {
    const answers = new Map<string, PeerValue | Error>()
    let ours: boolean
    try {
      ours = await this.#isOurs(peer)
    } catch (err) {
      const error = err instanceof GroupcacheError ? err : new PeerError(peer, `peer ${peer} failed: ${errorMessage(err)}`, { cause: err })
      for (const key of keys) answers.set(key, error)
      return answers
    }
    const one = (key: string): Promise<void> =>
      this.fetch(peer, group, key, signal, generation, extra).then(
        (value) => void answers.set(key, value),
        (err: unknown) => void answers.set(key, err instanceof Error ? err : new PeerError(peer, errorMessage(err))),
      )
    if (!ours || (this.#noBatches.get(peer) ?? 0) > Date.now()) {
      await Promise.all(keys.map(one))
      return answers
    }
    // The wait header, as for a GET: an owner still loading the batch keeps in touch.
    const headers: Record<string, string> = {
      ...(extra === undefined ? undefined : lowerCased(extra)),
      ...this.#fetchHeaders,
      'content-type': BATCH_CONTENT_TYPE,
    }
    if (generation > 0) headers[GENERATION_HEADER] = String(generation)
    const path = escapePathPart(group)
    await Promise.all(chunkKeys(keys).map((chunk) => this.#fetchChunk(peer, path, chunk, headers, signal, answers, one)))
    return answers
  }

  /**
   * fetchChunk asks for one chunk of keys and keeps each key's answer in
   * `answers`; `one` fetches a key by GET (a key the answer left out, or
   * every key when the peer refused the batch itself). Keys the owner
   * refused under its `maxPeerLoads` (items with ERR_GROUPCACHE_OVERLOADED,
   * or a whole 503 that says so) are asked for again after Retry-After,
   * jittered, within one peerTimeoutMs for the chunk: loading them here
   * would be the very duplicate load the cap prevents. Past the deadline
   * they get a PeerError, and are loaded here after all.
   */
  async #fetchChunk(
    peer: string,
    path: string,
    chunk: readonly string[],
    headers: Record<string, string>,
    signal: AbortSignal,
    answers: Map<string, PeerValue | Error>,
    one: (key: string) => Promise<void>,
  ): Promise<void> {
    const deadline = performance.now() + this.#timeoutMs
    const singles: Array<Promise<void>> = []
    let pending = chunk
    while (pending.length > 0) {
      let answer: BatchAnswer | undefined
      try {
        answer = await this.#batch(peer, path, pending, headers, signal, deadline - performance.now())
      } catch (err) {
        const error = err instanceof Error ? err : new PeerError(peer, errorMessage(err))
        for (const key of pending) answers.set(key, error)
        break
      }
      if (answer === undefined) {
        singles.push(...pending.map(one))
        break
      }
      const asked = new Set(pending)
      const refused: string[] = []
      for (const item of answer.items) {
        if (!asked.has(item.key)) continue
        asked.delete(item.key)
        if ('value' in item) {
          answers.set(item.key, {
            value: item.value,
            expire: item.expire,
            staleUntil: item.staleUntil,
            generation: item.generation,
            minuteQps: item.minuteQps,
          })
        } else if (item.error === OVERLOADED) {
          refused.push(item.key)
        } else {
          answers.set(
            item.key,
            verdictError(item.error, item.message) ??
              new PeerError(peer, `peer ${peer} could not answer for ${JSON.stringify(item.key)}: ${item.message}`),
          )
        }
      }
      singles.push(...[...asked].map(one))
      pending = refused
      if (refused.length === 0) break
      const delay = retryDelay(answer.retryAfter, this.#random())
      let error: Error | undefined
      if (performance.now() + delay >= deadline) {
        error = new PeerError(peer, `peer ${peer} stayed at its cap of loads for peers for ${this.#timeoutMs} ms`, { status: 503 })
      } else {
        error = await pause(delay, signal).then(
          () => undefined,
          (err: unknown) => (err instanceof Error ? err : new AbortedError(err)),
        )
      }
      if (error !== undefined) {
        for (const key of refused) answers.set(key, error)
        break
      }
    }
    await Promise.all(singles)
  }

  /**
   * batch sends one chunk and reads its items, within `timeoutMs`. It
   * resolves to undefined when the peer refused the batch itself (an older
   * version of ours: 400, 405 or 413), so that the keys are fetched one by
   * one; after a 405 the peer gets no batch for a while, as long as what we
   * learnt of its kind holds. A 503 for overload is an answer that refuses
   * every key for overload.
   */
  async #batch(
    peer: string,
    path: string,
    keys: readonly string[],
    headers: Record<string, string>,
    signal: AbortSignal,
    timeoutMs: number,
  ): Promise<BatchAnswer | undefined> {
    const res = await this.#request(peer, 'POST', path, headers, { body: encodeBatchKeys(keys), signal, judged: false, timeoutMs })
    if (res.status === 405) this.#noBatches.set(peer, Date.now() + PEER_KIND_TTL_MS)
    if (res.status !== 200) this.#judge(res)
    if (res.status === 400 || res.status === 405 || res.status === 413) return undefined
    if (res.status === 503 && res.errorCode === OVERLOADED) {
      const message = Buffer.from(res.body).toString('utf8').slice(0, MAX_ERROR_TEXT).trim()
      return { items: keys.map((key) => ({ key, error: OVERLOADED, message })), retryAfter: res.retryAfter }
    }
    if (res.status !== 200) throw answerError(peer, res.status, res.errorCode, res.body)
    // A success for the peer's breaker only once the answer was decoded.
    let items: BatchItem[]
    try {
      items = decodeBatchAnswer(res.body, keys.length)
    } catch (err) {
      res.breaker.failure('a malformed batch answer')
      throw new PeerError(peer, `peer ${peer} sent a malformed batch answer: ${errorMessage(err)}`, { cause: err, status: 200 })
    }
    res.breaker.success()
    return { items, retryAfter: res.retryAfter }
  }

  async #peekMany(
    peer: string,
    group: string,
    keys: readonly string[],
    generation: number,
    timeoutMs: number,
    keep: (key: string, value: PeerValue) => void,
  ): Promise<void> {
    // A Go peer would answer a peek as a get, loading the key: never ask one.
    if (!(await this.#isOurs(peer))) return
    const headers: Record<string, string> = { ...this.#headers, [PEEK_HEADER]: '1' }
    if (generation > 0) headers[GENERATION_HEADER] = String(generation)
    const only = keys.length === 1 ? (keys[0] as string) : undefined
    if (only !== undefined) {
      const res = await this.#request(peer, 'GET', keyPath(group, only), headers, { timeoutMs, quiet: true })
      if (res.status !== 200 || res.protocol === undefined) return
      const msg = decodeGetResponse(res.body)
      keep(only, {
        value: msg.value,
        expire: msg.expire ?? 0,
        staleUntil: msg.staleUntil ?? 0,
        generation: parseGeneration(res.generation) ?? 0,
      })
      return
    }
    headers['content-type'] = BATCH_CONTENT_TYPE
    await Promise.all(
      chunkKeys(keys).map(async (chunk) => {
        const res = await this.#request(peer, 'POST', escapePathPart(group), headers, {
          body: encodeBatchKeys(chunk),
          timeoutMs,
          quiet: true,
        })
        if (res.status !== 200 || res.protocol === undefined) return
        const asked = new Set(chunk)
        for (const item of decodeBatchAnswer(res.body, chunk.length)) {
          if ('value' in item && asked.has(item.key)) {
            keep(item.key, { value: item.value, expire: item.expire, staleUntil: item.staleUntil ?? 0, generation: item.generation })
          }
        }
      }),
    )
  }

  /** handoff sends `peer` a hand-off body: entries for it to store, as if loaded. */
  async handoff(peer: string, group: string, body: Uint8Array, generation: number, signal: AbortSignal): Promise<void> {
    await this.#ours(peer, 'take entries over')
    const headers: Record<string, string> = { ...this.#headers, 'content-type': HANDOFF_TYPE }
    if (generation > 0) headers[GENERATION_HEADER] = String(generation)
    const res = await this.#request(peer, 'PUT', escapePathPart(group), headers, { body, signal })
    if (res.status !== 204) throw answerError(peer, res.status, res.errorCode, res.body)
  }

  async remove(peer: string, group: string, key: string): Promise<void> {
    await this.#ours(peer, 'remove keys')
    const res = await this.#request(peer, 'DELETE', keyPath(group, key), this.#headers)
    if (res.status !== 204) throw answerError(peer, res.status, res.errorCode, res.body)
  }

  async set(peer: string, group: string, key: string, value: Uint8Array, expire: number, staleUntil = 0): Promise<void> {
    await this.#ours(peer, 'store values')
    const body = encodeGetResponse({ value, expire, staleUntil })
    const headers = { ...this.#headers, 'content-type': PROTOBUF }
    const res = await this.#request(peer, 'PUT', keyPath(group, key), headers, { body })
    if (res.status !== 204) throw answerError(peer, res.status, res.errorCode, res.body)
  }

  async clear(peer: string, group: string, generation: number): Promise<void> {
    await this.#ours(peer, 'clear groups')
    const headers = { ...this.#headers, [GENERATION_HEADER]: String(generation) }
    const res = await this.#request(peer, 'DELETE', escapePathPart(group), headers)
    if (res.status !== 204) throw answerError(peer, res.status, res.errorCode, res.body)
  }

  /**
   * request runs one exchange with a peer, within `timeoutMs` (default the
   * peer timeout) of silence. Unless `judged` is false, it tells the peer's
   * breaker what the answer showed; a caller that decodes the answer first
   * passes false and judges it itself.
   */
  async #request(
    peer: string,
    method: 'GET' | 'PUT' | 'DELETE' | 'POST',
    path: string,
    headers: Record<string, string>,
    options: {
      body?: Uint8Array | undefined
      signal?: AbortSource | undefined
      judged?: boolean | undefined
      timeoutMs?: number | undefined
      /**
       * quiet leaves the peer's circuit as it found it (a peek): its failure
       * says nothing of the peer's health, and it is no probe either.
       */
      quiet?: boolean | undefined
    } = {},
  ): Promise<RawAnswer> {
    const { body, signal, judged = true, quiet = false } = options
    const timeoutMs = Math.max(1, options.timeoutMs ?? this.#timeoutMs)
    const target = this.#pools.get(peer)
    if (target === undefined) throw new PeerError(peer, `${peer} is not a current peer`)
    const breaker = target.breaker
    if (!quiet && !breaker.allow()) {
      throw new PeerError(peer, `peer ${peer} is skipped for now after ${breaker.failures} failures in a row (last: ${breaker.lastError})`)
    }
    if (signal?.aborted) {
      breaker.release()
      throw new AbortedError(signal.reason)
    }
    let answer: RawAnswer
    try {
      // One deadline for the whole exchange, the owner's load included, on
      // the transport's one timer (undici's own timeouts are off: they tick
      // once a second, too coarse for a short peerTimeoutMs, and cost a timer
      // per request). The exchange reads the answer whole, without a stream.
      const exchange = await this.#exchange(target, method, path, headers, body, timeoutMs, signal)
      const bytes = exchange.body()
      const inner = exchange.deferred ? decodeDeferred(bytes) : undefined
      const h = inner === undefined ? exchange.headers : inner.headers
      answer = {
        peer,
        breaker,
        status: inner?.status ?? exchange.status,
        errorCode: firstHeader(h[ERROR_HEADER]),
        generation: firstHeader(h[GENERATION_HEADER]),
        protocol: firstHeader(exchange.headers[PROTOCOL_HEADER]),
        retryAfter: firstHeader(h['retry-after']),
        body: inner?.body ?? bytes,
      }
    } catch (err) {
      if (signal?.aborted) {
        if (!quiet) breaker.release()
        throw new AbortedError(signal.reason)
      }
      const why = err === TIMED_OUT ? `timed out after ${quiet ? timeoutMs : this.#timeoutMs} ms` : errorMessage(err)
      if (!quiet) breaker.failure(why)
      throw new PeerError(peer, `peer ${peer} failed: ${why}`, err === TIMED_OUT ? {} : { cause: err })
    }
    // The caller of an unjudged request judges the answer itself, once it
    // has decoded it.
    if (judged && !quiet) this.#judge(answer)
    return answer
  }

  /**
   * exchange runs one request on `target`'s pool within `timeoutMs`, and
   * sends a replayable one once more, at once, when its connection was lost
   * under it (see Exchange.lost): a kept-alive connection that the peer
   * closed as idle (its keep-alive timeout, a restart during a deploy) just
   * as the request went out. undici fails such a request and does not send
   * it again; counted as the peer's failure, it would make the caller load
   * the key itself, the duplicate load groupcache exists to prevent. Go's
   * Transport sends it again too. Once only, within the same deadline, and
   * never after a byte of an answer, a timeout or the caller's abort. A GET
   * may be replayed, and so may a batch: its POST only reads, as the GETs it
   * stands for do (the owner loads or peeks, and a repeat joins the load
   * running). The changes (PUT, DELETE) never are.
   */
  async #exchange(
    target: { pool: Pool; prefix: string },
    method: 'GET' | 'PUT' | 'DELETE' | 'POST',
    path: string,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
    timeoutMs: number,
    signal: AbortSource | undefined,
  ): Promise<Exchange> {
    const url = `${target.prefix}${this.#basePath}${path}`
    const deadline = performance.now() + timeoutMs
    let replay = method === 'GET' || method === 'POST'
    for (;;) {
      let exchange: Exchange | undefined
      try {
        return await new Promise<Exchange>((resolve, reject) => {
          exchange = new Exchange(deadline - performance.now(), DEFAULT_MAX_RESPONSE_BYTES, signal, this.#deadlines, resolve, reject)
          const options: ExchangeOptions = { path: url, method, headers, body: body ?? null, headersTimeout: 0, bodyTimeout: 0, exchange }
          target.pool.dispatch(options, exchange)
        })
      } catch (err) {
        if (!replay || exchange?.lost(err) !== true || signal?.aborted || deadline - performance.now() < 1) throw err
        replay = false
      }
    }
  }

  /**
   * judge tells an answer's breaker what the answer showed. A 5xx without
   * our marker is the peer (or a proxy before it) failing, and so is a 401
   * or 403: a peer that refuses this node is as useless as a dead one, and
   * it is a misconfiguration (an app-level auth hook in front of the
   * endpoint, secrets that differ), reported once. Anything else, a loader's
   * verdict included, shows a working peer.
   */
  #judge(answer: RawAnswer): void {
    const { status, breaker } = answer
    if (status === 401 || status === 403) {
      breaker.failure(`answered ${status}`)
      this.#reportRefusal(answer)
    } else if (status >= 500 && answer.errorCode === undefined) {
      breaker.failure(`answered ${status}`)
    } else {
      breaker.success()
    }
  }

  #reportRefusal(answer: RawAnswer): void {
    const { peer, status } = answer
    const seen = `${status} ${peer}`
    if (this.#refusals.has(seen)) return
    this.#refusals.add(seen)
    const why =
      answer.protocol === undefined
        ? `without groupcache's marker: something in front of its endpoint (an auth hook, a proxy) refuses peers. Exempt ${this.#basePath} from it; the secret authenticates peers`
        : status === 401
          ? "to this node's secret: give every node the same secret (or list)"
          : 'to a change: that node has no secret'
    const message = `groupcache: peer ${peer} answered ${status} ${why}; its keys are loaded here meanwhile`
    if (this.#logger !== undefined) this.#logger.warn({ peer, status }, message)
    else process.emitWarning(message, { code: 'GROUPCACHE_PEER_REFUSED' })
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
    this.#deadlines.clear()
    this.#pools.clear()
    this.#kinds.clear()
    this.#noBatches.clear()
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

/** TIMED_OUT is what an exchange fails with when its deadline passes. */
const TIMED_OUT = new Error('timed out')

/**
 * Exchange is one request to a peer, its deadline and its answer, read
 * whole: the undici dispatch handler, the deadline and the caller's signal
 * in one object, so that an exchange costs one promise and no stream. It
 * resolves with itself once the answer has ended, and rejects with the
 * first failure: the transport's, TIMED_OUT when the deadline passed (for a
 * deferred answer, the silence since the last byte), the signal's reason,
 * or an answer over `max` bytes (refused before it is read when its length
 * is declared). Whatever happens after that is ignored, and the request,
 * if still running, is aborted (undici then drops its connection).
 */
class Exchange implements Dispatcher.DispatchHandler, Expiring {
  deadline: number
  slot = -1
  status = 0
  headers: IncomingHttpHeaders = {}
  /** deferred says the answer is a deferred one (see deferred.ts): heartbeats, then a frame. */
  deferred = false
  readonly #silenceMs: number
  readonly #max: number
  readonly #signal: AbortSource | undefined
  readonly #deadlines: Deadlines
  readonly #resolve: (exchange: Exchange) => void
  readonly #reject: (err: unknown) => void
  #controller: Dispatcher.DispatchController | undefined
  #client: PeerClient | undefined
  // The connection the request went out on, if it had carried one before,
  // and what had been read from it by then (see lost).
  #reused: Socket | undefined
  #readBefore = 0
  #settled = false
  #first: Buffer | undefined
  #chunks: Buffer[] | undefined
  #size = 0

  constructor(
    silenceMs: number,
    max: number,
    signal: AbortSource | undefined,
    deadlines: Deadlines,
    resolve: (exchange: Exchange) => void,
    reject: (err: unknown) => void,
  ) {
    this.#silenceMs = silenceMs
    this.deadline = performance.now() + silenceMs
    this.#max = max
    this.#signal = signal
    this.#deadlines = deadlines
    this.#resolve = resolve
    this.#reject = reject
    deadlines.add(this)
    signal?.addEventListener('abort', this.#onAbort)
  }

  /** body is the answer's bytes: the one chunk it came in as is, else the chunks joined. */
  body(): Uint8Array {
    const chunks = this.#chunks
    const first = this.#first
    this.#chunks = undefined
    this.#first = undefined
    if (chunks !== undefined) return Buffer.concat(chunks, this.#size)
    return first ?? EMPTY
  }

  /** takenBy is told which connection of the pool carries this exchange. */
  takenBy(client: PeerClient): void {
    this.#client = client
  }

  /**
   * lost says whether `err`, which this exchange failed with, is the loss of
   * a connection that had carried requests before, before a byte of the
   * answer came: the peer closed it as idle just as the request went out
   * (what Go's Transport calls a request that may be retried on a new
   * connection). A fresh connection that fails is no such race, and an
   * answer begun (a status line, even a garbled one) means the peer saw the
   * request.
   */
  lost(err: unknown): boolean {
    const socket = this.#reused
    if (socket === undefined || socket.bytesRead !== this.#readBefore) return false
    const code = err instanceof Error && 'code' in err ? err.code : undefined
    return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE'
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.#settled) {
      controller.abort(ENDED)
      return
    }
    this.#controller = controller
    this.#reused = this.#client?.start()
    if (this.#reused !== undefined) this.#readBefore = this.#reused.bytesRead
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    if (this.#settled) {
      controller.abort(ENDED)
      return
    }
    if (status < 200) return
    this.status = status
    this.headers = headers
    if (status === 200 && firstHeader(headers['content-type']) === DEFERRED_TYPE) {
      // The owner is working on the key: from here on only silence counts,
      // so the deadline moves with every heartbeat.
      this.deferred = true
      this.deadline = performance.now() + this.#silenceMs
      return
    }
    const length = firstHeader(headers['content-length'])
    if (length !== undefined && Number(length) > this.#max)
      this.#fail(new Error(`answer of ${length} bytes is over the limit of ${this.#max}`))
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) {
      controller.abort(ENDED)
      return
    }
    if (this.deferred) this.deadline = performance.now() + this.#silenceMs
    this.#size += chunk.length
    if (this.#size > this.#max) {
      this.#fail(new Error(`answer is over the limit of ${this.#max} bytes`))
      return
    }
    if (this.#first === undefined) this.#first = chunk
    else if (this.#chunks === undefined) this.#chunks = [this.#first, chunk]
    else this.#chunks.push(chunk)
  }

  onResponseEnd(): void {
    if (this.#settled) return
    this.#settle()
    this.#resolve(this)
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#fail(err)
  }

  expire(): void {
    this.#fail(TIMED_OUT)
  }

  readonly #onAbort = (): void => {
    this.#fail(this.#signal?.reason)
  }

  #settle(): void {
    this.#settled = true
    this.#deadlines.delete(this)
    this.#signal?.removeEventListener('abort', this.#onAbort)
  }

  #fail(err: unknown): void {
    if (this.#settled) return
    this.#settle()
    this.#first = undefined
    this.#chunks = undefined
    this.#controller?.abort(err instanceof Error ? err : ENDED)
    this.#reject(err)
  }
}

/** ExchangeOptions are a request's options, with the exchange that runs it, for PeerClient. */
interface ExchangeOptions extends Dispatcher.DispatchOptions {
  exchange: Exchange
}

/**
 * PeerClient is one connection of a peer's pool: undici's Client, made to
 * tell each exchange it carries what undici tells no handler, the socket
 * its request goes out on and whether that connection carried a request
 * before (see Exchange.lost). The pool hands it each request's options as
 * they were dispatched, the exchange among them.
 */
class PeerClient extends Client {
  #socket: Socket | undefined
  // Requests started on #socket.
  #carried = 0

  /**
   * create is the pool's factory: a client whose connector, the pool's own,
   * shows it each new connection.
   */
  static create(this: void, origin: URL, options: object): PeerClient {
    const { connect } = options as Client.Options
    if (typeof connect !== 'function') return new PeerClient(origin, options)
    const client: PeerClient = new PeerClient(origin, {
      ...options,
      connect: (opts, callback) =>
        connect(opts, (...outcome) => {
          if (outcome[1] !== null) client.#adopt(outcome[1])
          callback(...outcome)
        }),
    })
    return client
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    ;(options as Partial<ExchangeOptions>).exchange?.takenBy(this)
    return super.dispatch(options, handler)
  }

  /**
   * start counts a request going out on the current connection; it returns
   * that connection if it had carried a request before.
   */
  start(): Socket | undefined {
    return this.#carried++ > 0 ? this.#socket : undefined
  }

  #adopt(socket: Socket): void {
    this.#socket = socket
    this.#carried = 0
  }
}

/** ENDED aborts a request whose exchange has already ended. */
const ENDED = new Error('the exchange ended')

const EMPTY = new Uint8Array(0)

/** BatchAnswer is a batch's items, and the Retry-After that came with them. */
interface BatchAnswer {
  items: BatchItem[]
  retryAfter: string | undefined
}

/** OVERLOADED is the code of a refusal under the owner's `maxPeerLoads`. */
const OVERLOADED = 'ERR_GROUPCACHE_OVERLOADED'

interface RawAnswer {
  peer: string
  /** breaker is the circuit of the peer that answered, for `judge`. */
  breaker: Breaker
  status: number
  errorCode: string | undefined
  generation: string | undefined
  protocol: string | undefined
  retryAfter: string | undefined
  body: Uint8Array
}

/**
 * readValue decodes a 200 answer and has `accept` check its value: only then
 * is it a success for the peer's breaker. An answer that is no GetResponse,
 * or whose value this node cannot decode, is the peer's failure: one peer
 * sending bad bytes must cost callers a local load, not an error.
 */
function readValue(peer: string, res: RawAnswer, accept: ((value: Uint8Array) => void) | undefined): PeerValue {
  let msg: GetResponse
  try {
    msg = decodeGetResponse(res.body)
  } catch (err) {
    res.breaker.failure('a malformed answer')
    throw new PeerError(peer, `peer ${peer} sent a malformed answer: ${errorMessage(err)}`, { cause: err, status: 200 })
  }
  try {
    accept?.(msg.value)
  } catch (err) {
    const why = `a value this node cannot decode: ${errorMessage(err)}`
    res.breaker.failure(why)
    throw new PeerError(peer, `peer ${peer} sent ${why}`, { cause: err, status: 200 })
  }
  res.breaker.success()
  return {
    value: msg.value,
    expire: msg.expire ?? 0,
    staleUntil: msg.staleUntil ?? 0,
    generation: parseGeneration(res.generation) ?? 0,
    minuteQps: msg.minuteQps,
    // The answer's own memory: read from the socket for this exchange alone.
    fresh: true,
  }
}

/**
 * MIN_RETRY_MS is the shortest pause before asking an overloaded peer
 * again, whatever its Retry-After says.
 */
const MIN_RETRY_MS = 50

/**
 * retryDelay turns a Retry-After (delta-seconds; anything else counts as 1)
 * into a pause with "equal jitter": between half and all of it, so that the
 * askers a peer refused at once do not all come back at once.
 */
function retryDelay(retryAfter: string | undefined, random: number): number {
  const seconds = retryAfter !== undefined && /^[0-9]{1,6}$/.test(retryAfter) ? Number(retryAfter) : 1
  const base = Math.max(MIN_RETRY_MS, seconds * 1000)
  return base / 2 + (random * base) / 2
}

/** pause waits `ms`, or rejects with AbortedError when `signal` aborts first. */
function pause(ms: number, signal: AbortSource | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(new AbortedError(signal.reason))
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(new AbortedError(signal?.reason))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort)
  })
}

/**
 * lowerCased names a tracer's headers in lower case, as ours are, so that
 * ours replace any of the same name (`Authorization` included): a tracer
 * can add headers but never change the secret or the generation.
 */
function lowerCased(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = value
  return out
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

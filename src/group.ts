import { MAX_BATCH_KEYS } from './batch.js'
import { allAborted, Batcher, type BatchTiming, shareSignal } from './batcher.js'
import { Cache, type CacheKind, type CacheStats, Entry, isStale, NotFoundEntry } from './cache.js'
import { type Codec, type CodecName, encodeValue, type Frozen, type ResolvedCodec, resolveCodec } from './codec.js'
import { withDeadline } from './deadlines.js'
import {
  type FetchManyMessage,
  type FetchMessage,
  fetchManyTracing,
  fetchTracing,
  type GetMessage,
  getTracing,
  type LoadEvent,
  loadChannel,
  loadTracing,
  type PeerEvent,
  peerChannel,
  runTraced,
  type ServeMessage,
  serveManyTracing,
  serveTracing,
} from './diagnostics.js'
import {
  AbortedError,
  ClosedError,
  CodecError,
  errorMessage,
  GroupcacheError,
  InvalidKeyError,
  InvalidOptionError,
  LoadError,
  LoadTimeoutError,
  NotFoundError,
  OverloadedError,
  PeerError,
  TooLargeError,
  UnreachablePeersError,
} from './errors.js'
import { type AbortSource, Flight, type FlightCall, type FlightFn } from './flight.js'
import { encodeHandoff, type HandoffEntry, MAX_HANDOFF_AGE_MS, MAX_HANDOFF_BODY_BYTES, RecentChanges, recordBytes } from './handoff.js'
import { acceptGeneration } from './protocol.js'
import { Rate } from './rate.js'
import { type GroupStats, newGroupStats } from './stats.js'

/**
 * DEFAULT_HOT_PROMOTION is the chance that a value fetched from an owner
 * that reports no rate (a Go node) is kept as a hot copy: 1 in 10, as in
 * Go. Enough to take a hot key's load off its owner without filling every
 * node with copies of everything. Owners of ours report each key's rate, and
 * copies are then kept by rate instead (see `promote`).
 */
export const DEFAULT_HOT_PROMOTION = 0.1

/**
 * DEFAULT_MAX_ENTRY_FRACTION: by default one entry may take at most an
 * eighth of `maxBytes`; a larger value is returned but not stored, so one
 * huge value cannot flush the whole cache.
 */
export const DEFAULT_MAX_ENTRY_FRACTION = 8

/**
 * DEFAULT_MAX_PEER_LOADS caps the loads that requests from peers may run at
 * once in one group. The peer endpoint often shares the app's public port: a
 * flood of distinct keys must meet a 503, not a stampede on the database.
 * Requests that join a load already running, and this node's own gets, are
 * not counted.
 */
export const DEFAULT_MAX_PEER_LOADS = 64

/**
 * DEFAULT_REFRESH_RETRY_MS spaces the attempts to refresh a stale value whose
 * refresh failed: at most one loader call per key per second at first, so
 * that a database that is down is not hammered by every get of a hot key.
 */
export const DEFAULT_REFRESH_RETRY_MS = 1_000

/**
 * MAX_REFRESH_RETRY_MS caps the doubling of `refreshRetryMs` after failed
 * refreshes in a row (unless `refreshRetryMs` itself is larger): a value
 * stale for long is still tried every 30 s.
 */
export const MAX_REFRESH_RETRY_MS = 30_000

/**
 * DEFAULT_BATCH_WINDOW_MS is 0: a single `get` asks its owner at once. A
 * window makes concurrent gets for one owner wait that long to share one
 * batch request; see `batchWindowMs` in README for when it pays.
 */
export const DEFAULT_BATCH_WINDOW_MS = 0

/**
 * LoadContext is what a loader gets besides the key. `signal` aborts only
 * when every caller waiting for this load has given up.
 */
export interface LoadContext {
  readonly group: string
  readonly signal: AbortSignal
  /**
   * ttlMs, when the loader sets it, is how long this value lives (in ms,
   * `Infinity` for ever), overriding the group's `ttlMs`: a loader can pick
   * a TTL after seeing the value.
   */
  ttlMs?: number | undefined
  /**
   * staleMs, when the loader sets it, is how long this value may still be
   * served past its TTL while it is refreshed (in ms, `Infinity` for ever),
   * overriding the group's `staleMs`.
   */
  staleMs?: number
  /**
   * cache, when the loader sets it to false, answers the callers waiting for
   * this load (here and on peers) without storing the value anywhere: for a
   * result worth sharing with them but not with later callers.
   */
  cache?: boolean | undefined
}

/**
 * Source says where a value came from: this node's caches (`hit`), a load
 * run or joined on this node (`load`), or the key's owner (`peer`); or that
 * it is past its TTL and served from its `staleMs` window while one refresh
 * runs for the cluster (`stale`).
 */
export type Source = 'hit' | 'load' | 'peer' | 'stale'

/** Sourced is a value with where it came from, as `getWithSource` returns. */
export interface Sourced<T> {
  value: T
  source: Source
}

/**
 * Loader produces the value for a key on the node that owns it. Throw
 * NotFoundError to say the key does not exist; any other error is a failed
 * load. Neither is cached.
 */
export type Loader<T> = (key: string, ctx: LoadContext) => T | Promise<T>

/**
 * BatchLoader produces the values of several keys at once on their owner, as
 * one `WHERE id IN (...)` query would: a Map (or an iterable of `[key,
 * value]` pairs) of the keys it found. A key missing from it is not found
 * (NotFoundError); a throw fails every key of the call. `ctx.ttlMs` and
 * `ctx.cache` apply to every key of the call.
 */
export type BatchLoader<T> = (
  keys: readonly string[],
  ctx: LoadContext,
) => ReadonlyMap<string, T> | Iterable<readonly [string, T]> | Promise<ReadonlyMap<string, T> | Iterable<readonly [string, T]>>

/**
 * Promote decides whether a value fetched from its owner is kept as a hot
 * copy on this node. `true` keeps every one, `false` none. A function gets
 * the key, the value's size in bytes and the rate its owner reported
 * (`minuteQps`: peers' requests per second for the key over about the last
 * minute; undefined from Go owners).
 */
export type Promote = boolean | ((key: string, bytes: number, minuteQps: number | undefined) => boolean)

/** GroupOptions configure one group; see README's options table. */
export interface GroupOptions<T> {
  /** name identifies the group on every node; it travels in peer URLs. */
  name: string
  /** maxBytes bounds main + hot cache together (key + value bytes + ENTRY_OVERHEAD_BYTES per entry + kept decoded values); 0 caches nothing. */
  maxBytes: number
  /** load produces a value on the key's owner. Required unless `loadMany` is given. */
  load?: Loader<T> | undefined
  /**
   * loadMany produces several values at once on their owner: misses that
   * arrive together (a `getMany`, a peer's batch, gets in the same tick) are
   * loaded with one call of at most 1000 keys (`MAX_BATCH_KEYS`). A lone miss
   * uses `load` when there is one.
   */
  loadMany?: BatchLoader<T> | undefined
  /**
   * notFoundTtlMs, when set, is how long the owner remembers that a key was
   * not found (NotFoundError): it answers gets and peers with that verdict
   * without loading again. Remembered verdicts count in `maxBytes`.
   */
  notFoundTtlMs?: number | undefined
  /**
   * batchWindowMs, when above 0, makes a `get` that must ask the key's owner
   * wait that long for other gets to the same owner, to share one batch
   * request with them (default 0: ask at once).
   */
  batchWindowMs?: number | undefined
  /** codec turns values into bytes: 'msgpack' (default), 'json', 'string', 'bytes' or your own. */
  codec?: CodecName | Codec<T> | undefined
  /**
   * promote decides which peer-fetched values become hot copies. Default: by
   * the rate the owner reports, keeping copies of the keys asked for most in
   * at most an eighth of what the main cache holds; from an owner that
   * reports none (Go), 1 in 10 at random, as Go does.
   */
  promote?: Promote | undefined
  /** maxEntryBytes is the largest entry stored (default: maxBytes / 8). */
  maxEntryBytes?: number | undefined
  /** maxPeerLoads caps the loads that peers' requests may run at once (default 64). */
  maxPeerLoads?: number | undefined
  /** ttlMs is how long a loaded value lives, on its owner and in hot copies (default: until evicted). */
  ttlMs?: number | undefined
  /**
   * staleMs is how long a value past its `ttlMs` may still be served while
   * one refresh runs for the whole cluster, on the key's owner; and, if that
   * refresh fails, still served (stale-if-error). Default 0: none.
   */
  staleMs?: number | undefined
  /**
   * refreshRetryMs is the least time between two refreshes of a stale value
   * after one failed, doubling with each failure in a row up to 30 s
   * (default 1000).
   */
  refreshRetryMs?: number | undefined
  /**
   * loadTimeoutMs, when set, gives up a load (`load`, `loadMany`, a refresh,
   * a load for a peer) that has not settled after that long: its
   * `ctx.signal` aborts, its callers (here and on peers) reject with
   * LoadTimeoutError, and what it returns later is dropped. Default: none,
   * as in Go.
   */
  loadTimeoutMs?: number | undefined
}

/** SetOptions are per-call options of `group.set`. */
export interface SetOptions {
  /** ttlMs is how long the value lives (default: the group's `ttlMs`). */
  ttlMs?: number | undefined
  /** staleMs is how long it may be served stale after that (default: the group's `staleMs`). */
  staleMs?: number | undefined
}

/** GetOptions are per-call options of `group.get`. */
export interface GetOptions {
  /** signal lets this caller give up; the shared load goes on for the others. */
  signal?: AbortSignal | undefined
}

// What a group needs from the other nodes, and what it offers them, is
// declared here, beside the group, as Go keeps ProtoGetter and PeerPicker in
// peers.go: group.ts knows no ring, no HTTP client and no HTTP server.

/**
 * PeerValue is an owner's answer: the value's bytes, its absolute expiry in
 * unix ms (0 for none), the end of its stale window (0 for none; absent from
 * transports that predate it) and the generation its load began in (0 from
 * Go peers and before any `clear()`).
 */
export interface PeerValue {
  value: Uint8Array
  expire: number
  staleUntil?: number | undefined
  generation: number
  /** minuteQps is the key's rate as the owner reported it (GetResponse field 2); undefined from Go peers. */
  minuteQps?: number | undefined
  /**
   * fresh, when true, says that nothing else holds or reuses `value`'s
   * memory (the default transport's answers): the one caller of a fetch may
   * have it as its own copy.
   */
  fresh?: boolean | undefined
}

/**
 * GroupPeers is what a group needs from the other nodes (Go's PeerPicker
 * and ProtoGetter): who owns a key, and the requests that reach a peer.
 * `Peers` (peers.ts) is the one implementation.
 */
export interface GroupPeers {
  /** self is this node's URL, as it appears in `list`. */
  readonly self: string
  /** list is every node, this one included. */
  readonly list: readonly string[]
  /** ownerOf returns the peer that owns `key`, or undefined with no peers. */
  ownerOf(key: string): string | undefined
  /**
   * fetch asks the owner. `headers` go along with the request (trace
   * propagation); `refresh` says this node holds a stale copy and asks on
   * behalf of no waiting caller (see REFRESH_HEADER); `accept` checks the
   * value before the answer counts as a success (see ValueCheck).
   * `signal` is the flight's call itself, which makes no AbortSignal unless
   * a transport needs one.
   */
  fetch(
    peer: string,
    group: string,
    key: string,
    signal: AbortSource,
    generation: number,
    headers?: Record<string, string>,
    refresh?: boolean,
    accept?: (value: Uint8Array) => void,
  ): Promise<PeerValue>
  /**
   * fetchMany asks one owner for several keys (one batch request per chunk
   * for our peers, one GET per key for Go's) and answers each key with its
   * value or its error. `headers` go along with each request (trace
   * propagation).
   */
  fetchMany(
    peer: string,
    group: string,
    keys: readonly string[],
    signal: AbortSignal,
    generation: number,
    headers?: Record<string, string>,
  ): Promise<Map<string, PeerValue | Error>>
  remove(peer: string, group: string, key: string): Promise<void>
  set(peer: string, group: string, key: string, value: Uint8Array, expire: number, staleUntil: number): Promise<void>
  clear(peer: string, group: string, generation: number): Promise<void>
  /** peeks is false when peeks are off (`handoffMs: 0`). */
  readonly peeks: boolean
  /** previousOwnerOf names the key's owner before the last ring change, within `handoffMs`, if another node. */
  previousOwnerOf(key: string): string | undefined
  /** nextOwnerOf names the key's owner on the ring without this node. */
  nextOwnerOf(key: string): string | undefined
  /** ownerWithout names the key's owner on the ring without `peer`: who takes its keys when it leaves. */
  ownerWithout(key: string, peer: string): string | undefined
  /**
   * peekMany asks a peer for its cached copies of keys (from memory: it
   * never loads), within the peek deadline; the answer holds the keys it
   * had. It never rejects: a failure is a miss.
   */
  peekMany(peer: string, group: string, keys: readonly string[], generation: number): Promise<Map<string, PeerValue>>
  /** handoff sends a peer a hand-off body (see handoff.ts): entries for it to store. */
  handoff(peer: string, group: string, body: Uint8Array, generation: number, signal: AbortSignal): Promise<void>
}

/**
 * GroupNode is what a group needs from the node it belongs to: its peers,
 * its limits, its state and its seams.
 */
export interface GroupNode {
  readonly peers: GroupPeers
  readonly maxKeyBytes: number
  /** acceptsChanges is false when peers refuse PUT, DELETE and generations (no secret). */
  readonly acceptsChanges: boolean
  /**
   * changeGuardMs is how long a key removed or set here is taken from no
   * other node: CHANGE_GUARD_MS, or `handoffMs` if longer (a previous owner
   * may be peeked at that long).
   */
  readonly changeGuardMs: number
  readonly closed: boolean
  now(): number
  random(): number
}

/** ServedValue is what a group gives the peer endpoint for a peer's request. */
export interface ServedValue {
  bytes: Uint8Array
  /**
   * frame is the GetResponse of the value (value, expire, stale_until) as
   * the cache holds it, written to the peer as it is: a one-byte string
   * (write it as 'latin1') or bytes. Never write to it.
   */
  readonly frame: string | Uint8Array
  expire: number
  staleUntil: number
  generation: number
  /**
   * minuteQps is the rate to report with this answer, sent as GetResponse
   * field 2 after the frame: how often peers ask this node for the key, per
   * second over about the last minute, this request included. A figure of
   * this answer, not of the cached value: it changes with every answer.
   */
  readonly minuteQps?: number | undefined
}

/** ServedOutcome is one key's part of a batch: its value, or why there is none. */
export type ServedOutcome = { value: ServedValue } | { error: unknown }

/**
 * ServedRequest is what a group reads of a peer's request: its signal, and
 * its headers (lower-case names), from which a tracer continues the peer's
 * trace.
 */
export interface ServedRequest {
  readonly signal?: AbortSignal | undefined
  readonly headers: ServeMessage['headers']
}

/**
 * ServedGroup is what the peer endpoint (handler.ts) needs of a group.
 * `serve` reads `request.signal` only when it has to load, so adapters can
 * make the signal lazily: most peer requests are cache hits, and a signal is
 * not free. `refreshWaitMs` (from REFRESH_HEADER, else 0) is how long `serve`
 * may wait for a refresh of a stale value before answering with the stale one.
 * What `serve` can answer from the cache it answers at once, not as a
 * promise (a value, or a throw: a remembered not-found, an overload), so
 * that the endpoint writes a hit with no promise in between.
 */
export interface ServedGroup {
  readonly maxEntryBytes: number
  serve(key: string, request: ServedRequest, generation: number, refreshWaitMs?: number): ServedValue | Promise<ServedValue>
  /** serveMany answers a peer's batch, one outcome per key, in the keys' order. */
  serveMany(keys: readonly string[], request: ServedRequest, generation: number): Promise<ServedOutcome[]>
  removeLocally(key: string): void
  setLocally(key: string, value: Uint8Array, expire: number, staleUntil?: number): void
  clearLocally(generation: number): void
  /** peekLocally answers a peek: the main cache's entry, never a load. */
  peekLocally(key: string, generation: number): ServedValue | undefined
  /**
   * receive stores entries a leaving peer handed over, as if loaded here,
   * and returns how many it kept; false when the sender's generation is
   * older than this node's (its entries predate a clear).
   */
  receive(entries: readonly HandoffEntry[], generation: number): number | false
}

/** served gives the node the group's peer-facing side, kept off the public API. */
export const served: unique symbol = Symbol('groupcache.served')

/** drain lets the node wind a group down on close, kept off the public API. */
export const drain: unique symbol = Symbol('groupcache.drain')

/** handOff lets the node hand a group's entries over on close, kept off the public API. */
export const handOff: unique symbol = Symbol('groupcache.handOff')

/**
 * isTtl accepts a TTL in milliseconds: a positive number, or Infinity for
 * a value that lives until evicted.
 */
export function isTtl(value: unknown): value is number {
  return typeof value === 'number' && value > 0 && !Number.isNaN(value)
}

/**
 * isStaleMs accepts a stale window in milliseconds: 0 or more, or Infinity
 * for a value served stale until a refresh replaces it.
 */
export function isStaleMs(value: unknown): value is number {
  return typeof value === 'number' && value >= 0
}

/**
 * RefreshRetry is what a stale entry remembers of its failed refreshes: how
 * many in a row, and when the next may start.
 */
interface RefreshRetry {
  failures: number
  at: number
}

/**
 * Group is a named keyspace with a loader and a byte budget. Create one with
 * `gc.newGroup`. `get` loads each key at most once across the cluster: on
 * the key's owner, whichever node was asked.
 */
export class Group<T = unknown> {
  readonly name: string
  readonly #node: GroupNode
  readonly #peers: GroupPeers
  readonly #load: Loader<T> | undefined
  readonly #loadMany: BatchLoader<T> | undefined
  readonly #notFoundTtlMs: number | undefined
  // A get that asks its owner: at once (undefined) or in a batch window.
  readonly #window: BatchTiming | undefined
  // Misses to load together with loadMany, and keys to fetch from their owners
  // together (see getMany and batchWindowMs).
  readonly #loads = new Batcher<LoadItem<T>>((items) => this.#loadBatch(items), MAX_BATCH_KEYS)
  readonly #fetches = new Batcher<FetchItem>((items) => this.#fetchBatch(items), Infinity)
  // Peeks at previous owners started together (a getMany, a peer's batch),
  // sent together: one request per previous owner, all answered at once, so
  // that the misses among them still reach loadMany in one call.
  readonly #peeks = new Batcher<PeekItem>((items) => this.#peekBatch(items), MAX_BATCH_KEYS)
  // Keys removed or set here lately: no copy from another node is taken for
  // them (a peek's answer, a hand-off), since it may predate the change.
  readonly #changes: RecentChanges
  readonly #codec: ResolvedCodec
  readonly #cache: Cache
  // A policy given as an option; undefined: by rate (see keepHot).
  readonly #promote: ((key: string, bytes: number, minuteQps: number | undefined) => boolean) | undefined
  readonly #maxEntryBytes: number
  readonly #ttlMs: number | undefined
  readonly #staleMs: number | undefined
  readonly #refreshRetryMs: number
  // Failed refreshes, per stale entry: kept beside the entry, not the key, so
  // that the back-off goes when the entry does (evicted, removed, replaced).
  readonly #retries = new WeakMap<Entry, RefreshRetry>()
  readonly #maxPeerLoads: number
  // Undefined: a load may take as long as it takes (no timer at all).
  readonly #loadTimeoutMs: number | undefined
  #peerLoads = 0
  readonly #stats: GroupStats = newGroupStats()
  // Two flights, so that a load that may wait on a peer never blocks one that
  // must not: peer requests and the owner's own gets share `#local`, which
  // only ever runs the loader; `#remote` fetches from the owner and may fall
  // back to `#local`, never the other way round. With one flight, two nodes
  // whose rings disagree could each wait on the other's fetch until timeout.
  readonly #local = new Flight<Entry>()
  readonly #remote = new Flight<Entry>()
  // The generation rises with every `clear()`. Clearing by scanning would race
  // with loads in flight, which would store what they read before the clear;
  // a new generation forgets those loads, so nothing older is stored again.
  // It is taken from the clock (see `clear`), so that generations from peers
  // can be bounded by it and no forged one can wedge the next `clear()`.
  #generation = 0

  constructor(options: GroupOptions<T>, node: GroupNode) {
    this.name = options.name
    this.#node = node
    this.#peers = node.peers
    this.#changes = new RecentChanges(node.changeGuardMs)
    this.#load = options.load
    this.#loadMany = options.loadMany
    this.#notFoundTtlMs = options.notFoundTtlMs
    const window = options.batchWindowMs ?? DEFAULT_BATCH_WINDOW_MS
    this.#window = window > 0 ? window : undefined
    this.#codec = resolveCodec(options.codec as CodecName | Codec<unknown> | undefined, 'options.codec')
    this.#cache = new Cache(options.maxBytes)
    this.#maxEntryBytes = options.maxEntryBytes ?? Math.floor(options.maxBytes / DEFAULT_MAX_ENTRY_FRACTION)
    this.#ttlMs = options.ttlMs
    this.#staleMs = options.staleMs
    this.#refreshRetryMs = options.refreshRetryMs ?? DEFAULT_REFRESH_RETRY_MS
    this.#maxPeerLoads = options.maxPeerLoads ?? DEFAULT_MAX_PEER_LOADS
    this.#loadTimeoutMs = options.loadTimeoutMs
    const promote = options.promote
    this.#promote = typeof promote === 'function' ? promote : promote === true ? () => true : promote === false ? () => false : undefined
  }

  /** stats is a snapshot of the group's counters (Go's names). */
  get stats(): GroupStats {
    return { ...this.#stats }
  }

  /**
   * generation is 0 until this node sees a `clear()` of this group, then the
   * latest clear's generation: its time in unix ms, or one more than the
   * generation before it if that is later.
   */
  get generation(): number {
    return this.#generation
  }

  /** cacheStats is a snapshot of the main or the hot cache's counters. */
  cacheStats(kind: CacheKind): CacheStats {
    if (kind !== 'main' && kind !== 'hot') {
      throw InvalidOptionError.expected('kind', "'main' or 'hot'", kind)
    }
    return this.#cache.stats(kind)
  }

  /**
   * get returns the value for `key`: from this node's caches, else from the
   * key's owner (which loads it once for the whole cluster), else, if the
   * owner cannot be reached, by loading it here. The value is what the codec
   * decodes from the stored bytes; plain objects and arrays are deep-frozen
   * and shared between callers, binary data is a fresh copy per caller.
   * Hence the `Frozen<T>` type: what every caller shares cannot be changed.
   * A value past its `ttlMs` but within its `staleMs` is returned at once,
   * and one refresh runs for the whole cluster, on the key's owner. A hit on
   * a shared value returns the same resolved promise (of a frozen value) to every
   * caller, so that a hit costs about a lookup.
   */
  get(key: string, options?: GetOptions): Promise<Frozen<T>> {
    // Not an async function: a hit returns the entry's shared promise, with
    // no promise of its own and no hop; every throw becomes a rejection.
    try {
      if (getTracing.hasSubscribers) return this.#tracedGet(key, options).then(valueOfSourced)
      const hit = this.#lookup(key)
      if (hit === undefined) return this.#miss(key, options).then(this.#decode)
      return (hit.shared as Promise<Frozen<T>> | undefined) ?? Promise.resolve(this.#valueOf(hit))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** decode is `valueOf` as a callback made once, so that a miss makes no closure for it. */
  readonly #decode = (entry: Entry): Frozen<T> => this.#valueOf(entry)

  /**
   * getWithSource is `get` that also says where the value came from: this
   * node's caches (`hit`), a load here (`load`), or the key's owner (`peer`);
   * or `stale`: past its TTL, served while it is refreshed.
   */
  async getWithSource(key: string, options?: GetOptions): Promise<Sourced<Frozen<T>>> {
    if (getTracing.hasSubscribers) return this.#tracedGet(key, options)
    const hit = this.#lookup(key)
    if (hit !== undefined) return { value: this.#valueOf(hit), source: this.#isStale(hit) ? 'stale' : 'hit' }
    const entry = await this.#miss(key, options)
    return { value: this.#valueOf(entry), source: this.#isStale(entry) ? 'stale' : entry.origin }
  }

  /**
   * getMany returns the values of many keys at once: a Map of every key found,
   * in the order given (duplicates are fine). A key whose loader said not
   * found is left out; any other failure rejects with that key's error (its
   * `key` says which). Hits are answered here; the misses are grouped by
   * owner and fetched with one batch request per owner (at most 1000 keys
   * each; one GET per key from Go peers), and the owner loads the misses that
   * arrive together with one `loadMany` call. A key already loading is
   * joined, never loaded twice.
   */
  async getMany(keys: Iterable<string>, options?: GetOptions): Promise<Map<string, Frozen<T>>> {
    this.#checkOpen()
    if (typeof keys !== 'object' || keys === null || typeof (keys as Partial<Iterable<string>>)[Symbol.iterator] !== 'function') {
      throw new InvalidKeyError(`expected keys to be an array or another iterable of strings, got ${keys === null ? 'null' : typeof keys}`)
    }
    const unique = [...new Set(keys)]
    for (const key of unique) {
      this.#checkKey(key)
      this.#checkSendable(key)
    }
    const entries = new Map<string, Entry>()
    const misses: string[] = []
    for (const key of unique) {
      const hit = this.#lookup(key)
      if (hit !== undefined) entries.set(key, hit)
      else misses.push(key)
    }
    if (misses.length > 0) {
      const shared = shareSignal(options?.signal)
      try {
        const each = shared.signal === undefined ? undefined : { signal: shared.signal }
        await settleMany(
          misses.map((key) => [key, this.#miss(key, each, 'microtask')]),
          entries,
        )
      } finally {
        shared.release()
      }
    }
    const found = new Map<string, Frozen<T>>()
    for (const key of unique) {
      const entry = entries.get(key)
      if (entry === undefined || entry instanceof NotFoundEntry) continue
      try {
        found.set(key, this.#valueOf(entry))
      } catch (err) {
        throw withKey(err, key)
      }
    }
    return found
  }

  /**
   * tracedGet is `getWithSource` under the `groupcache:get` tracing channel,
   * which also hears whether a hit was a hot copy and who owns a missed key.
   */
  #tracedGet(key: string, options: GetOptions | undefined): Promise<Sourced<Frozen<T>>> {
    const message: GetMessage = { self: this.#peers.self, group: this.name, key }
    return runTraced(getTracing, message, async (): Promise<Sourced<Frozen<T>>> => {
      const hit = this.#lookup(key)
      if (hit === undefined) message.owner = this.#peers.ownerOf(key) ?? this.#peers.self
      const entry = hit ?? (await this.#miss(key, options))
      const source: Source = this.#isStale(entry) ? 'stale' : hit === undefined ? entry.origin : 'hit'
      // Only hot copies come from peers among the entries of this node's caches.
      message.source = source === 'hit' && hit?.origin === 'peer' ? 'hot' : source
      return { value: this.#valueOf(entry), source }
    })
  }

  /**
   * lookup checks a get and answers it from the caches, if it can. A stale
   * answer starts its refresh.
   */
  #lookup(key: string): Entry | undefined {
    const node = this.#node
    if (node.closed) throw new ClosedError()
    this.#checkKey(key)
    const stats = this.#stats
    stats.gets++
    // The clock is read only for an entry that can expire.
    const cached = this.#cache.get(key, node.now)
    if (cached === undefined) return undefined
    stats.cacheHits++
    if (cached.expire !== 0) {
      const now = node.now()
      if (cached.expire <= now) {
        stats.staleHits++
        this.#refresh(key, cached, now, false)
      }
    }
    // A hot copy kept by rate counts its hits here, so that one this node
    // keeps asking for stays hotter than the copies it no longer needs.
    if (cached.origin === 'peer' && cached.rate !== undefined) cached.rate.add(node.now())
    return cached
  }

  /** isStale is `isStale` at this moment, reading the clock only for an entry that can expire. */
  #isStale(entry: Entry): boolean {
    return entry.expire !== 0 && isStale(entry, this.#node.now())
  }

  /** miss loads a key that is not cached here: on this node if it owns it, else from its owner. */
  #miss(key: string, options: GetOptions | undefined, batch: BatchTiming | undefined = this.#window): Promise<Entry> {
    this.#checkSendable(key)
    this.#stats.loads++
    const peers = this.#peers
    const signal = options?.signal
    const owner = peers.ownerOf(key)
    return owner === undefined || owner === peers.self
      ? this.#local.do(key, (c) => this.#loadLocally(key, c.signal, c.isCurrent), signal, this.#counted)
      : this.#remote.do(key, (c) => this.#loadFromPeer(owner, key, c, batch), signal, this.#counted)
  }

  /**
   * remove drops `key` everywhere: first on its owner, then on every other
   * node (their hot copies), one request per peer. Once it resolves, no node
   * returns a value whose load began before the call; a load in flight at
   * that moment still answers its waiters but is not stored. Peers that could
   * not be reached are reported, after the others were cleared, by an
   * UnreachablePeersError.
   */
  async remove(key: string): Promise<void> {
    this.#checkOpen()
    this.#checkKey(key)
    this.#checkSendable(key)
    this.#checkChanges('remove')
    await this.#everywhere(
      key,
      (peer) => this.#peers.remove(peer, this.name, key),
      () => this.#removeLocally(key),
    )
  }

  /**
   * set stores `value` for `key` on its owner (in its main cache) and drops
   * the other nodes' copies, with remove's guarantee: once it resolves, no
   * node returns a value loaded before the call. It costs one request per peer.
   * It takes what `get` returned as well as a fresh `T`.
   */
  async set(key: string, value: T | Frozen<T>, options?: SetOptions): Promise<void> {
    this.#checkOpen()
    this.#checkKey(key)
    this.#checkSendable(key)
    this.#checkChanges('set')
    const ttlMs = options?.ttlMs ?? this.#ttlMs
    if (ttlMs !== undefined && !isTtl(ttlMs)) {
      throw new InvalidOptionError(`expected options.ttlMs to be a positive number of milliseconds, got ${String(ttlMs)}`)
    }
    const staleMs = options?.staleMs ?? this.#staleMs
    if (staleMs !== undefined && !isStaleMs(staleMs)) {
      throw InvalidOptionError.expected('options.staleMs', 'a number of milliseconds, 0 or more', staleMs)
    }
    const bytes = encodeValue(this.#codec, value, `the value of ${JSON.stringify(key)} in group ${this.name}`)
    const size = bytes.length + Buffer.byteLength(key)
    if (size > this.#maxEntryBytes) {
      throw new TooLargeError(`the entry for ${JSON.stringify(key)} takes ${size} bytes; this group stores at most ${this.#maxEntryBytes}`)
    }
    const expire = this.#expiry(ttlMs)
    const staleUntil = staleEnd(expire, staleMs)
    await this.#everywhere(
      key,
      (peer, owner) =>
        peer === owner ? this.#peers.set(peer, this.name, key, bytes, expire, staleUntil) : this.#peers.remove(peer, this.name, key),
      (owner) => (owner ? this.#setLocally(key, bytes, expire, staleUntil) : this.#removeLocally(key)),
    )
  }

  /**
   * clear drops every entry of the group on every node, by moving the whole
   * cluster to a new generation: once it resolves, no node serves an entry
   * from an older one, and loads in flight are not stored. It costs one
   * request per peer; a node that missed it catches up on its next exchange
   * with a peer that did not.
   */
  async clear(): Promise<void> {
    this.#checkOpen()
    this.#checkChanges('clear')
    // From the clock, so that peers can refuse generations far beyond it.
    const generation = Math.max(this.#generation + 1, Math.floor(this.#node.now()))
    this.#clearLocally(generation)
    const peers = this.#peers
    const failures = await settle(
      peers.list.filter((peer) => peer !== peers.self),
      (peer) => peers.clear(peer, this.name, generation),
    )
    if (failures.length > 0) throw new UnreachablePeersError(`clearing group ${this.name}`, failures)
  }

  /**
   * everywhere runs a change on the key's owner first, then on every other
   * node at once. The order matters: once the owner has forgotten the key, a
   * node that asks for it again gets a fresh load, never the old value.
   */
  async #everywhere(key: string, remote: (peer: string, owner: string) => Promise<void>, local: (isOwner: boolean) => void): Promise<void> {
    const peers = this.#peers
    const owner = peers.ownerOf(key) ?? peers.self
    const run = (peer: string): Promise<void> => {
      if (peer !== peers.self) return remote(peer, owner)
      local(peer === owner)
      return Promise.resolve()
    }
    const failures = await settle([owner], run)
    failures.push(
      ...(await settle(
        peers.list.filter((peer) => peer !== owner),
        run,
      )),
    )
    if (failures.length > 0) throw new UnreachablePeersError(`updating ${JSON.stringify(key)} in group ${this.name}`, failures)
  }

  /** [served] is the group as the peer endpoint sees it. */
  [served](): ServedGroup {
    return {
      maxEntryBytes: this.#maxEntryBytes,
      serve: (key, request, generation, refreshWaitMs = 0) =>
        serveTracing.hasSubscribers
          ? runTraced(serveTracing, { self: this.#peers.self, group: this.name, key, headers: request.headers }, async () =>
              this.#serve(key, request, generation, refreshWaitMs),
            )
          : this.#serve(key, request, generation, refreshWaitMs),
      serveMany: (keys, request, generation) =>
        serveManyTracing.hasSubscribers
          ? runTraced(serveManyTracing, { self: this.#peers.self, group: this.name, keys, headers: request.headers }, async () =>
              this.#serveMany(keys, request, generation),
            )
          : this.#serveMany(keys, request, generation),
      removeLocally: (key) => this.#removeLocally(key),
      setLocally: (key, value, expire, staleUntil) => this.#setLocally(key, value, expire, staleUntil ?? 0, true),
      clearLocally: (generation) => this.#clearLocally(generation),
      peekLocally: (key, generation) => this.#peekLocally(key, generation),
      receive: (entries, generation) => this.#receive(entries, generation),
    }
  }

  /**
   * peekLocally answers a new owner's peek from the main cache only: no
   * load, no hot copy (a hot copy may be older than the owner's), no
   * forwarding; nothing expired (a stale value needs the refresh a load
   * is), and no remembered not-found verdict. A requester that has seen a
   * later `clear()` brings this node up to date first (with a secret),
   * which also drops what it would have answered.
   */
  #peekLocally(key: string, generation: number): ServedValue | undefined {
    if (generation > this.#generation) this.#catchUp(generation)
    const now = this.#node.now()
    const entry = this.#cache.peekMain(key, now)
    if (entry === undefined || entry instanceof NotFoundEntry || !isFresh(entry, now)) return undefined
    return entry
  }

  /**
   * receive stores what a leaving peer handed over, as if loaded here. A
   * sender behind this node's generation is refused whole (its entries may
   * predate a `clear()`); a sender ahead moves this node to its generation
   * first. Some entries are skipped: expired ones, ones too large, and ones
   * this node holds already or is loading (at least as fresh), or removed or
   * set here lately (the hand-off may predate that change), and ones whose
   * bytes the group's codec cannot read. The body lists
   * the sender's most recently used first, so it is stored last to first,
   * keeping that order here.
   */
  #receive(entries: readonly HandoffEntry[], generation: number): number | false {
    if (generation < this.#generation) return false
    if (generation > this.#generation) this.#catchUp(generation)
    if (generation < this.#generation) return false
    const now = this.#node.now()
    let kept = 0
    for (let i = entries.length - 1; i >= 0; i--) {
      const { key, value, expire, staleUntil } = entries[i] as HandoffEntry
      if (expire !== 0 && expire <= now) continue
      if (value.length + Buffer.byteLength(key) > this.#maxEntryBytes) continue
      if (this.#changes.has(key, now) || this.#local.has(key) || this.#cache.peekMain(key, now) !== undefined) continue
      const entry = new Entry(value, expire, this.#generation, 'load', staleUntil ?? 0)
      // Bytes this node cannot read are left out, never kept to fail every get of the key.
      if (this.#codec.decodesAnything !== true) {
        try {
          this.#valueOf(entry)
        } catch {
          continue
        }
      }
      this.#cache.hot.remove(key)
      this.#store('main', key, entry)
      kept++
    }
    this.#stats.handoffsReceived += kept
    return kept
  }

  /**
   * [handOff] sends this node's main-cache entries, most recently used first
   * and at most `maxBytes` of them, to the node that owns each key once
   * this one is gone, before `signal` aborts and at most MAX_HANDOFF_AGE_MS
   * after its snapshot (a receiver remembers changes that long). Expired
   * entries and not-found verdicts stay behind. Failures are not reported:
   * whatever did not arrive is loaded again.
   */
  async [handOff](maxBytes: number, signal: AbortSignal): Promise<void> {
    const peers = this.#peers
    const now = this.#node.now()
    const taken = performance.now()
    const generation = this.#generation
    const batches = new Map<string, HandoffEntry[][]>()
    const sizes = new Map<string, number>()
    let spent = 0
    for (const [key, entry] of this.#cache.main.entries()) {
      if (entry instanceof NotFoundEntry || !isFresh(entry, now)) continue
      const record: HandoffEntry = { key, value: entry.bytes, expire: entry.expire, staleUntil: entry.staleUntil }
      const size = recordBytes(record)
      if (spent + size > maxBytes) break
      const heir = peers.nextOwnerOf(key)
      if (heir === undefined || heir === peers.self) continue
      spent += size
      let chunks = batches.get(heir)
      if (chunks === undefined) {
        chunks = [[]]
        batches.set(heir, chunks)
      }
      let filled = sizes.get(heir) ?? 0
      if (filled + size > MAX_HANDOFF_BODY_BYTES && (chunks.at(-1) as HandoffEntry[]).length > 0) {
        chunks.push([])
        filled = 0
      }
      ;(chunks.at(-1) as HandoffEntry[]).push(record)
      sizes.set(heir, filled + size)
    }
    await Promise.all(
      [...batches].map(async ([heir, chunks]) => {
        for (const chunk of chunks) {
          if (signal.aborted || performance.now() - taken > MAX_HANDOFF_AGE_MS) return
          try {
            await peers.handoff(heir, this.name, encodeHandoff(chunk), generation, signal)
            this.#stats.handoffsSent += chunk.length
          } catch {
            return
          }
        }
      }),
    )
  }

  /**
   * serve answers a peer's request: from the caches or by loading locally,
   * never by asking another peer. Forwarding is what lets Go nodes with
   * disagreeing peer lists bounce a key between them forever. A requester
   * that has seen a later `clear()` brings this node up to date first.
   * A stale value is answered at once and refreshed here; a requester that
   * holds a stale copy itself (`refreshWaitMs` > 0) is answered when that
   * refresh ends instead, for up to `refreshWaitMs`. An answer from the
   * cache comes at once; only a load, or a wait for a refresh, is a promise.
   */
  #serve(key: string, request: ServedRequest, generation: number, refreshWaitMs: number): Entry | Promise<Entry> {
    if (generation > this.#generation) this.#catchUp(generation)
    const stats = this.#stats
    stats.serverRequests++
    stats.gets++
    const now = this.#node.now()
    const cached = this.#cache.get(key, now)
    if (cached !== undefined) {
      stats.cacheHits++
      if (cached instanceof NotFoundEntry) throw notFound(cached)
      this.#countServed(cached, now)
      if (cached.expire === 0 || cached.expire > now) return cached
      stats.staleHits++
      this.#refresh(key, cached, now, true)
      if (refreshWaitMs > 0 && this.#local.has(key)) return this.#awaitRefresh(key, cached, request, refreshWaitMs)
      return cached
    }
    stats.loads++
    if (!this.#local.has(key) && this.#peerLoads >= this.#maxPeerLoads) {
      throw new OverloadedError(`group ${this.name} is already running ${this.#maxPeerLoads} loads for peers`)
    }
    return this.#local.do(key, (c) => this.#loadForPeer(key, c.signal, c.isCurrent), request.signal, this.#counted, true).then(this.#served)
  }

  /**
   * countServed counts a peer's request for a key, so that the answer can
   * report the key's rate (`minuteQps`) and non-owners keep hot copies of
   * the keys asked for most. The Rate lives in the entry and is counted in
   * its cost from the first peer request on; this node's own gets are not
   * counted, so a hit here costs nothing more.
   */
  #countServed(entry: Entry, now: number): void {
    let rate = entry.rate
    if (rate === undefined) {
      entry.rate = rate = new Rate(now)
      this.#cache.update(entry)
    }
    rate.add(now)
  }

  /** served counts a load's answer to a peer, as a callback made once. */
  readonly #served = (entry: Entry): Entry => {
    this.#countServed(entry, this.#node.now())
    return entry
  }

  /**
   * serveMany answers a peer's batch: from the caches, by joining loads in
   * flight, or by loading the rest here (never by asking another peer). The
   * new loads keep to `maxPeerLoads`, so that a batch cannot run more loads
   * than that many single requests could: with `loadMany` they are one
   * loader call, which takes one slot; without, they run at most as many at
   * once as there are free slots, and wait for them rather than being
   * refused. Only a batch that finds no free slot has its new loads refused
   * (OverloadedError, which the asker treats as a failed fetch).
   */
  async #serveMany(keys: readonly string[], request: ServedRequest, generation: number): Promise<ServedOutcome[]> {
    if (generation > this.#generation) this.#catchUp(generation)
    const stats = this.#stats
    const now = this.#node.now()
    const out: ServedOutcome[] = new Array<ServedOutcome>(keys.length)
    const joins: number[] = []
    const fresh: number[] = []
    keys.forEach((key, i) => {
      stats.serverRequests++
      stats.gets++
      const cached = this.#cache.get(key, now)
      if (cached !== undefined) {
        stats.cacheHits++
        out[i] = cached instanceof NotFoundEntry ? { error: notFound(cached) } : { value: cached }
        // A stale value is answered as is, and refreshed here, as for one key.
        if (!(cached instanceof NotFoundEntry) && cached.expire !== 0 && cached.expire <= now) {
          stats.staleHits++
          this.#refresh(key, cached, now, true)
        }
        return
      }
      stats.loads++
      if (this.#local.has(key)) joins.push(i)
      else fresh.push(i)
    })
    if (joins.length > 0 || fresh.length > 0) {
      // One listener on the request's signal, however many keys wait.
      const shared = shareSignal(request.signal)
      const each = { signal: shared.signal }
      try {
        await Promise.all([
          ...joins.map((i) => this.#loadInto(out, i, keys[i] as string, each)),
          fresh.length > 0 ? this.#loadFreshForPeer(keys, fresh, out, each) : undefined,
        ])
      } finally {
        shared.release()
      }
    }
    const at = joins.length > 0 || fresh.length > 0 ? this.#node.now() : now
    for (const outcome of out) if ('value' in outcome) this.#countServed(outcome.value as Entry, at)
    return out
  }

  async #loadFreshForPeer(
    keys: readonly string[],
    fresh: readonly number[],
    out: ServedOutcome[],
    request: { readonly signal?: AbortSignal | undefined },
  ): Promise<void> {
    const free = this.#maxPeerLoads - this.#peerLoads
    if (free <= 0) {
      const error = new OverloadedError(`group ${this.name} is already running ${this.#maxPeerLoads} loads for peers`)
      for (const i of fresh) out[i] = { error }
      return
    }
    const width = this.#loadMany === undefined ? Math.min(free, fresh.length) : 1
    let next = 0
    const worker = async (): Promise<void> => {
      this.#peerLoads++
      try {
        if (this.#loadMany !== undefined) {
          // Started in one go, so that they reach loadMany in one call.
          await Promise.all(fresh.map((i) => this.#loadInto(out, i, keys[i] as string, request)))
          return
        }
        while (next < fresh.length) {
          const i = fresh[next++] as number
          await this.#loadInto(out, i, keys[i] as string, request)
        }
      } finally {
        this.#peerLoads--
      }
    }
    await Promise.all(Array.from({ length: width }, worker))
  }

  /**
   * loadInto runs or joins a key's local load for a peer's batch, and keeps
   * its outcome. The load is for a peer, as a single request's is: traced
   * so, and a key this node does not own is peeked at its owner first.
   */
  #loadInto(out: ServedOutcome[], i: number, key: string, request: { readonly signal?: AbortSignal | undefined }): Promise<void> {
    return this.#local
      .do(key, (c) => this.#loadLocally(key, c.signal, c.isCurrent, true), request.signal, this.#counted, true)
      .then(
        (value) => {
          out[i] = { value }
        },
        (error: unknown) => {
          out[i] = { error }
        },
      )
  }

  async #loadForPeer(key: string, signal: AbortSignal, isCurrent: () => boolean, peek: PeekAt = 'moved'): Promise<Entry> {
    this.#peerLoads++
    try {
      return await this.#loadLocally(key, signal, isCurrent, true, peek)
    } finally {
      this.#peerLoads--
    }
  }

  // Stale-while-revalidate. The owner decides: it alone runs the loader to
  // refresh a key, once for the whole cluster; other nodes serve their stale
  // copy and ask the owner, which answers from its own copy and refreshes in
  // the background. A refresh is a flight like a load, so a remove, set or
  // clear forgets it and its value is not kept.

  /**
   * refresh starts the one background refresh of a stale entry, unless one
   * is in flight or the last one failed less than its back-off ago. Where
   * this node answers for the key (it owns it, or `forPeer`: a peer asked,
   * and peer requests are never forwarded) it runs the loader; elsewhere it
   * asks the owner. It never loads locally in place of an unreachable owner,
   * as a miss would: it has a value to serve, and a crowd of nodes loading a
   * key of a dead owner is the stampede stale values are there to avoid.
   */
  #refresh(key: string, stale: Entry, now: number, forPeer: boolean): void {
    const node = this.#node
    const peers = this.#peers
    const owner = forPeer ? peers.self : (peers.ownerOf(key) ?? peers.self)
    const local = owner === peers.self
    const flight = local ? this.#local : this.#remote
    if (flight.has(key)) return
    const retry = this.#retries.get(stale)
    if (retry !== undefined && now < retry.at) return
    // Refreshes for peers count against the cap of loads run for peers.
    if (forPeer && this.#peerLoads >= this.#maxPeerLoads) return
    this.#stats.refreshes++
    const run: FlightFn<Entry> = local ? (c) => this.#reload(key, c.signal, c.isCurrent, forPeer) : (c) => this.#askOwner(owner, key, c)
    flight.do(key, run).then(
      (entry) => {
        // A value not to be kept (`ctx.cache = false`; a route that answered
        // an uncacheable status) or an owner still serving stale is no
        // refresh: keep the stale value, and back off.
        if (entry.expire !== 0 && entry.expire <= node.now()) this.#refreshFailed(stale, local)
      },
      (err: unknown) => {
        if (!(err instanceof NotFoundError) && !(err instanceof AbortedError)) this.#refreshFailed(stale, local)
      },
    )
  }

  /**
   * refreshFailed counts a failed refresh and spaces the next: on the node
   * that runs the loader, `refreshRetryMs` doubling with each failure in a
   * row (to spare a failing database); elsewhere a plain `refreshRetryMs`,
   * since asking the owner costs it a cache hit.
   */
  #refreshFailed(stale: Entry, local: boolean): void {
    this.#stats.refreshErrors++
    const failures = (this.#retries.get(stale)?.failures ?? 0) + 1
    const base = this.#refreshRetryMs
    const delay = local ? Math.min(base * 2 ** (failures - 1), Math.max(base, MAX_REFRESH_RETRY_MS)) : base
    this.#retries.set(stale, { failures, at: this.#node.now() + delay })
  }

  /**
   * reload runs the loader to refresh a key. A not-found verdict drops the
   * stale value: the key no longer exists, which is an answer, not an error.
   * It never peeks at a previous owner: a refresh wants a newer value than
   * the one this node holds, and another node's copy is no newer.
   */
  async #reload(key: string, signal: AbortSignal, isCurrent: () => boolean, forPeer: boolean): Promise<Entry> {
    try {
      return await (forPeer ? this.#loadForPeer(key, signal, isCurrent, 'none') : this.#loadLocally(key, signal, isCurrent, false, 'none'))
    } catch (err) {
      if (err instanceof NotFoundError && isCurrent()) this.#cache.remove(key)
      throw err
    }
  }

  /**
   * askOwner fetches a key this node holds stale from its owner, saying so:
   * the owner answers when its own refresh ends. A fresh answer replaces the
   * stale copy whatever the promotion policy, since the stale copy was kept.
   */
  async #askOwner(owner: string, key: string, call: FlightCall): Promise<Entry> {
    const traced = peerChannel.hasSubscribers ? performance.now() : undefined
    let res: PeerValue
    const check = new ValueCheck(this.#codec, owner, this.name)
    try {
      res = await (fetchTracing.hasSubscribers
        ? this.#tracedFetch(owner, key, call, true, check.accept)
        : this.#peers.fetch(owner, this.name, key, call, this.#generation, undefined, true, check.accept))
      if (!check.done) check.acceptAsPeer(res.value)
      if (traced !== undefined) this.#tracePeer(key, owner, traced, 'ok', undefined)
    } catch (err) {
      if (traced !== undefined) this.#tracePeer(key, owner, traced, err instanceof PeerError ? 'error' : 'verdict', err)
      if (err instanceof PeerError) this.#stats.peerErrors++
      else if (err instanceof NotFoundError && call.isCurrent()) this.#cache.remove(key)
      throw err
    }
    this.#stats.peerLoads++
    if (res.generation > this.#generation) this.#catchUp(res.generation)
    const entry = peerEntry(res)
    check.keepIn(entry)
    const now = this.#node.now()
    if (call.isCurrent() && (entry.expire === 0 || entry.expire > now)) {
      this.#valueOf(entry)
      const minuteQps = reportedRate(res.minuteQps)
      if (minuteQps !== undefined) entry.rate = Rate.of(minuteQps, now)
      this.#cache.remove(key)
      this.#store('hot', key, entry)
    }
    return entry
  }

  /**
   * awaitRefresh answers a peer that holds a stale copy when this node's
   * refresh of the key ends, or after `waitMs`, whichever comes first; with
   * the stale value if the refresh failed or is still running.
   */
  async #awaitRefresh(key: string, stale: Entry, request: { readonly signal?: AbortSignal | undefined }, waitMs: number): Promise<Entry> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<Entry>((resolve) => {
      timer = setTimeout(() => resolve(stale), waitMs)
    })
    // The refresh is in flight (the caller checked): this joins it, and, as
    // a peer, hears its end before this node's own callers.
    const refreshed = this.#local
      .do(key, (c) => this.#loadForPeer(key, c.signal, c.isCurrent, 'none'), request.signal, undefined, true)
      .then(
        (entry) => (entry.expire === 0 || entry.expire > this.#node.now() ? entry : stale),
        (err: unknown) => {
          if (err instanceof NotFoundError || err instanceof AbortedError) throw err
          return stale
        },
      )
    try {
      return await Promise.race([refreshed, late])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * [drain] lets the loads in flight finish for up to `graceMs`, then aborts
   * the rest (their loaders see `ctx.signal` abort), for a graceful close.
   */
  async [drain](graceMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => {
      // Not unref()ed: a process waiting on close() must not exit under it.
      timer = setTimeout(() => resolve('late'), graceMs)
    })
    const outcome = await Promise.race([Promise.all([this.#local.drain(), this.#remote.drain()]), late])
    clearTimeout(timer)
    if (outcome === 'late') {
      // Loaders hear an abort; their callers (peers included) hear now that
      // the node closed, whether or not the loader stops: close()'s grace
      // period bounds their wait too, and a value that arrives later is
      // dropped.
      const reason = new AbortedError('the Groupcache instance closed')
      const closed = new ClosedError(`the Groupcache instance closed before the load ended (grace period ${graceMs} ms)`)
      this.#local.abortAll(reason, closed)
      this.#remote.abortAll(reason, closed)
    }
  }

  #removeLocally(key: string): void {
    this.#changes.note(key, this.#node.now())
    this.#cache.remove(key)
    this.#local.forget(key)
    this.#remote.forget(key)
  }

  /**
   * setLocally stores a set value. A peer's (`fromPeer`) is decoded first:
   * bytes this node cannot read throw a CodecError (the peer gets 400) and
   * change nothing, where kept they would fail every get of the key.
   */
  #setLocally(key: string, bytes: Uint8Array, expire: number, staleUntil: number, fromPeer = false): void {
    const entry = new Entry(bytes, expire, this.#generation, 'load', staleUntil)
    if (fromPeer && this.#codec.decodesAnything !== true) this.#valueOf(entry)
    this.#removeLocally(key)
    const now = this.#node.now()
    if (expire !== 0 && expire <= now && staleUntil <= now) return
    this.#store('main', key, entry)
  }

  #clearLocally(generation: number): void {
    if (generation <= this.#generation) return
    this.#generation = generation
    this.#cache.clear()
    this.#local.forgetAll()
    this.#remote.forgetAll()
  }

  /**
   * catchUp moves to a generation a peer reported, if changes from peers
   * are accepted at all (a secret) and the generation is not beyond the clock.
   */
  #catchUp(generation: number): void {
    const node = this.#node
    if (node.acceptsChanges && acceptGeneration(generation, node.now()) !== undefined) this.#clearLocally(generation)
  }

  /**
   * checkChanges refuses a change that would need other nodes to accept
   * unauthenticated PUTs and DELETEs, which they refuse: better said at once
   * than as one failure per peer.
   */
  #checkChanges(what: string): void {
    const node = this.#node
    if (node.acceptsChanges || node.peers.list.length <= 1) return
    throw new InvalidOptionError(
      `group.${what}() across peers needs options.secret on every node (or options.dangerouslyAllowUnauthenticatedChanges)`,
    )
  }

  readonly #counted = (): void => {
    this.#stats.loadsDeduped++
  }

  #checkOpen(): void {
    if (this.#node.closed) throw new ClosedError()
  }

  #checkKey(key: string): void {
    if (typeof key !== 'string') throw new InvalidKeyError(`expected key to be a string, got ${typeof key}`)
    const max = this.#node.maxKeyBytes
    // A UTF-16 unit is at most 3 UTF-8 bytes: most keys need no byte count.
    if (key.length * 3 > max && Buffer.byteLength(key) > max) {
      throw new InvalidKeyError(`expected key to be at most ${max} bytes in UTF-8, got ${Buffer.byteLength(key)}`)
    }
  }

  /**
   * checkSendable refuses a key with a lone surrogate (half of a UTF-16
   * pair): it has no UTF-8 form, so it cannot be sent to its owner (escaping
   * it for the URL throws a URIError) and would reach peers as U+FFFD, the
   * bytes of another key. It is checked where a key may be loaded, stored
   * or sent, not on a hit: no such key is ever cached, so a hit costs no scan.
   */
  #checkSendable(key: string): void {
    if (!(key as string & { isWellFormed(): boolean }).isWellFormed()) {
      throw new InvalidKeyError('expected key to be well-formed Unicode, got one with a lone surrogate, which has no UTF-8 form')
    }
  }

  /** expiry turns a TTL into an absolute expiry (0: never). */
  #expiry(ttlMs: number | undefined): number {
    return ttlMs === undefined || ttlMs === Infinity ? 0 : this.#node.now() + ttlMs
  }

  /**
   * lookAgain checks the caches from inside a flight. Between a caller's
   * miss and the start of its flight, another flight may have filled the
   * cache and finished; without this check the key would load twice (the
   * race Go's `load()` describes). Only a fresh entry counts: a stale one is
   * what a refresh flight is there to replace.
   */
  #lookAgain(key: string): Entry | undefined {
    const now = this.#node.now()
    const entry = this.#cache.get(key, now)
    if (entry === undefined || (entry.expire !== 0 && entry.expire <= now)) return undefined
    this.#stats.cacheHits++
    if (entry instanceof NotFoundEntry) throw notFound(entry)
    return entry
  }

  /**
   * peekTarget names the node to peek at before loading a key, if any: for
   * a key this node owns, its previous owner if it moved here lately; for a
   * key a peer asked for (`forPeer`) that this node does not own, its owner
   * here: the peer's ring and this node's disagree (one of them has not
   * seen a change yet), and that owner may well hold it; for a key whose
   * owner could not be reached (`heirOf`), the node that owns it once that
   * owner is gone: a node that closed handed its entries there, and the
   * others learn that it left only later (in Kubernetes, once its pod is
   * gone from DNS). Never for a key removed or set here lately, nor with
   * `handoffMs: 0`.
   */
  #peekTarget(key: string, forPeer: boolean, peek: PeekAt): string | undefined {
    const peers = this.#peers
    if (peek === 'none' || !peers.peeks) return undefined
    let target: string | undefined
    if (peek !== 'moved') {
      target = peers.ownerWithout(key, peek.heirOf)
    } else {
      const owner = peers.ownerOf(key)
      target = owner === peers.self ? peers.previousOwnerOf(key) : forPeer ? owner : undefined
    }
    if (target === undefined || target === peers.self || this.#changes.has(key, this.#node.now())) return undefined
    return target
  }

  /**
   * peek asks `target` (see peekTarget) for its cached copy of a key before
   * the loader runs. A copy of an older generation, expired, unreadable, or
   * of a key removed or set here meanwhile is a miss. A hit is kept as if
   * loaded here.
   */
  async #peek(target: string, key: string, isCurrent: () => boolean): Promise<Entry | undefined> {
    const res = await new Promise<PeerValue | undefined>((resolve) => this.#peeks.add({ peer: target, key, resolve }, 'microtask'))
    const now = this.#node.now()
    if (res === undefined || res.generation < this.#generation || (res.expire !== 0 && res.expire <= now) || this.#changes.has(key, now)) {
      this.#stats.peekMisses++
      return undefined
    }
    const entry = new Entry(res.value, res.expire, res.generation, 'load', res.staleUntil ?? 0)
    try {
      // Bytes this node cannot read are a miss, never cached.
      this.#valueOf(entry)
    } catch {
      this.#stats.peekMisses++
      return undefined
    }
    this.#stats.peekHits++
    // The previous owner saw a clear this node missed: catch up (this
    // forgets the current flight, so the value is returned but not kept).
    if (res.generation > this.#generation) this.#catchUp(res.generation)
    if (isCurrent()) this.#store('main', key, entry)
    return entry
  }

  /**
   * peekBatch sends the peeks collected by `peek`: one request per peer,
   * each key answered with its copy or undefined. All are answered at once,
   * when the last peer has answered (or its deadline passed), so that the
   * misses go on together and reach `loadMany` in one call.
   */
  #peekBatch(items: PeekItem[]): void {
    const byPeer = new Map<string, PeekItem[]>()
    for (const item of items) {
      const list = byPeer.get(item.peer)
      if (list === undefined) byPeer.set(item.peer, [item])
      else list.push(item)
    }
    const answers = [...byPeer].map(([peer, list]) =>
      this.#peers
        .peekMany(peer, this.name, [...new Set(list.map((item) => item.key))], this.#generation)
        .catch(() => new Map<string, PeerValue>()),
    )
    void Promise.all(answers).then((found) => {
      let i = 0
      for (const list of byPeer.values()) {
        const copies = found[i++] as Map<string, PeerValue>
        for (const item of list) item.resolve(copies.get(item.key))
      }
    })
  }

  /**
   * loadLocally runs the loader for a key this node answers for. A key that
   * moved lately is first peeked at (see peekTarget; `peek`: 'none' for a
   * refresh), so that a membership change costs no reload.
   */
  async #loadLocally(key: string, signal: AbortSignal, isCurrent: () => boolean, forPeer = false, peek: PeekAt = 'moved'): Promise<Entry> {
    const again = this.#lookAgain(key)
    if (again !== undefined) return again
    // Only a key that moved peeks, so every other load keeps its timing.
    const target = this.#peekTarget(key, forPeer, peek)
    const peeked = target === undefined ? undefined : await this.#peek(target, key, isCurrent)
    if (peeked !== undefined) return peeked
    const stats = this.#stats
    const generation = this.#generation
    const traced = loadChannel.hasSubscribers ? performance.now() : undefined
    // The loader's context; its signal is the flight's, or, under
    // `loadTimeoutMs`, one that also aborts when the load is given up.
    let ctx!: LoadContext
    const start = (loadSignal: AbortSignal): T | Promise<T> => {
      ctx = { group: this.name, signal: loadSignal }
      return loadTracing.hasSubscribers
        ? runTraced(loadTracing, { self: this.#peers.self, group: this.name, key, forPeer }, async () => this.#runLoader(key, ctx))
        : this.#runLoader(key, ctx)
    }
    const timeoutMs = this.#loadTimeoutMs
    let value: T
    let bytes: Uint8Array
    let expire: number
    let staleUntil = 0
    try {
      try {
        value = await (timeoutMs === undefined
          ? start(signal)
          : withDeadline(
              timeoutMs,
              signal,
              () =>
                new LoadTimeoutError(
                  `loading ${JSON.stringify(key)} in group ${this.name} took longer than loadTimeoutMs (${timeoutMs} ms): given up`,
                ),
              start,
            ))
      } catch (err) {
        if (err instanceof GroupcacheError && err.code !== 'ERR_GROUPCACHE_ABORTED') throw err
        throw new LoadError(`loading ${JSON.stringify(key)} in group ${this.name} failed: ${errorMessage(err)}`, {
          cause: err,
        })
      }
      const ttlMs = ctx.ttlMs ?? this.#ttlMs
      if (ttlMs !== undefined && !isTtl(ttlMs)) {
        throw new LoadError(`expected ctx.ttlMs to be a positive number of milliseconds, got ${String(ttlMs)}`)
      }
      const staleMs = ctx.staleMs ?? this.#staleMs
      if (staleMs !== undefined && !isStaleMs(staleMs)) {
        throw new LoadError(`expected ctx.staleMs to be a number of milliseconds, 0 or more, got ${String(staleMs)}`)
      }
      bytes = encodeValue(this.#codec, value, `the value of ${JSON.stringify(key)} in group ${this.name}`)
      // A value not to be kept is sent to peers as already expired, so that
      // they do not keep it either.
      if (ctx.cache === false) {
        expire = Math.max(1, this.#node.now())
      } else {
        expire = this.#expiry(ttlMs)
        staleUntil = staleEnd(expire, staleMs)
      }
    } catch (err) {
      stats.localLoadErrs++
      if (traced !== undefined) this.#traceLoad(key, traced, err)
      if (err instanceof NotFoundError && isCurrent()) this.#rememberNotFound(key, err, generation)
      throw err
    }
    stats.localLoads++
    if (traced !== undefined) this.#traceLoad(key, traced, undefined)
    // Every caller left: nobody wants this value; the next get starts afresh.
    if (signal.aborted) throw new AbortedError(signal.reason)
    const entry = new Entry(bytes, expire, generation, 'load', staleUntil)
    // A forgotten flight (a remove, set or clear came while it ran) still
    // answers its callers, but what it read may be stale: keep none of it.
    if (isCurrent() && ctx.cache !== false) this.#store('main', key, entry)
    return entry
  }

  async #loadFromPeer(owner: string, key: string, call: FlightCall, batch: BatchTiming | undefined): Promise<Entry> {
    const again = this.#lookAgain(key)
    if (again !== undefined) return again
    let res: PeerValue
    const traced = peerChannel.hasSubscribers ? performance.now() : undefined
    const check = new ValueCheck(this.#codec, owner, this.name)
    try {
      res =
        batch !== undefined
          ? await new Promise<PeerValue>((resolve, reject) =>
              this.#fetches.add({ owner, key, signal: call.signal, resolve, reject }, batch),
            )
          : await (fetchTracing.hasSubscribers
              ? this.#tracedFetch(owner, key, call, false, check.accept)
              : this.#peers.fetch(owner, this.name, key, call, this.#generation, undefined, false, check.accept))
      // A batch, or a custom transport, did not check the value: check it here.
      if (!check.done) check.acceptAsPeer(res.value)
      if (traced !== undefined) this.#tracePeer(key, owner, traced, 'ok', undefined)
    } catch (err) {
      if (traced !== undefined) this.#tracePeer(key, owner, traced, err instanceof PeerError ? 'error' : 'verdict', err)
      if (!(err instanceof PeerError)) throw err
      // Go's availability rule: an owner that cannot answer does not make
      // the key unavailable; this node loads it instead, unless the node
      // that takes the owner's keys when it is gone has it (a hand-off).
      this.#stats.peerErrors++
      return this.#local.do(key, (c) => this.#loadLocally(key, c.signal, c.isCurrent, false, { heirOf: owner }), call)
    }
    this.#stats.peerLoads++
    // The owner saw a clear this node missed: catch up (this forgets the
    // current flight too, so its value is returned but not kept).
    if (res.generation > this.#generation) this.#catchUp(res.generation)
    // A value the owner serves stale may be kept, for as long as it may be served.
    const now = this.#node.now()
    const staleUntil = res.staleUntil ?? 0
    const usable = res.expire === 0 || res.expire > now || staleUntil > now
    const minuteQps = reportedRate(res.minuteQps)
    const policy = usable && call.isCurrent() ? this.#hotPolicy(key, res.value.length, minuteQps) : undefined
    // An entry no cache keeps lives only while its callers decode it: it may
    // view the answer's bytes, unless a value decoded from them may view
    // them too (a custom immutable codec's), and outlive the flight.
    const entry = policy !== undefined || this.#codec.viewsBytes ? peerEntry(res) : new AnswerEntry(res, call)
    check.keepIn(entry)
    if (policy !== undefined) this.#keepHot(key, entry, minuteQps, now, policy)
    return entry
  }

  /**
   * keepHot decides whether a value fetched from its owner stays here as a
   * hot copy. By default, when the owner reported the key's rate, the cache
   * keeps it if hot copies have room or if it is hotter than the coldest one
   * (`Cache.offerHot`): copies go to the keys asked for most, where a coin
   * flip copies every key asked for often enough, cold ones included. An
   * owner that reports no rate (Go) gets Go's coin flip.
   */
  #keepHot(key: string, entry: Entry, minuteQps: number | undefined, now: number, policy: HotPolicy): void {
    // Decode before keeping a copy, so bytes this node cannot read are
    // reported now and never cached, and the decoded value is counted.
    this.#valueOf(entry)
    if (minuteQps !== undefined) entry.rate = Rate.of(minuteQps, now)
    if (policy === 'rate') this.#cache.offerHot(key, entry, now)
    else this.#cache.add('hot', key, entry)
  }

  /**
   * hotPolicy says how a value of `bytes` bytes fetched from its owner may
   * become a hot copy: offered by its rate (`'rate'`), kept (`'keep'`), or
   * not at all (undefined), before any entry is made for it.
   */
  #hotPolicy(key: string, bytes: number, minuteQps: number | undefined): HotPolicy | undefined {
    const promote = this.#promote
    const byRate = promote === undefined && minuteQps !== undefined
    if (!byRate && !(promote === undefined ? this.#node.random() < DEFAULT_HOT_PROMOTION : promote(key, bytes, minuteQps))) return undefined
    if (bytes + Buffer.byteLength(key) > this.#maxEntryBytes) return undefined
    return byRate ? 'rate' : 'keep'
  }

  /**
   * tracedFetch is the fetch from `owner` under the `groupcache:fetch`
   * tracing channel, sending the headers its subscribers add (`traceparent`).
   */
  #tracedFetch(owner: string, key: string, signal: AbortSource, refresh = false, accept?: (value: Uint8Array) => void): Promise<PeerValue> {
    const message: FetchMessage = { self: this.#peers.self, group: this.name, key, peer: owner, headers: {} }
    return runTraced(fetchTracing, message, async () =>
      this.#peers.fetch(owner, this.name, key, signal, this.#generation, message.headers, refresh, accept),
    )
  }

  /**
   * runLoader produces one key's value: with `load`, or, when the group has
   * `loadMany`, through the batch of misses of this turn of the event loop,
   * so that keys missed together share one loader call.
   */
  #runLoader(key: string, ctx: LoadContext): T | Promise<T> {
    if (this.#loadMany === undefined) return (this.#load as Loader<T>)(key, ctx)
    return new Promise<T>((resolve, reject) => this.#loads.add({ key, ctx, resolve, reject }, 'tick'))
  }

  /** loadBatch runs one loader call per chunk of the misses collected by runLoader. */
  #loadBatch(items: Array<LoadItem<T>>): void {
    for (let i = 0; i < items.length; i += MAX_BATCH_KEYS) void this.#loadChunk(items.slice(i, i + MAX_BATCH_KEYS))
  }

  async #loadChunk(items: Array<LoadItem<T>>): Promise<void> {
    const only = items.length === 1 ? items[0] : undefined
    if (only !== undefined && this.#load !== undefined) {
      try {
        only.resolve(await this.#load(only.key, only.ctx))
      } catch (err) {
        only.reject(err)
      }
      return
    }
    // The call goes on while any of its keys' loads has a caller waiting.
    const { signal, release } = allAborted(items.map((item) => item.ctx.signal))
    const ctx: LoadContext = { group: this.name, signal }
    let found: ReadonlyMap<string, T>
    try {
      const keys = [...new Set(items.map((item) => item.key))]
      const result = await (this.#loadMany as BatchLoader<T>)(keys, ctx)
      if (typeof result !== 'object' || result === null || typeof (result as Partial<Iterable<unknown>>)[Symbol.iterator] !== 'function') {
        throw new LoadError(
          `expected loadMany to return a Map or an iterable of [key, value] pairs, got ${result === null ? 'null' : typeof result}`,
        )
      }
      found = result instanceof Map ? (result as ReadonlyMap<string, T>) : new Map(result as Iterable<readonly [string, T]>)
    } catch (err) {
      for (const item of items) item.reject(err)
      return
    } finally {
      release()
    }
    for (const item of items) {
      if (ctx.ttlMs !== undefined) item.ctx.ttlMs = ctx.ttlMs
      if (ctx.staleMs !== undefined) item.ctx.staleMs = ctx.staleMs
      if (ctx.cache !== undefined) item.ctx.cache = ctx.cache
      if (found.has(item.key)) item.resolve(found.get(item.key) as T)
      else item.reject(new NotFoundError(`${JSON.stringify(item.key)} was not found by loadMany in group ${this.name}`))
    }
  }

  /**
   * fetchBatch sends the keys collected for batched fetches, one request
   * per owner (the transport cuts larger batches into chunks and asks Go
   * peers one key at a time), and hands each key its answer.
   */
  #fetchBatch(items: FetchItem[]): void {
    const byOwner = new Map<string, FetchItem[]>()
    for (const item of items) {
      const list = byOwner.get(item.owner)
      if (list === undefined) byOwner.set(item.owner, [item])
      else list.push(item)
    }
    for (const [owner, list] of byOwner) {
      const keys = [...new Set(list.map((item) => item.key))]
      const { signal, release } = allAborted(list.map((item) => item.signal))
      const fetched = fetchManyTracing.hasSubscribers
        ? this.#tracedFetchMany(owner, keys, signal)
        : this.#peers.fetchMany(owner, this.name, keys, signal, this.#generation)
      const handed = fetched.then(
        (answers) => {
          release()
          for (const item of list) {
            const answer = answers.get(item.key)
            if (answer === undefined) item.reject(new PeerError(owner, `peer ${owner} left ${JSON.stringify(item.key)} out of its answer`))
            else if (answer instanceof Error) item.reject(answer)
            else item.resolve(answer)
          }
        },
        (err: unknown) => {
          release()
          for (const item of list) item.reject(err)
        },
      )
      // An answer that is no Map (a custom transport's) throws above, as an
      // unhandled rejection, which would end the process and leave the keys
      // not yet answered waiting: each gets the error instead (an answered
      // one keeps its answer).
      handed.catch((err: unknown) => {
        for (const item of list) item.reject(err)
      })
    }
  }

  /**
   * tracedFetchMany is one owner's batch fetch under the
   * `groupcache:fetchMany` tracing channel, sending the headers its
   * subscribers add (`traceparent`) and saying, before the end, the worst
   * outcome among its keys.
   */
  #tracedFetchMany(owner: string, keys: readonly string[], signal: AbortSignal): Promise<Map<string, PeerValue | Error>> {
    const message: FetchManyMessage = { self: this.#peers.self, group: this.name, keys, peer: owner, headers: {} }
    return runTraced(fetchManyTracing, message, async () => {
      const answers = await this.#peers.fetchMany(owner, this.name, keys, signal, this.#generation, message.headers)
      let outcome: PeerEvent['outcome'] = 'ok'
      for (const answer of answers.values()) {
        if (answer instanceof PeerError) {
          outcome = 'error'
          break
        }
        if (answer instanceof Error) outcome = 'verdict'
      }
      message.outcome = outcome
      return answers
    })
  }

  /**
   * rememberNotFound keeps a loader's not-found verdict for `notFoundTtlMs`
   * in the main cache, where it takes its key and message bytes of the
   * budget, so that a key that does not exist does not cost a loader call on
   * every get (cache penetration). It goes like any entry: on expiry,
   * eviction, `remove`, `set` and `clear`.
   */
  #rememberNotFound(key: string, err: NotFoundError, generation: number): void {
    const ttlMs = this.#notFoundTtlMs
    if (ttlMs === undefined) return
    const message = Buffer.from(err.message.slice(0, MAX_VERDICT_TEXT))
    this.#store('main', key, new NotFoundEntry(message, this.#expiry(ttlMs), generation, 'load'))
  }

  #traceLoad(key: string, started: number, error: unknown): void {
    const event: LoadEvent = { self: this.#peers.self, group: this.name, key, durationMs: performance.now() - started }
    if (error !== undefined) event.error = error
    loadChannel.publish(event)
  }

  #tracePeer(key: string, peer: string, started: number, outcome: PeerEvent['outcome'], error: unknown): void {
    const event: PeerEvent = { self: this.#peers.self, group: this.name, key, peer, durationMs: performance.now() - started, outcome }
    if (error !== undefined) event.error = error
    peerChannel.publish(event)
  }

  #store(kind: CacheKind, key: string, entry: Entry): void {
    if (entry.byteLength + Buffer.byteLength(key) > this.#maxEntryBytes) return
    this.#cache.add(kind, key, entry)
  }

  /**
   * valueOf decodes an entry for a caller. A value the codec can share
   * (deep-frozen plain data, strings) is decoded once and kept beside the
   * bytes, so a hit costs a lookup, not a decode.
   */
  #valueOf(entry: Entry): Frozen<T> {
    if (entry.decoded) return entry.value as Frozen<T>
    if (entry instanceof NotFoundEntry) throw notFound(entry)
    let value: unknown
    try {
      // A value that may view the bytes it came from must not keep a slice of Buffer's pool.
      value = this.#codec.decode(this.#codec.viewsBytes ? entry.bytes : entry.scratchBytes(), entry.fresh)
    } catch (err) {
      throw new CodecError(`cannot decode a value of group ${this.name}: ${errorMessage(err)}`, { cause: err })
    }
    if (this.#codec.share(value)) {
      entry.keep(value)
      value = entry.value
      // What is kept is counted, and may push older entries out.
      this.#cache.update(entry)
    }
    return value as Frozen<T>
  }
}

/**
 * ValueCheck decodes a value fetched from a peer before the fetch counts as
 * a success: bytes this node's codec cannot read are the peer's failure (a
 * local load follows, the peer's breaker counts it), never the caller's
 * error and never cached. What it decodes is kept for the entry (`keepIn`)
 * when the codec can share it, so that the value is decoded once per fetch,
 * not twice; unless a shared value may view the bytes it came from (a
 * custom immutable codec's): it must view the entry's own bytes then, not
 * the answer's.
 */
class ValueCheck {
  done = false
  readonly accept: (value: Uint8Array) => void
  /** acceptAsPeer is `accept` that throws a PeerError, for a transport that did not call it. */
  readonly acceptAsPeer: (value: Uint8Array) => void
  readonly #codec: ResolvedCodec
  #decoded = false
  #value: unknown

  constructor(codec: ResolvedCodec, owner: string, group: string) {
    this.#codec = codec
    this.accept = (bytes) => {
      this.done = true
      // 'bytes' reads any bytes: nothing to check, and a copy to save.
      if (codec.decodesAnything === true) return
      try {
        const value = codec.decode(bytes)
        if (!codec.viewsBytes) {
          this.#value = value
          this.#decoded = true
        }
      } catch (err) {
        throw new CodecError(`cannot decode a value of group ${group} from ${owner}: ${errorMessage(err)}`, { cause: err })
      }
    }
    this.acceptAsPeer = (bytes) => {
      try {
        this.accept(bytes)
      } catch (err) {
        throw new PeerError(owner, `peer ${owner} sent ${errorMessage(err)}`, { cause: err, status: 200 })
      }
    }
  }

  /** keepIn gives `entry` the value decoded from its bytes, if the codec can share it. */
  keepIn(entry: Entry): void {
    if (!this.#decoded || entry.decoded || !this.#codec.share(this.#value)) return
    entry.keep(this.#value)
  }
}

/**
 * staleEnd is the end of an entry's stale window: `staleMs` past its expiry,
 * 0 for none (no window, or no expiry to be past).
 */
function staleEnd(expire: number, staleMs: number | undefined): number {
  if (expire === 0 || staleMs === undefined || staleMs === 0) return 0
  return staleMs === Infinity ? Number.MAX_SAFE_INTEGER : expire + staleMs
}

/**
 * reportedRate is the rate an owner reported (GetResponse field 2), if it is
 * one: a bad peer's NaN or negative rate counts as none.
 */
function reportedRate(minuteQps: number | undefined): number | undefined {
  return minuteQps !== undefined && minuteQps >= 0 && minuteQps !== Infinity ? minuteQps : undefined
}

/** valueOfSourced is the value of a `Sourced`, for `get` under tracing. */
function valueOfSourced<V>(sourced: Sourced<V>): V {
  return sourced.value
}

/** isFresh says whether an entry is within its TTL (not expired, not stale). */
function isFresh(entry: Entry, now: number): boolean {
  return entry.expire === 0 || entry.expire > now
}

/** HotPolicy is how a fetched value may become a hot copy (see `hotPolicy`). */
type HotPolicy = 'rate' | 'keep'

/** peerEntry is the entry for an owner's answer, with bytes of its own, to keep in a cache. */
function peerEntry(res: PeerValue): Entry {
  return new Entry(res.value, res.expire, res.generation, 'peer', res.staleUntil ?? 0)
}

const NO_BYTES = new Uint8Array(0)

/**
 * AnswerEntry is the entry for an owner's answer that no cache keeps: it
 * views the answer's bytes instead of copying them into bytes of its own,
 * since it lives only while its callers decode it. Each caller's value is
 * decoded from them into memory of its own, as from any entry; except that
 * the one caller of a flight no other caller joined takes a fresh answer's
 * bytes themselves as its copy (the 'bytes' codec then copies nothing):
 * nobody else can read them, since a flight takes no callers once it has
 * ended. Every read of the bytes goes through `value`, whatever an Entry
 * holds its own bytes as.
 */
class AnswerEntry extends Entry {
  readonly #value: Uint8Array
  // The flight, if the answer's bytes may be taken by its one caller.
  readonly #call: FlightCall | undefined
  #taken = false

  constructor(res: PeerValue, call: FlightCall) {
    super(NO_BYTES, res.expire, res.generation, 'peer', res.staleUntil ?? 0)
    this.#value = res.value
    this.#call = res.fresh === true ? call : undefined
  }

  override get byteLength(): number {
    return this.#value.length
  }

  override get bytes(): Uint8Array {
    return this.#value.subarray(0)
  }

  override scratchBytes(): Uint8Array {
    if (this.#taken || this.#call?.joins !== 1) return this.#value.subarray(0)
    this.#taken = true
    return this.#value
  }

  /** fresh is true once the one caller took the bytes themselves. */
  override get fresh(): boolean {
    return this.#taken
  }

  /** copy is an entry with bytes of its own, which a cache may keep. */
  override copy(): Entry {
    const copy = new Entry(this.#value, this.expire, this.generation, this.origin, this.staleUntil)
    copy.value = this.value
    copy.shared = this.shared
    return copy
  }
}

/**
 * settle runs `action` for every peer at once and collects the failures, so
 * that one unreachable peer does not stop the others from being updated.
 */
async function settle(peers: readonly string[], action: (peer: string) => Promise<void>): Promise<Array<{ peer: string; error: unknown }>> {
  const results = await Promise.allSettled(peers.map((peer) => action(peer)))
  const failures: Array<{ peer: string; error: unknown }> = []
  results.forEach((result, i) => {
    if (result.status === 'rejected') failures.push({ peer: peers[i] as string, error: result.reason })
  })
  return failures
}

/** MAX_VERDICT_TEXT bounds the message kept with a remembered not-found verdict. */
const MAX_VERDICT_TEXT = 1024

/** LoadItem is a miss waiting for its batch's `loadMany` call. */
interface LoadItem<T> {
  key: string
  ctx: LoadContext
  resolve: (value: T) => void
  reject: (err: unknown) => void
}

/**
 * PeekAt says whom a load may peek at first: the usual target of a key that
 * moved (`'moved'`), nobody (`'none'`: a refresh wants a newer value), or
 * the heir of an owner that could not be reached.
 */
type PeekAt = 'moved' | 'none' | { heirOf: string }

/** PeekItem is a key waiting to be peeked at on its previous owner, in a batch. */
interface PeekItem {
  peer: string
  key: string
  resolve: (value: PeerValue | undefined) => void
}

/** FetchItem is a key waiting to be asked of its owner in a batch. */
interface FetchItem {
  owner: string
  key: string
  signal: AbortSignal
  resolve: (value: PeerValue) => void
  reject: (err: unknown) => void
}

/** notFound turns a remembered verdict back into the error it remembers. */
function notFound(entry: Entry): NotFoundError {
  return new NotFoundError(Buffer.from(entry.bytes).toString('utf8'))
}

/**
 * withKey says which key of a `getMany` an error belongs to. A caller's own
 * abort and a closed instance belong to no key in particular.
 */
function withKey(err: unknown, key: string): unknown {
  if (err instanceof GroupcacheError && err.key === undefined && !(err instanceof AbortedError) && !(err instanceof ClosedError)) {
    err.key = key
  }
  return err
}

/**
 * settleMany waits for the misses of a `getMany`, keeping each entry, and
 * rejects as soon as one fails for another reason than not found: the
 * caller need not wait for the rest to learn that the whole call failed.
 */
function settleMany(misses: ReadonlyArray<[string, Promise<Entry>]>, entries: Map<string, Entry>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let left = misses.length
    for (const [key, pending] of misses) {
      pending.then(
        (entry) => {
          entries.set(key, entry)
          if (--left === 0) resolve()
        },
        (err: unknown) => {
          if (!(err instanceof NotFoundError)) reject(withKey(err, key))
          else if (--left === 0) resolve()
        },
      )
    }
  })
}

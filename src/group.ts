import { Cache, Entry, type CacheKind, type CacheStats } from './cache.js'
import { encodeValue, resolveCodec, type Codec, type CodecName, type Frozen, type ResolvedCodec } from './codec.js'
import {
  AbortedError,
  ClosedError,
  CodecError,
  GroupcacheError,
  InvalidKeyError,
  InvalidOptionError,
  LoadError,
  OverloadedError,
  PeerError,
  TooLargeError,
  UnreachablePeersError,
  errorMessage,
} from './errors.js'
import {
  fetchTracing,
  getTracing,
  loadChannel,
  loadTracing,
  peerChannel,
  serveTracing,
  runTraced,
  type FetchMessage,
  type GetMessage,
  type LoadEvent,
  type PeerEvent,
  type ServeMessage,
} from './diagnostics.js'
import { Flight } from './flight.js'
import { MAX_HANDOFF_BODY_BYTES, encodeHandoff, recordBytes, type HandoffEntry } from './handoff.js'
import { newGroupStats, type GroupStats } from './stats.js'

/**
 * DEFAULT_HOT_PROMOTION is the chance that a value fetched from its owner is
 * kept as a hot copy: 1 in 10, as in Go. Enough to take a hot key's load off
 * its owner without filling every node with copies of everything.
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
   * cache, when the loader sets it to false, answers the callers waiting for
   * this load (here and on peers) without storing the value anywhere: for a
   * result worth sharing with them but not with later callers.
   */
  cache?: boolean | undefined
}

/**
 * Source says where a value came from: this node's caches (`hit`), a load
 * run or joined on this node (`load`), or the key's owner (`peer`).
 */
export type Source = 'hit' | 'load' | 'peer'

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
 * Promote decides whether a value fetched from its owner is kept as a hot
 * copy on this node. `true` keeps every one, `false` none.
 */
export type Promote = boolean | ((key: string, bytes: number) => boolean)

/** GroupOptions configure one group; see README's options table. */
export interface GroupOptions<T> {
  /** name identifies the group on every node; it travels in peer URLs. */
  name: string
  /** maxBytes bounds main + hot cache together (key + value bytes + ENTRY_OVERHEAD_BYTES per entry + kept decoded values); 0 caches nothing. */
  maxBytes: number
  /** load produces a value on the key's owner. */
  load: Loader<T>
  /** codec turns values into bytes: 'msgpack' (default), 'json', 'string', 'bytes' or your own. */
  codec?: CodecName | Codec<T> | undefined
  /** promote decides which peer-fetched values become hot copies (default: 1 in 10 at random). */
  promote?: Promote | undefined
  /** maxEntryBytes is the largest entry stored (default: maxBytes / 8). */
  maxEntryBytes?: number | undefined
  /** maxPeerLoads caps the loads that peers' requests may run at once (default 64). */
  maxPeerLoads?: number | undefined
  /** ttlMs is how long a loaded value lives, on its owner and in hot copies (default: until evicted). */
  ttlMs?: number | undefined
}

/** SetOptions are per-call options of `group.set`. */
export interface SetOptions {
  /** ttlMs is how long the value lives (default: the group's `ttlMs`). */
  ttlMs?: number | undefined
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
 * unix ms (0 for none) and the generation its load began in (0 from Go peers
 * and before any `clear()`).
 */
export interface PeerValue {
  value: Uint8Array
  expire: number
  generation: number
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
  fetch(peer: string, group: string, key: string, signal: AbortSignal, generation: number, headers?: Record<string, string>): Promise<PeerValue>
  remove(peer: string, group: string, key: string): Promise<void>
  set(peer: string, group: string, key: string, value: Uint8Array, expire: number): Promise<void>
  clear(peer: string, group: string, generation: number): Promise<void>
  /** previousOwnerOf names the key's owner before the last ring change, within `handoffMs`, if another node. */
  previousOwnerOf(key: string): string | undefined
  /** nextOwnerOf names the key's owner on the ring without this node. */
  nextOwnerOf(key: string): string | undefined
  /** peek asks a peer for its cached copy; undefined on a miss or any failure. */
  peek(peer: string, group: string, key: string, generation: number): Promise<PeerValue | undefined>
  handoff(peer: string, group: string, body: Uint8Array, generation: number, signal: AbortSignal): Promise<void>
}

/**
 * GroupNode is what a group needs from the node it belongs to: its peers,
 * its limits, its state and its seams.
 */
export interface GroupNode {
  readonly peers: GroupPeers
  readonly maxKeyBytes: number
  readonly closed: boolean
  now(): number
  random(): number
}

/** ServedValue is what a group gives the peer endpoint for a peer's request. */
export interface ServedValue {
  bytes: Uint8Array
  expire: number
  generation: number
}

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
 * not free.
 */
export interface ServedGroup {
  readonly maxEntryBytes: number
  serve(key: string, request: ServedRequest, generation: number): Promise<ServedValue>
  removeLocally(key: string): void
  setLocally(key: string, value: Uint8Array, expire: number): void
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
 * Group is a named keyspace with a loader and a byte budget. Create one with
 * `gc.newGroup`. `get` loads each key at most once across the cluster: on
 * the key's owner, whichever node was asked.
 */
export class Group<T = unknown> {
  readonly name: string
  readonly #node: GroupNode
  readonly #peers: GroupPeers
  readonly #load: Loader<T>
  readonly #codec: ResolvedCodec
  readonly #cache: Cache
  readonly #promote: (key: string, bytes: number) => boolean
  readonly #maxEntryBytes: number
  readonly #ttlMs: number | undefined
  readonly #maxPeerLoads: number
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
  #generation = 0

  constructor(options: GroupOptions<T>, node: GroupNode) {
    this.name = options.name
    this.#node = node
    this.#peers = node.peers
    this.#load = options.load
    this.#codec = resolveCodec(options.codec as CodecName | Codec<unknown> | undefined, 'options.codec')
    this.#cache = new Cache(options.maxBytes)
    this.#maxEntryBytes = options.maxEntryBytes ?? Math.floor(options.maxBytes / DEFAULT_MAX_ENTRY_FRACTION)
    this.#ttlMs = options.ttlMs
    this.#maxPeerLoads = options.maxPeerLoads ?? DEFAULT_MAX_PEER_LOADS
    const promote = options.promote
    this.#promote =
      typeof promote === 'function'
        ? promote
        : promote === true
          ? () => true
          : promote === false
            ? () => false
            : () => node.random() < DEFAULT_HOT_PROMOTION
  }

  /** stats is a snapshot of the group's counters (Go's names). */
  get stats(): GroupStats {
    return { ...this.#stats }
  }

  /** generation counts the `clear()`s this node has seen of this group. */
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
   */
  async get(key: string, options?: GetOptions): Promise<Frozen<T>> {
    if (getTracing.hasSubscribers) return (await this.#tracedGet(key, options)).value
    const hit = this.#lookup(key)
    return this.#valueOf(hit ?? (await this.#miss(key, options)))
  }

  /**
   * getWithSource is `get` that also says where the value came from: this
   * node's caches (`hit`), a load here (`load`), or the key's owner (`peer`).
   */
  async getWithSource(key: string, options?: GetOptions): Promise<Sourced<Frozen<T>>> {
    if (getTracing.hasSubscribers) return this.#tracedGet(key, options)
    const hit = this.#lookup(key)
    if (hit !== undefined) return { value: this.#valueOf(hit), source: 'hit' }
    const entry = await this.#miss(key, options)
    return { value: this.#valueOf(entry), source: entry.origin }
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
      // Only hot copies come from peers among the entries of this node's caches.
      message.source = hit === undefined ? entry.origin : hit.origin === 'peer' ? 'hot' : 'hit'
      return { value: this.#valueOf(entry), source: hit === undefined ? entry.origin : 'hit' }
    })
  }

  /** lookup checks a get and answers it from the caches, if it can. */
  #lookup(key: string): Entry | undefined {
    const node = this.#node
    if (node.closed) throw new ClosedError()
    this.#checkKey(key)
    const stats = this.#stats
    stats.gets++
    const cached = this.#cache.get(key, node.now())
    if (cached !== undefined) stats.cacheHits++
    return cached
  }

  /** miss loads a key that is not cached here: on this node if it owns it, else from its owner. */
  #miss(key: string, options: GetOptions | undefined): Promise<Entry> {
    this.#stats.loads++
    const peers = this.#peers
    const signal = options?.signal
    const owner = peers.ownerOf(key)
    return owner === undefined || owner === peers.self
      ? this.#local.do(key, (s, current) => this.#loadLocally(key, s, current), signal, this.#counted)
      : this.#remote.do(key, (s, current) => this.#loadFromPeer(owner, key, s, current), signal, this.#counted)
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
    const ttlMs = options?.ttlMs ?? this.#ttlMs
    if (ttlMs !== undefined && !isTtl(ttlMs)) {
      throw new InvalidOptionError(`expected options.ttlMs to be a positive number of milliseconds, got ${String(ttlMs)}`)
    }
    const bytes = encodeValue(this.#codec, value, `the value of ${JSON.stringify(key)} in group ${this.name}`)
    const size = bytes.length + Buffer.byteLength(key)
    if (size > this.#maxEntryBytes) {
      throw new TooLargeError(`the entry for ${JSON.stringify(key)} takes ${size} bytes; this group stores at most ${this.#maxEntryBytes}`)
    }
    const expire = this.#expiry(ttlMs)
    await this.#everywhere(
      key,
      (peer, owner) => (peer === owner ? this.#peers.set(peer, this.name, key, bytes, expire) : this.#peers.remove(peer, this.name, key)),
      (owner) => (owner ? this.#setLocally(key, bytes, expire) : this.#removeLocally(key)),
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
    const generation = this.#generation + 1
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
  async #everywhere(
    key: string,
    remote: (peer: string, owner: string) => Promise<void>,
    local: (isOwner: boolean) => void,
  ): Promise<void> {
    const peers = this.#peers
    const owner = peers.ownerOf(key) ?? peers.self
    const run = (peer: string): Promise<void> => {
      if (peer !== peers.self) return remote(peer, owner)
      local(peer === owner)
      return Promise.resolve()
    }
    const failures = await settle([owner], run)
    failures.push(...(await settle(peers.list.filter((peer) => peer !== owner), run)))
    if (failures.length > 0) throw new UnreachablePeersError(`updating ${JSON.stringify(key)} in group ${this.name}`, failures)
  }

  /** [served] is the group as the peer endpoint sees it. */
  [served](): ServedGroup {
    return {
      maxEntryBytes: this.#maxEntryBytes,
      serve: (key, request, generation) =>
        serveTracing.hasSubscribers
          ? runTraced(serveTracing, { self: this.#peers.self, group: this.name, key, headers: request.headers }, () => this.#serve(key, request, generation))
          : this.#serve(key, request, generation),
      removeLocally: (key) => this.#removeLocally(key),
      setLocally: (key, value, expire) => this.#setLocally(key, value, expire),
      clearLocally: (generation) => this.#clearLocally(generation),
      peekLocally: (key, generation) => this.#peekLocally(key, generation),
      receive: (entries, generation) => this.#receive(entries, generation),
    }
  }

  /**
   * peekLocally answers a new owner's peek from the main cache only: no
   * load, no hot copy (a hot copy may be older than the owner's), no
   * forwarding. A requester that has seen a later `clear()` brings this
   * node up to date first, which also drops what it would have answered.
   */
  #peekLocally(key: string, generation: number): ServedValue | undefined {
    if (generation > this.#generation) this.#clearLocally(generation)
    const entry = this.#cache.peekMain(key, this.#node.now())
    if (entry === undefined) return undefined
    return { bytes: entry.bytes, expire: entry.expire, generation: entry.generation }
  }

  /**
   * receive stores what a leaving peer handed over, as if loaded here. A
   * sender behind this node's generation is refused whole; a sender ahead
   * moves this node to its generation first. An entry this node holds
   * already, or is loading, is kept as it is: it is at least as fresh.
   */
  #receive(entries: readonly HandoffEntry[], generation: number): number | false {
    if (generation < this.#generation) return false
    if (generation > this.#generation) this.#clearLocally(generation)
    const now = this.#node.now()
    let kept = 0
    for (const { key, value, expire } of entries) {
      if (expire !== 0 && expire <= now) continue
      if (value.length + Buffer.byteLength(key) > this.#maxEntryBytes) continue
      if (this.#local.has(key) || this.#cache.peekMain(key, now) !== undefined) continue
      this.#cache.hot.remove(key)
      this.#store('main', key, new Entry(value, expire, this.#generation, 'load'))
      kept++
    }
    this.#stats.handoffsReceived += kept
    return kept
  }

  /**
   * [handOff] sends this node's main-cache entries, most recently used first
   * and at most `maxBytes` of them, to the node that owns each key once
   * this one is gone, before `signal` aborts. Expired entries stay behind.
   * Failures are not reported: whatever did not arrive is loaded again.
   */
  async [handOff](maxBytes: number, signal: AbortSignal): Promise<void> {
    const peers = this.#peers
    const now = this.#node.now()
    const generation = this.#generation
    const batches = new Map<string, HandoffEntry[][]>()
    const sizes = new Map<string, number>()
    let spent = 0
    for (const [key, entry] of this.#cache.main.entries()) {
      if (entry.expire !== 0 && entry.expire <= now) continue
      const record: HandoffEntry = { key, value: entry.bytes, expire: entry.expire }
      const size = recordBytes(record)
      if (spent + size > maxBytes) break
      const heir = peers.nextOwnerOf(key)
      if (heir === undefined || heir === peers.self) continue
      spent += size
      let chunks = batches.get(heir)
      if (chunks === undefined) batches.set(heir, (chunks = [[]]))
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
          if (signal.aborted) return
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
   */
  async #serve(key: string, request: ServedRequest, generation: number): Promise<Entry> {
    if (generation > this.#generation) this.#clearLocally(generation)
    const stats = this.#stats
    stats.serverRequests++
    stats.gets++
    const cached = this.#cache.get(key, this.#node.now())
    if (cached !== undefined) {
      stats.cacheHits++
      return cached
    }
    stats.loads++
    if (!this.#local.has(key) && this.#peerLoads >= this.#maxPeerLoads) {
      throw new OverloadedError(`group ${this.name} is already running ${this.#maxPeerLoads} loads for peers`)
    }
    return this.#local.do(key, (s, current) => this.#loadForPeer(key, s, current), request.signal, this.#counted, true)
  }

  async #loadForPeer(key: string, signal: AbortSignal, isCurrent: () => boolean): Promise<Entry> {
    this.#peerLoads++
    try {
      return await this.#loadLocally(key, signal, isCurrent, true)
    } finally {
      this.#peerLoads--
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
      const reason = new AbortedError('the Groupcache instance closed')
      this.#local.abortAll(reason)
      this.#remote.abortAll(reason)
    }
  }

  #removeLocally(key: string): void {
    this.#cache.remove(key)
    this.#local.forget(key)
    this.#remote.forget(key)
  }

  #setLocally(key: string, bytes: Uint8Array, expire: number): void {
    this.#removeLocally(key)
    if (expire !== 0 && expire <= this.#node.now()) return
    this.#store('main', key, new Entry(bytes, expire, this.#generation, 'load'))
  }

  #clearLocally(generation: number): void {
    if (generation <= this.#generation) return
    this.#generation = generation
    this.#cache.clear()
    this.#local.forgetAll()
    this.#remote.forgetAll()
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

  /** expiry turns a TTL into an absolute expiry (0: never). */
  #expiry(ttlMs: number | undefined): number {
    return ttlMs === undefined || ttlMs === Infinity ? 0 : this.#node.now() + ttlMs
  }

  /**
   * lookAgain checks the caches from inside a flight. Between a caller's
   * miss and the start of its flight, another flight may have filled the
   * cache and finished; without this check the key would load twice (the
   * race Go's `load()` describes).
   */
  #lookAgain(key: string): Entry | undefined {
    const entry = this.#cache.get(key, this.#node.now())
    if (entry !== undefined) this.#stats.cacheHits++
    return entry
  }

  /**
   * peek asks the previous owner of a key that moved here (within
   * `handoffMs` of a ring change) for its cached copy, before the loader
   * runs. A copy of an older generation, or expired, is a miss.
   */
  async #peek(key: string, isCurrent: () => boolean): Promise<Entry | undefined> {
    const peers = this.#peers
    const previous = peers.previousOwnerOf(key)
    if (previous === undefined || peers.ownerOf(key) !== peers.self) return undefined
    const asked = this.#generation
    const res = await peers.peek(previous, this.name, key, asked)
    if (res === undefined || res.generation < this.#generation || (res.expire !== 0 && res.expire <= this.#node.now())) {
      this.#stats.peekMisses++
      return undefined
    }
    const entry = new Entry(res.value, res.expire, res.generation, 'load')
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
    if (res.generation > this.#generation) this.#clearLocally(res.generation)
    if (isCurrent()) this.#store('main', key, entry)
    return entry
  }

  async #loadLocally(key: string, signal: AbortSignal, isCurrent: () => boolean, forPeer = false): Promise<Entry> {
    const again = this.#lookAgain(key)
    if (again !== undefined) return again
    const peeked = await this.#peek(key, isCurrent)
    if (peeked !== undefined) return peeked
    const stats = this.#stats
    const generation = this.#generation
    const ctx: LoadContext = { group: this.name, signal }
    const traced = loadChannel.hasSubscribers ? performance.now() : undefined
    let value: T
    let bytes: Uint8Array
    let expire: number
    try {
      try {
        value = await (loadTracing.hasSubscribers
          ? runTraced(loadTracing, { self: this.#peers.self, group: this.name, key, forPeer }, async () => this.#load(key, ctx))
          : this.#load(key, ctx))
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
      bytes = encodeValue(this.#codec, value, `the value of ${JSON.stringify(key)} in group ${this.name}`)
      // A value not to be kept is sent to peers as already expired, so that
      // they do not keep it either.
      expire = ctx.cache === false ? Math.max(1, this.#node.now()) : this.#expiry(ttlMs)
    } catch (err) {
      stats.localLoadErrs++
      if (traced !== undefined) this.#traceLoad(key, traced, err)
      throw err
    }
    stats.localLoads++
    if (traced !== undefined) this.#traceLoad(key, traced, undefined)
    // Every caller left: nobody wants this value; the next get starts afresh.
    if (signal.aborted) throw new AbortedError(signal.reason)
    const entry = new Entry(bytes, expire, generation, 'load')
    // A forgotten flight (a remove, set or clear came while it ran) still
    // answers its callers, but what it read may be stale: keep none of it.
    if (isCurrent() && ctx.cache !== false) this.#store('main', key, entry)
    return entry
  }

  async #loadFromPeer(owner: string, key: string, signal: AbortSignal, isCurrent: () => boolean): Promise<Entry> {
    const again = this.#lookAgain(key)
    if (again !== undefined) return again
    let res: PeerValue
    const traced = peerChannel.hasSubscribers ? performance.now() : undefined
    try {
      res = await (fetchTracing.hasSubscribers ? this.#tracedFetch(owner, key, signal) : this.#peers.fetch(owner, this.name, key, signal, this.#generation))
      if (traced !== undefined) this.#tracePeer(key, owner, traced, 'ok', undefined)
    } catch (err) {
      if (traced !== undefined) this.#tracePeer(key, owner, traced, err instanceof PeerError ? 'error' : 'verdict', err)
      if (!(err instanceof PeerError)) throw err
      // Go's availability rule: an owner that cannot answer does not make
      // the key unavailable; this node loads it instead.
      this.#stats.peerErrors++
      return this.#local.do(key, (s, current) => this.#loadLocally(key, s, current), signal)
    }
    this.#stats.peerLoads++
    // The owner saw a clear this node missed: catch up (this forgets the
    // current flight too, so its value is returned but not kept).
    if (res.generation > this.#generation) this.#clearLocally(res.generation)
    const entry = new Entry(res.value, res.expire, res.generation, 'peer')
    const fresh = entry.expire === 0 || entry.expire > this.#node.now()
    if (fresh && isCurrent() && this.#promote(key, entry.byteLength)) {
      // Decode before keeping a copy, so bytes this node cannot read are
      // reported now and never cached.
      this.#valueOf(entry)
      this.#store('hot', key, entry)
    }
    return entry
  }

  /**
   * tracedFetch is the fetch from `owner` under the `groupcache:fetch`
   * tracing channel, sending the headers its subscribers add (`traceparent`).
   */
  #tracedFetch(owner: string, key: string, signal: AbortSignal): Promise<PeerValue> {
    const message: FetchMessage = { self: this.#peers.self, group: this.name, key, peer: owner, headers: {} }
    return runTraced(fetchTracing, message, async () => this.#peers.fetch(owner, this.name, key, signal, this.#generation, message.headers))
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
    let value: unknown
    try {
      value = this.#codec.decode(entry.bytes, entry.fresh)
    } catch (err) {
      throw new CodecError(`cannot decode a value of group ${this.name}: ${errorMessage(err)}`, { cause: err })
    }
    if (this.#codec.share(value)) {
      entry.value = value
      entry.decoded = true
      // What is kept is counted, and may push older entries out.
      this.#cache.update(entry)
    }
    return value as Frozen<T>
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

import { Cache, type CacheKind, type CacheStats, type Entry } from './cache.js'
import { encodeValue, resolveCodec, type Codec, type CodecName, type ResolvedCodec } from './codec.js'
import {
  AbortedError,
  ClosedError,
  CodecError,
  GroupcacheError,
  InvalidKeyError,
  LoadError,
  PeerError,
  errorMessage,
} from './errors.js'
import { Flight } from './flight.js'
import type { ServedValue } from './http.js'
import { newGroupStats, type GroupStats } from './stats.js'
import type { GetResponse } from './wire.js'

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
 * LoadContext is what a loader gets besides the key. `signal` aborts only
 * when every caller waiting for this load has given up.
 */
export interface LoadContext {
  readonly group: string
  readonly signal: AbortSignal
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
  /** maxBytes bounds main + hot cache together (key + value bytes); 0 caches nothing. */
  maxBytes: number
  /** load produces a value on the key's owner. */
  load: Loader<T>
  /** codec turns values into bytes: 'msgpack' (default), 'json', 'string', 'bytes' or your own. */
  codec?: CodecName | Codec<T>
  /** promote decides which peer-fetched values become hot copies (default: 1 in 10 at random). */
  promote?: Promote
  /** maxEntryBytes is the largest entry stored (default: maxBytes / 8). */
  maxEntryBytes?: number
}

/** GetOptions are per-call options of `group.get`. */
export interface GetOptions {
  /** signal lets this caller give up; the shared load goes on for the others. */
  signal?: AbortSignal
}

/**
 * GroupNode is what a group needs from the node it belongs to. It keeps
 * group.ts free of rings and HTTP.
 */
export interface GroupNode {
  readonly self: string
  readonly maxKeyBytes: number
  readonly closed: boolean
  ownerOf(key: string): string | undefined
  fetch(peer: string, group: string, key: string, signal: AbortSignal): Promise<GetResponse>
  now(): number
  random(): number
}

/** serveKey is the group's entry point for peer requests, kept off the public API. */
export const serveKey: unique symbol = Symbol('groupcache.serve')

/**
 * Group is a named keyspace with a loader and a byte budget. Create one with
 * `gc.newGroup`. `get` loads each key at most once across the cluster: on
 * the key's owner, whichever node was asked.
 */
export class Group<T = unknown> {
  readonly name: string
  readonly #node: GroupNode
  readonly #load: Loader<T>
  readonly #codec: ResolvedCodec
  readonly #cache: Cache
  readonly #promote: (key: string, bytes: number) => boolean
  readonly #maxEntryBytes: number
  readonly #stats: GroupStats = newGroupStats()
  // Two flights, so that a load that may wait on a peer never blocks one that
  // must not: peer requests and the owner's own gets share `#local`, which
  // only ever runs the loader; `#remote` fetches from the owner and may fall
  // back to `#local`, never the other way round. With one flight, two nodes
  // whose rings disagree could each wait on the other's fetch until timeout.
  readonly #local = new Flight<Entry>()
  readonly #remote = new Flight<Entry>()

  constructor(options: GroupOptions<T>, node: GroupNode) {
    this.name = options.name
    this.#node = node
    this.#load = options.load
    this.#codec = resolveCodec(options.codec as CodecName | Codec<unknown> | undefined, 'options.codec')
    this.#cache = new Cache(options.maxBytes)
    this.#maxEntryBytes = options.maxEntryBytes ?? Math.floor(options.maxBytes / DEFAULT_MAX_ENTRY_FRACTION)
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

  /** cacheStats is a snapshot of the main or the hot cache's counters. */
  cacheStats(kind: CacheKind): CacheStats {
    if (kind !== 'main' && kind !== 'hot') {
      throw new TypeError(`expected kind to be 'main' or 'hot', got ${String(kind)}`)
    }
    return this.#cache.stats(kind)
  }

  /**
   * get returns the value for `key`: from this node's caches, else from the
   * key's owner (which loads it once for the whole cluster), else, if the
   * owner cannot be reached, by loading it here. The value is what the codec
   * decodes from the stored bytes; plain objects and arrays are deep-frozen
   * and shared between callers, binary data is a fresh copy per caller.
   */
  async get(key: string, options?: GetOptions): Promise<T> {
    const node = this.#node
    if (node.closed) throw new ClosedError()
    this.#checkKey(key)
    const stats = this.#stats
    stats.gets++
    const cached = this.#cache.get(key, node.now())
    if (cached !== undefined) {
      stats.cacheHits++
      return this.#valueOf(cached)
    }
    stats.loads++
    const signal = options?.signal
    const owner = node.ownerOf(key)
    const entry =
      owner === undefined || owner === node.self
        ? await this.#local.do(key, (s) => this.#loadLocally(key, s), signal, this.#counted)
        : await this.#remote.do(key, (s) => this.#loadFromPeer(owner, key, s), signal, this.#counted)
    return this.#valueOf(entry)
  }

  /**
   * [serveKey] answers a peer's request: from the caches or by loading
   * locally, never by asking another peer. Forwarding is what lets Go nodes
   * with disagreeing peer lists bounce a key between them forever.
   */
  async [serveKey](key: string, request: { readonly signal?: AbortSignal | undefined }): Promise<ServedValue> {
    const stats = this.#stats
    stats.serverRequests++
    stats.gets++
    const cached = this.#cache.get(key, this.#node.now())
    if (cached !== undefined) {
      stats.cacheHits++
      return cached
    }
    stats.loads++
    return this.#local.do(key, (s) => this.#loadLocally(key, s), request.signal, this.#counted)
  }

  readonly #counted = (): void => {
    this.#stats.loadsDeduped++
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

  async #loadLocally(key: string, signal: AbortSignal): Promise<Entry> {
    const again = this.#lookAgain(key)
    if (again !== undefined) return again
    const stats = this.#stats
    let value: T
    try {
      value = await this.#load(key, { group: this.name, signal })
    } catch (err) {
      stats.localLoadErrs++
      if (err instanceof GroupcacheError && err.code !== 'ERR_GROUPCACHE_ABORTED') throw err
      throw new LoadError(`loading ${JSON.stringify(key)} in group ${this.name} failed: ${errorMessage(err)}`, {
        cause: err,
      })
    }
    let bytes: Uint8Array
    try {
      bytes = encodeValue(this.#codec, value, `the value of ${JSON.stringify(key)} in group ${this.name}`)
    } catch (err) {
      stats.localLoadErrs++
      throw err
    }
    stats.localLoads++
    // Every caller left: nobody wants this value; the next get starts afresh.
    if (signal.aborted) throw new AbortedError(signal.reason)
    const entry: Entry = { bytes, expire: 0, value: undefined, decoded: false }
    this.#store('main', key, entry)
    return entry
  }

  async #loadFromPeer(owner: string, key: string, signal: AbortSignal): Promise<Entry> {
    const again = this.#lookAgain(key)
    if (again !== undefined) return again
    let res: GetResponse
    try {
      res = await this.#node.fetch(owner, this.name, key, signal)
    } catch (err) {
      if (!(err instanceof PeerError)) throw err
      // Go's availability rule: an owner that cannot answer does not make
      // the key unavailable; this node loads it instead.
      this.#stats.peerErrors++
      return this.#local.do(key, (s) => this.#loadLocally(key, s), signal)
    }
    this.#stats.peerLoads++
    const entry: Entry = { bytes: res.value, expire: res.expire ?? 0, value: undefined, decoded: false }
    if (this.#promote(key, entry.bytes.length)) {
      // Decode before keeping a copy, so bytes this node cannot read are
      // reported now and never cached.
      this.#valueOf(entry)
      this.#store('hot', key, entry)
    }
    return entry
  }

  #store(kind: CacheKind, key: string, entry: Entry): void {
    if (entry.bytes.length + Buffer.byteLength(key) > this.#maxEntryBytes) return
    this.#cache.add(kind, key, entry)
  }

  /**
   * valueOf decodes an entry for a caller. A value the codec can share
   * (deep-frozen plain data, strings) is decoded once and kept beside the
   * bytes, so a hit costs a lookup, not a decode.
   */
  #valueOf(entry: Entry): T {
    if (entry.decoded) return entry.value as T
    let value: unknown
    try {
      value = this.#codec.decode(entry.bytes)
    } catch (err) {
      throw new CodecError(`cannot decode a value of group ${this.name}: ${errorMessage(err)}`, { cause: err })
    }
    if (this.#codec.share(value)) {
      entry.value = value
      entry.decoded = true
    }
    return value as T
  }
}

import { LRU } from './lru.js'

/** CacheKind names one of a group's two caches. */
export type CacheKind = 'main' | 'hot'

/**
 * CacheStats are Go's per-cache counters: what a cache holds (`bytes`,
 * `items`) and how it was used (`gets`, `hits`, `evictions`).
 */
export interface CacheStats {
  bytes: number
  items: number
  gets: number
  hits: number
  evictions: number
}

/**
 * Entry is one cached value: the encoded bytes (what peers are sent and what
 * is accounted) and, once a local caller asked for it, the decoded value that
 * can be shared between callers because it is immutable. `expire` is an
 * absolute time in unix milliseconds, 0 for never. `generation` is the
 * group's generation when its load began (see `group.clear()`).
 */
export interface Entry {
  readonly bytes: Uint8Array
  readonly expire: number
  readonly generation: number
  /** origin says how this node got the value: loaded here, or from the owner. */
  readonly origin: 'load' | 'peer'
  value?: unknown
  decoded?: boolean
}

/**
 * Cache is a group's byte budget split over two LRUs, as in Go: `main` holds
 * keys this node owns (or loaded itself), `hot` holds copies of popular keys
 * owned by others. An entry costs its key's UTF-8 length plus its value's
 * length. After each insert, while both together exceed `maxBytes`, the oldest
 * hot entry gives way if hot holds more than an eighth of main, else the
 * oldest main entry: hot copies may never crowd out what this node owns.
 */
export class Cache {
  readonly maxBytes: number
  readonly main: LRU<Entry>
  readonly hot: LRU<Entry>

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes
    const sizeOf = (entry: Entry, key: string): number => Buffer.byteLength(key) + entry.bytes.length
    this.main = new LRU<Entry>(sizeOf)
    this.hot = new LRU<Entry>(sizeOf)
  }

  /** bytes is what both caches hold together, the figure `maxBytes` bounds. */
  get bytes(): number {
    return this.main.bytes + this.hot.bytes
  }

  /**
   * get looks in main, then hot. An entry past its expiry at `now` is dropped
   * and reported as a miss.
   */
  get(key: string, now: number): Entry | undefined {
    return this.#fresh(this.main, key, now) ?? this.#fresh(this.hot, key, now)
  }

  /** peekMain looks in main only, as a peek or a hand-off does. */
  peekMain(key: string, now: number): Entry | undefined {
    return this.#fresh(this.main, key, now)
  }

  #fresh(lru: LRU<Entry>, key: string, now: number): Entry | undefined {
    const entry = lru.get(key)
    if (entry === undefined || entry.expire === 0 || entry.expire > now) return entry
    lru.expire(key)
    return undefined
  }

  /**
   * add stores an entry in one cache and then restores the budget. A group
   * with `maxBytes <= 0` caches nothing, like Go's.
   */
  add(kind: CacheKind, key: string, entry: Entry): void {
    if (this.maxBytes <= 0) return
    const lru = kind === 'main' ? this.main : this.hot
    lru.add(key, entry)
    while (this.main.bytes + this.hot.bytes > this.maxBytes) {
      const victim = this.hot.bytes > this.main.bytes / 8 ? this.hot : this.main
      victim.removeOldest()
    }
  }

  /** remove drops the key from both caches. */
  remove(key: string): void {
    this.main.remove(key)
    this.hot.remove(key)
  }

  /** clear drops every entry of both caches. */
  clear(): void {
    this.main.clear()
    this.hot.clear()
  }

  /** stats returns a snapshot of one cache's counters. */
  stats(kind: CacheKind): CacheStats {
    const lru = kind === 'main' ? this.main : this.hot
    return { bytes: lru.bytes, items: lru.items, gets: lru.gets, hits: lru.hits, evictions: lru.evictions }
  }
}

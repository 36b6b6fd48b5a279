import { LRUCache } from 'lru-cache'

/**
 * LRU is one least-recently-used cache with the counters Go's groupcache
 * keeps per cache. The ordering and storage are lru-cache's; the budget is
 * not: the owner (`cache.ts`) decides which of its two LRUs gives way, by
 * calling `removeOldest`, so this class only counts what it holds.
 */
export class LRU<V extends {}> {
  readonly #entries: LRUCache<string, V>
  gets = 0
  hits = 0
  evictions = 0

  /**
   * `sizeOf` gives an entry's cost in bytes (lru-cache counts at least 1).
   * lru-cache needs a size limit; it gets one it never reaches, because an
   * eviction it made on its own would bypass the owner's policy.
   */
  constructor(sizeOf: (value: V, key: string) => number) {
    this.#entries = new LRUCache<string, V>({
      maxSize: Number.MAX_SAFE_INTEGER,
      sizeCalculation: (value, key) => Math.max(1, sizeOf(value, key)),
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') this.evictions++
      },
    })
  }

  /** bytes is the summed cost of the entries held. */
  get bytes(): number {
    return this.#entries.calculatedSize
  }

  /** items is the number of entries held. */
  get items(): number {
    return this.#entries.size
  }

  /** get returns the entry and marks it most recently used. */
  get(key: string): V | undefined {
    this.gets++
    const value = this.#entries.get(key)
    if (value !== undefined) this.hits++
    return value
  }

  /**
   * expire drops an entry that `get` just returned and its owner found
   * stale (past its expiry), and counts that get as a miss after all.
   */
  expire(key: string): void {
    if (this.#entries.delete(key)) this.hits--
  }

  /** entries yields every entry, most recently used first, without touching their order. */
  entries(): IterableIterator<[string, V]> {
    return this.#entries.entries()
  }

  /** add stores or replaces an entry as the most recently used. */
  add(key: string, value: V): void {
    this.#entries.set(key, value)
  }

  /** remove drops an entry; it is not counted as an eviction. */
  remove(key: string): boolean {
    return this.#entries.delete(key)
  }

  /** clear drops every entry; none is counted as an eviction. */
  clear(): void {
    this.#entries.clear()
  }

  /** removeOldest evicts the least recently used entry, if any. */
  removeOldest(): void {
    this.#entries.pop()
  }
}

/**
 * Linked is the bookkeeping an LRU keeps on each value it holds: its key,
 * its cost and its two neighbours in recency order. Values carry it
 * themselves (an intrusive list), so a cached entry is one object and a map
 * slot. lru-cache, which this replaced, keeps five slots per entry in arrays
 * beside its map: 53 bytes an entry over a bare Map at 200,000 entries
 * (measured with process.memoryUsage()), where these links take 32.
 */
export class Linked {
  /** key is the key this value is held under, undefined while no LRU holds it. */
  key: string | undefined = undefined
  /** size is the value's cost as its LRU counts it. */
  size = 0
  /** newer is the next more recently used value. */
  newer: Linked | undefined = undefined
  /** older is the next less recently used value. */
  older: Linked | undefined = undefined
}

/**
 * LRU is one least-recently-used cache with the counters Go's groupcache
 * keeps per cache. It has no budget of its own: the owner (`cache.ts`)
 * decides which of its two LRUs gives way, by calling `removeOldest`, so
 * this class only orders and counts what it holds. A value can be held by
 * one LRU, under one key, at a time.
 */
export class LRU<V extends Linked> {
  readonly #entries = new Map<string, V>()
  #oldest: V | undefined = undefined
  #newest: V | undefined = undefined
  #bytes = 0
  gets = 0
  hits = 0
  evictions = 0

  /** bytes is the summed size of the values held. */
  get bytes(): number {
    return this.#bytes
  }

  /** items is the number of values held. */
  get items(): number {
    return this.#entries.size
  }

  /** get returns the value and marks it most recently used. */
  get(key: string): V | undefined {
    this.gets++
    const value = this.#entries.get(key)
    if (value !== undefined) {
      this.hits++
      this.touch(value)
    }
    return value
  }

  /** oldest is the least recently used value (the next to be evicted), if any. */
  get oldest(): V | undefined {
    return this.#oldest
  }

  /** peek returns the value without counting a get or changing its recency. */
  peek(key: string): V | undefined {
    return this.#entries.get(key)
  }

  /**
   * expire drops a value that `get` just returned and its owner found stale
   * (past its expiry), and counts that get as a miss after all.
   */
  expire(key: string): void {
    if (this.remove(key)) this.hits--
  }

  /** entries yields every value with its key, most recently used first, without touching their order. */
  *entries(): IterableIterator<[string, V]> {
    for (let v = this.#newest; v !== undefined; v = v.older as V | undefined) yield [v.key as string, v]
  }

  /**
   * add stores or replaces a value as the most recently used, at `size`.
   * A value held elsewhere must be removed from there first.
   */
  add(key: string, value: V, size: number): void {
    const old = this.#entries.get(key)
    if (old === value) {
      this.resize(value, size)
      this.touch(value)
      return
    }
    if (value.key !== undefined)
      throw new Error(`LRU: the value for ${JSON.stringify(key)} is already held under ${JSON.stringify(value.key)}`)
    if (old !== undefined) {
      // The map keeps its first key string: so does the value.
      key = old.key as string
      this.#unlink(old)
    }
    this.#entries.set(key, value)
    value.key = key
    value.size = size
    this.#bytes += size
    this.#linkNewest(value)
  }

  /** resize changes the cost of a value this LRU holds. */
  resize(value: V, size: number): void {
    if (value.key === undefined || this.#entries.get(value.key) !== value) return
    this.#bytes += size - value.size
    value.size = size
  }

  /** remove drops a value; it is not counted as an eviction. */
  remove(key: string): boolean {
    const value = this.#entries.get(key)
    if (value === undefined) return false
    this.#entries.delete(key)
    this.#unlink(value)
    return true
  }

  /** clear drops every value; none is counted as an eviction. */
  clear(): void {
    for (let v = this.#oldest; v !== undefined; ) {
      const next = v.newer as V | undefined
      v.key = undefined
      v.newer = v.older = undefined
      v.size = 0
      v = next
    }
    this.#entries.clear()
    this.#oldest = this.#newest = undefined
    this.#bytes = 0
  }

  /** removeOldest evicts the least recently used value, if any. */
  removeOldest(): void {
    const oldest = this.#oldest
    if (oldest === undefined) return
    this.#entries.delete(oldest.key as string)
    this.#unlink(oldest)
    this.evictions++
  }

  /**
   * touch marks a value this LRU holds as the most recently used, without
   * counting a get: its owner gives it a second chance before eviction.
   */
  touch(value: V): void {
    if (value === this.#newest) return
    this.#detach(value)
    this.#linkNewest(value)
  }

  #linkNewest(value: V): void {
    value.older = this.#newest
    value.newer = undefined
    if (this.#newest !== undefined) this.#newest.newer = value
    else this.#oldest = value
    this.#newest = value
  }

  #detach(value: V): void {
    const { newer, older } = value
    if (newer !== undefined) newer.older = older
    else this.#newest = older as V | undefined
    if (older !== undefined) older.newer = newer
    else this.#oldest = newer as V | undefined
  }

  /** unlink takes a value out of the list and forgets its key and size. */
  #unlink(value: V): void {
    this.#detach(value)
    this.#bytes -= value.size
    value.key = undefined
    value.newer = value.older = undefined
    value.size = 0
  }
}

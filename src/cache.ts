import {
  BUFFER_BYTES,
  heapBytes,
  isOneByte,
  MIN_SHARED_STRING_LENGTH,
  numberBytes,
  ownString,
  PROMISE_BYTES,
  SLICE_BYTES,
  VIEW_BYTES,
} from './heap.js'
import { Linked, LRU } from './lru.js'
import { RATE_BYTES, type Rate } from './rate.js'
import { getResponseSize, timeField, varintLength, writeGetResponse } from './wire.js'

/**
 * ENTRY_OVERHEAD_BYTES is what a cached entry costs beyond its key's and its
 * value's bytes, and is counted against `maxBytes` with them, so that many
 * small entries evict sooner instead of growing the heap past the budget:
 * the entry object with its list links (112 bytes), its slot in the key map
 * (V8's Map tables run between a quarter and a half full while entries come
 * and go: 56–112 bytes a slot), the headers of the key and value strings
 * with their rounding (about 40), and the protobuf framing the entry keeps
 * around its value (2–22 bytes, see Entry). It takes the map slot at its
 * largest: bench B10 measures 234 bytes beyond key and value per entry of
 * 100-byte values in a full cache of 100,000 (heap and ArrayBuffer memory
 * after forced collections), where 256 are counted.
 */
export const ENTRY_OVERHEAD_BYTES = 256

/**
 * STRING_VALUE_MAX_BYTES: values up to 1 KiB are held as one-byte strings
 * (one character per byte), larger ones as a Uint8Array of their own. A
 * string is one object of 16 bytes plus its characters; a Uint8Array is a
 * view, a buffer object and the buffer (184 bytes besides the bytes, and
 * more outside the heap), which would more than double the memory of a
 * 100-byte entry. Past 1 KiB that overhead is small, and a Uint8Array lets
 * a decoded value that views its bytes (a route's body) share them.
 */
export const STRING_VALUE_MAX_BYTES = 1024

/**
 * HOT_SHARE: copies kept by measured rate (see `Cache.offerHot`) take up to
 * an eighth of what the main cache holds, the share Go's eviction rule lets
 * the hot cache keep when the budget is full.
 */
export const HOT_SHARE = 8

/**
 * MIN_HOT_COPIES: below this many hot copies, any copy is kept, so that a
 * node owning little (a new one, a small keyspace) can still copy the few
 * keys everyone asks for.
 */
export const MIN_HOT_COPIES = 64

/**
 * HOT_SCAN bounds how many of the least recently used hot copies one offer
 * looks at for one colder than the copy offered (see `Cache.offerHot`):
 * enough to find the cold ones among them, few enough to stay O(1).
 */
export const HOT_SCAN = 8

/** CacheKind names one of a group's two caches. */
export type CacheKind = 'main' | 'hot'

/**
 * CacheStats are Go's per-cache counters: what a cache holds (`bytes`,
 * `items`) and how it was used (`gets`, `hits`, `evictions`). `bytes` is
 * what entries are counted as against `maxBytes`: key and value bytes, the
 * per-entry overhead, and the decoded values kept beside them.
 */
export interface CacheStats {
  bytes: number
  items: number
  gets: number
  hits: number
  evictions: number
}

/**
 * Entry is one cached value: its encoded bytes (what peers are sent) and,
 * once a local caller asked for it, the decoded value that can be shared
 * between callers because it is immutable. `expire` is an absolute time in
 * unix milliseconds, 0 for never. `generation` is the group's generation
 * when its load began (see `group.clear()`).
 *
 * The bytes are held as the GetResponse a peer is answered with (`frame`):
 * the value field, then expire and stale_until, all fixed for the entry's
 * life. So the peer endpoint writes a hit as it is, with no encoding and no
 * copy. The framing takes 2 to 22 bytes beside the value, which
 * ENTRY_OVERHEAD_BYTES covers.
 *
 * The bytes are copied into memory the entry owns: a codec's output is often
 * a view on a larger, reused buffer (msgpackr's, Node's Buffer pool, a
 * response body), and one small entry keeping such a view keeps all of it.
 */
export class Entry extends Linked {
  /**
   * data holds the frame: a one-byte string (one character per byte), or a
   * Uint8Array of its own (see STRING_VALUE_MAX_BYTES). Where the value
   * lies in it is read from the frame's length prefix, not kept: two more
   * fields would cost every entry 16 bytes.
   */
  data: string | Uint8Array
  readonly expire: number
  /**
   * staleUntil, when later than `expire`, is the absolute time (unix ms)
   * until which the entry may still be served, stale, while it is refreshed
   * (`staleMs`); 0 for none.
   */
  readonly staleUntil: number
  readonly generation: number
  /** origin says how this node got the value: loaded here, or from the owner. */
  readonly origin: 'load' | 'peer'
  /** value is the decoded value, once one is kept (see `keep`). */
  value: unknown = undefined
  /**
   * shared is `value` as an already resolved, frozen promise, made with it:
   * a hit hands every caller this same promise, which costs no new promise
   * and no lookup of a `then` on the value. Undefined until a value is kept.
   */
  shared: Promise<unknown> | undefined = undefined
  /**
   * rate is how often this key is asked for, where that decides hot copies:
   * on the owner, the rate at which peers ask for it (made on the first
   * peer request); in a hot copy, the rate its owner reported, and this
   * node's hits on it since.
   */
  rate: Rate | undefined = undefined

  constructor(bytes: Uint8Array, expire: number, generation: number, origin: 'load' | 'peer', staleUntil = 0) {
    super()
    const size = getResponseSize(bytes.length, timeField(expire), timeField(staleUntil))
    const small = bytes.length <= STRING_VALUE_MAX_BYTES
    // A small frame is written in Buffer's pool and read out as a string; a
    // large one into memory of its own, not from the pool.
    const out = small ? Buffer.allocUnsafe(size) : new Uint8Array(Buffer.allocUnsafeSlow(size).buffer, 0, size)
    writeGetResponse(out, bytes, timeField(expire), timeField(staleUntil))
    this.data = small ? (out as Buffer).toString('latin1', 0, size) : out
    this.expire = expire
    this.staleUntil = staleUntil
    this.generation = generation
    this.origin = origin
  }

  /** decoded says whether a decoded value is kept beside the bytes. */
  get decoded(): boolean {
    return this.shared !== undefined
  }

  /**
   * keep keeps a decoded value beside the bytes, to be shared by every
   * caller: it must be immutable (deep-frozen). The promise is not frozen:
   * async_hooks (AsyncLocalStorage on Node 20 and 22, OpenTelemetry's
   * context managers, APMs) writes its ids onto a promise the first time
   * one is chained to it, and a frozen one makes that throw inside the
   * hook, which ends the process. A string that reads as its own bytes
   * (ASCII text with the 'string' codec) is kept as `text`, a slice of the
   * frame: one copy of the characters, not two (see `decodedBytes`).
   */
  keep(value: unknown): void {
    if (typeof value === 'string' && value.length >= MIN_SHARED_STRING_LENGTH) {
      const text = this.text()
      if (value === text) value = text
    }
    this.value = value
    this.shared = Promise.resolve(value)
  }

  /** byteLength is the length of the encoded value: the varint after the frame's first byte (the value's tag). */
  get byteLength(): number {
    const data = this.data
    let length = 0
    let scale = 1
    for (let i = 1; ; i++) {
      const b = typeof data === 'string' ? data.charCodeAt(i) : (data[i] as number)
      length += (b & 0x7f) * scale
      if (b < 0x80) return length
      scale *= 128
    }
  }

  /**
   * frame is the GetResponse that answers a peer for this entry, as held:
   * a one-byte string (write it as 'latin1') or bytes. Never write to it.
   */
  get frame(): string | Uint8Array {
    return this.data
  }

  /**
   * bytes is the encoded value: a fresh copy, or a fresh view on the bytes
   * the entry holds. Read it; never write to it.
   */
  get bytes(): Uint8Array {
    const data = this.data
    const length = this.byteLength
    const start = 1 + varintLength(length)
    if (typeof data !== 'string') return data.subarray(start, start + length)
    // Not from Buffer's shared pool: a decoded value that views these bytes
    // must keep only them alive.
    const copy = Buffer.allocUnsafeSlow(length)
    copy.write(data.slice(start, start + length), 0, 'latin1')
    return copy
  }

  /**
   * scratchBytes is `bytes` for a use that keeps no view on them (decoding a
   * value that owns its memory, a caller's copy): a small value's copy comes
   * from Buffer's shared pool, three times faster to make.
   */
  scratchBytes(): Uint8Array {
    const data = this.data
    const length = this.byteLength
    const start = 1 + varintLength(length)
    return typeof data === 'string' ? Buffer.from(data.slice(start, start + length), 'latin1') : data.subarray(start, start + length)
  }

  /**
   * text is the value's bytes as a one-byte string (a character per byte):
   * a slice of the frame the entry holds, which V8 keeps, from 13
   * characters on, as a view rather than a copy. Undefined for a value held
   * as a Uint8Array (over 1 KiB).
   */
  text(): string | undefined {
    const data = this.data
    if (typeof data !== 'string') return undefined
    const length = this.byteLength
    const start = 1 + varintLength(length)
    return data.slice(start, start + length)
  }

  /**
   * minuteQps is what the owner reports of this key's rate with an answer
   * (GetResponse field 2): requests per second from peers over about the
   * last minute, as of the last one counted; undefined before any.
   */
  get minuteQps(): number | undefined {
    return this.rate?.lastPerSecond
  }

  /** fresh says whether `bytes` is a copy, which a decoder may hand out as it is. */
  get fresh(): boolean {
    return typeof this.data === 'string'
  }

  /** copy is a new entry with the same bytes, expiry and decoded value, held by no cache. */
  copy(): Entry {
    const copy = new Entry(EMPTY, this.expire, this.generation, this.origin, this.staleUntil)
    copy.data = this.data
    copy.value = this.value
    copy.shared = this.shared
    copy.rate = this.rate
    return copy
  }
}

/**
 * NotFoundEntry is a remembered not-found verdict (`notFoundTtlMs`): its
 * bytes are the verdict's message, counted like any entry's. A class of its
 * own, so that plain entries carry no flag for it.
 */
export class NotFoundEntry extends Entry {
  override copy(): Entry {
    return new NotFoundEntry(this.bytes, this.expire, this.generation, this.origin)
  }
}

const EMPTY = new Uint8Array(0)

/**
 * Cache is a group's byte budget split over two LRUs, as in Go: `main` holds
 * keys this node owns (or loaded itself), `hot` holds copies of popular keys
 * owned by others. An entry costs what it holds in memory (see `costOf`).
 * After each insert, while both together exceed `maxBytes`, the oldest hot
 * entry gives way if hot holds more than an eighth of main, else the oldest
 * main entry: hot copies may never crowd out what this node owns.
 */
export class Cache {
  readonly maxBytes: number
  readonly main = new LRU<Entry>()
  readonly hot = new LRU<Entry>()
  readonly #overhead: number

  /** `overheadBytes` is counted per entry (ENTRY_OVERHEAD_BYTES unless a test sets it). */
  constructor(maxBytes: number, overheadBytes = ENTRY_OVERHEAD_BYTES) {
    this.maxBytes = maxBytes
    this.#overhead = overheadBytes
  }

  /** bytes is what both caches hold together, the figure `maxBytes` bounds. */
  get bytes(): number {
    return this.main.bytes + this.hot.bytes
  }

  /**
   * costOf is what an entry is counted as: Go's key bytes (UTF-8, or two
   * per character if V8 holds the key that way and that is more) and value
   * bytes, plus the per-entry overhead, plus the boxed numbers an expiry and
   * the end of a stale window take, plus the Uint8Array around a large value, plus the decoded value
   * and its shared promise when they are kept beside the bytes, plus the
   * entry's Rate once it has one.
   */
  costOf(key: string, entry: Entry): number {
    const utf8 = Buffer.byteLength(key)
    let cost = this.#overhead + (utf8 === key.length || isOneByte(key) ? utf8 : Math.max(utf8, 2 * key.length)) + entry.byteLength
    cost += numberBytes(entry.expire) + numberBytes(entry.staleUntil)
    const data = entry.data
    if (typeof data !== 'string') cost += VIEW_BYTES + BUFFER_BYTES
    if (entry.decoded) cost += decodedBytes(entry) + PROMISE_BYTES
    if (entry.rate !== undefined) cost += RATE_BYTES
    return cost
  }

  /**
   * get looks in main, then hot. An entry past its expiry at `now` is still
   * returned while it may be served stale (see `isStale`); past that too, it
   * is dropped and reported as a miss. `now` may be the clock itself, read
   * only for an entry that can expire: most hits then need no time at all.
   */
  get(key: string, now: number | (() => number)): Entry | undefined {
    return this.#usable(this.main, key, now) ?? this.#usable(this.hot, key, now)
  }

  /** peekMain looks in main only, as a peek or a hand-off does. */
  peekMain(key: string, now: number): Entry | undefined {
    return this.#usable(this.main, key, now)
  }

  #usable(lru: LRU<Entry>, key: string, now: number | (() => number)): Entry | undefined {
    const entry = lru.get(key)
    if (entry === undefined || entry.expire === 0) return entry
    const at = typeof now === 'number' ? now : now()
    if (entry.expire > at || entry.staleUntil > at) return entry
    lru.expire(key)
    return undefined
  }

  /**
   * add stores an entry in one cache and then restores the budget. A group
   * with `maxBytes <= 0` caches nothing, like Go's. An entry another cache
   * holds already is stored as a copy.
   */
  add(kind: CacheKind, key: string, entry: Entry): void {
    if (this.maxBytes <= 0) return
    const lru = kind === 'main' ? this.main : this.hot
    const held = lru.peek(key)
    if (entry.key !== undefined && held !== entry) entry = entry.copy()
    lru.add(held === undefined ? ownString(key) : key, entry, this.costOf(key, entry))
    this.#shrink()
  }

  /**
   * offerHot keeps a copy of another owner's value, which carries its rate
   * (what its owner reported), if it is worth its memory: while hot copies
   * take no more than 1 / HOT_SHARE of what the main cache holds (or are
   * fewer than MIN_HOT_COPIES), any copy is kept; past that, only one hotter
   * than a colder copy, which gives way to it. The colder copy is sought
   * among the least recently used, HOT_SCAN at most; each one passed over,
   * hotter than the offer, gets a second chance as if just used (a CLOCK
   * sweep), so that the next offer looks at others. So hot copies stay a
   * small part of the cluster's memory however large the budget, and go to
   * the keys asked for most. Says whether it kept the copy.
   */
  offerHot(key: string, entry: Entry, now: number): boolean {
    if (this.maxBytes <= 0) return false
    const hot = this.hot
    const share = this.main.bytes / HOT_SHARE
    if (hot.bytes + this.costOf(key, entry) > share && hot.items >= MIN_HOT_COPIES) {
      const offered = rateAt(entry, now)
      let colder = false
      for (let n = 0; n < HOT_SCAN && !colder; n++) {
        const oldest = hot.oldest
        if (oldest === undefined) break
        colder = rateAt(oldest, now) < offered
        if (!colder) hot.touch(oldest)
      }
      if (!colder) return false
      hot.removeOldest()
    }
    this.add('hot', key, entry)
    const kept = hot.peek(key)
    while (hot.bytes > share && hot.items > MIN_HOT_COPIES && hot.oldest !== kept) hot.removeOldest()
    return kept !== undefined
  }

  /**
   * update recounts an entry after its decoded value was kept beside its
   * bytes, and restores the budget. An entry no cache holds is left alone.
   */
  update(entry: Entry): void {
    const key = entry.key
    if (key === undefined) return
    const lru = this.main.peek(key) === entry ? this.main : this.hot.peek(key) === entry ? this.hot : undefined
    if (lru === undefined) return
    lru.resize(entry, this.costOf(key, entry))
    this.#shrink()
  }

  #shrink(): void {
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

/**
 * decodedBytes is what a decoded value kept beside the bytes costs. A string
 * equal to the entry's `text` is that slice of the frame (`keep` keeps it
 * so), which holds no characters of its own.
 */
function decodedBytes(entry: Entry): number {
  const value = entry.value
  const data = entry.data
  if (typeof value === 'string' && value.length >= MIN_SHARED_STRING_LENGTH && value === entry.text()) return SLICE_BYTES
  return heapBytes(value, typeof data === 'string' ? undefined : data.buffer)
}

/** rateAt is an entry's rate at `now`, 0 if it has none. */
function rateAt(entry: Entry, now: number): number {
  return entry.rate === undefined ? 0 : entry.rate.perSecond(now)
}

/**
 * isStale says whether an entry is past its expiry at `now` but within its
 * stale window: servable, while it is refreshed.
 */
export function isStale(entry: Entry, now: number): boolean {
  return entry.expire !== 0 && entry.expire <= now && entry.staleUntil > now
}

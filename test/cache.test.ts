import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Cache, type CacheKind, ENTRY_OVERHEAD_BYTES, Entry, isStale, STRING_VALUE_MAX_BYTES } from '../src/cache.js'
import { BUFFER_BYTES, heapBytes, VIEW_BYTES } from '../src/heap.js'
import { decodeGetResponse, encodeGetResponse } from '../src/wire.js'
import { mulberry32 } from './helpers/prng.js'

/** entry makes an Entry whose value is `size` bytes. */
function entry(size: number, expire = 0, staleUntil = 0): Entry {
  return new Entry(new Uint8Array(size), expire, 0, 'load', staleUntil)
}

/**
 * goCache is a cache that counts no per-entry overhead, so that Go's
 * eviction rule can be checked with Go's arithmetic: key + value bytes.
 */
function goCache(maxBytes: number): Cache {
  return new Cache(maxBytes, 0)
}

/** keys lists what one LRU holds, by probing each candidate without counting. */
function holds(cache: Cache, kind: CacheKind, candidates: string[]): string[] {
  const lru = kind === 'main' ? cache.main : cache.hot
  const { gets, hits } = lru
  const found = candidates.filter((key) => lru.get(key) !== undefined)
  lru.gets = gets
  lru.hits = hits
  return found
}

describe('Cache', () => {
  test('without overhead, an entry costs the UTF-8 bytes of its key plus the bytes of its value, as in Go', () => {
    const cases: Array<{ key: string; valueBytes: number; cost: number }> = [
      { key: 'k', valueBytes: 10, cost: 11 },
      { key: 'ключ', valueBytes: 10, cost: 8 + 10 }, // 4 chars, 8 UTF-8 bytes
      { key: '🔑', valueBytes: 3, cost: 4 + 3 }, // 2 UTF-16 units, 4 UTF-8 bytes
      { key: '日本', valueBytes: 0, cost: 6 },
    ]
    for (const kind of ['main', 'hot'] as const) {
      for (const { key, valueBytes, cost } of cases) {
        const cache = goCache(1000)
        cache.add(kind, key, entry(valueBytes))
        assert.equal(cache.stats(kind).bytes, cost, `${kind} ${key}`)
        assert.equal(cache.bytes, cost, `${kind} ${key}: total`)
      }
    }
  })

  test('main and hot together never exceed maxBytes after any add of random sizes into either', () => {
    const maxBytes = 1000
    const random = mulberry32(42)
    const cache = goCache(maxBytes)
    const keys = ['a', 'bb', 'ключ', '🔑', 'k5', 'k6', 'k7', 'k8', 'k9', 'k10', 'k11', 'k12']
    let mainEvictions = 0
    let hotEvictions = 0
    for (let i = 0; i < 5000; i++) {
      const kind: CacheKind = random() < 0.5 ? 'main' : 'hot'
      const key = `${keys[Math.floor(random() * keys.length)] ?? 'x'}-${Math.floor(random() * 40)}`
      // Mostly small values, sometimes large ones, occasionally more than the whole budget.
      const r = random()
      const size = r < 0.8 ? Math.floor(random() * 60) : r < 0.98 ? Math.floor(random() * 500) : 1000 + Math.floor(random() * 100)
      cache.add(kind, key, entry(size))
      const main = cache.stats('main')
      const hot = cache.stats('hot')
      assert.ok(
        main.bytes + hot.bytes <= maxBytes,
        `add #${i} (${kind} ${key}, ${size}): main ${main.bytes} + hot ${hot.bytes} > ${maxBytes}`,
      )
      assert.equal(cache.bytes, main.bytes + hot.bytes, `add #${i}: bytes`)
      mainEvictions = main.evictions
      hotEvictions = hot.evictions
    }
    // The loop must have exercised eviction in both caches to mean anything.
    assert.ok(mainEvictions > 0, 'main never evicted')
    assert.ok(hotEvictions > 0, 'hot never evicted')
  })

  describe("Go's eviction rule: the oldest hot entry gives way while hot holds more than an eighth of main, else the oldest main entry", () => {
    // Keys are one byte, so a key k with `size` value bytes costs size + 1.
    const all = ['a', 'b', 'c', 'h', 'i', 'j']
    const cases: Array<{
      name: string
      before: Array<[CacheKind, string, number]>
      add: [CacheKind, string, number]
      main: string[]
      hot: string[]
      evictions: { main: number; hot: number }
    }> = [
      {
        name: 'evicts the oldest hot entry while hot holds more than an eighth of main',
        // main 80, hot 20 (> 80/8); adding 10 to hot makes 110.
        before: [
          ['main', 'a', 39],
          ['main', 'b', 39],
          ['hot', 'h', 19],
        ],
        add: ['hot', 'i', 9],
        main: ['a', 'b'],
        hot: ['i'],
        evictions: { main: 0, hot: 1 },
      },
      {
        name: 'evicts the oldest main entry while hot holds no more than an eighth of main',
        // main 90, hot 10 (<= 90/8); adding 10 to main makes main 100 and hot 10 <= 12.5.
        before: [
          ['main', 'a', 44],
          ['main', 'b', 44],
          ['hot', 'h', 9],
        ],
        add: ['main', 'c', 9],
        main: ['b', 'c'],
        hot: ['h'],
        evictions: { main: 1, hot: 0 },
      },
      {
        name: 'evicts from main even when the insert went into a small hot cache',
        // main 99, hot 1; adding 2 to hot makes hot 3 <= 99/8.
        before: [
          ['main', 'a', 49],
          ['main', 'b', 48],
          ['hot', 'h', 0],
        ],
        add: ['hot', 'i', 1],
        main: ['b'],
        hot: ['h', 'i'],
        evictions: { main: 1, hot: 0 },
      },
      {
        name: 'switches from hot to main within one add as the ratio changes',
        // main 80, hot 20; adding 15 to main: total 115, hot 20 > 95/8 so h goes;
        // total 105, hot 10 <= 95/8 so a goes; total 65.
        before: [
          ['main', 'a', 39],
          ['main', 'b', 39],
          ['hot', 'h', 9],
          ['hot', 'i', 9],
        ],
        add: ['main', 'c', 14],
        main: ['b', 'c'],
        hot: ['i'],
        evictions: { main: 1, hot: 1 },
      },
    ]
    for (const c of cases) {
      test(c.name, () => {
        const cache = goCache(100)
        for (const [kind, key, size] of c.before) cache.add(kind, key, entry(size))
        assert.equal(
          cache.bytes,
          c.before.reduce((sum, [, , size]) => sum + size + 1, 0),
          'setup must fit',
        )
        assert.equal(cache.main.evictions + cache.hot.evictions, 0, 'setup must not evict')
        const [kind, key, size] = c.add
        cache.add(kind, key, entry(size))
        assert.deepEqual(holds(cache, 'main', all), c.main)
        assert.deepEqual(holds(cache, 'hot', all), c.hot)
        assert.deepEqual({ main: cache.main.evictions, hot: cache.hot.evictions }, c.evictions)
        assert.ok(cache.bytes <= 100)
      })
    }

    test('evicts hot before main even when the new main entry alone overflows main', () => {
      // main 60, hot 40 (> 60/8). Adding 50 to main: Go evicts h (hot 40 > 110/8),
      // then i (hot 20 > 110/8), then a (hot 0): main [b, c], hot [].
      const cache = goCache(100)
      cache.add('main', 'a', entry(29))
      cache.add('main', 'b', entry(29))
      cache.add('hot', 'h', entry(19))
      cache.add('hot', 'i', entry(19))
      cache.add('main', 'c', entry(49))
      assert.deepEqual(holds(cache, 'main', all), ['b', 'c'])
      assert.deepEqual(holds(cache, 'hot', all), [])
      assert.deepEqual({ main: cache.main.evictions, hot: cache.hot.evictions }, { main: 1, hot: 2 })
    })
  })

  test('a cache with maxBytes 0 or less caches nothing', () => {
    for (const maxBytes of [0, -1]) {
      const cache = goCache(maxBytes)
      cache.add('main', 'a', entry(1))
      cache.add('hot', 'b', entry(1))
      assert.equal(cache.get('a', 0), undefined, `maxBytes ${maxBytes}: main`)
      assert.equal(cache.get('b', 0), undefined, `maxBytes ${maxBytes}: hot`)
      assert.equal(cache.bytes, 0)
      assert.deepEqual(cache.stats('main'), { bytes: 0, items: 0, gets: 2, hits: 0, evictions: 0 })
      assert.deepEqual(cache.stats('hot'), { bytes: 0, items: 0, gets: 2, hits: 0, evictions: 0 })
    }
  })

  test('an entry is fresh while now is before expire, and expire 0 never expires', () => {
    const cases: Array<{ expire: number; now: number; hit: boolean }> = [
      { expire: 0, now: 0, hit: true },
      { expire: 0, now: Number.MAX_SAFE_INTEGER, hit: true },
      { expire: 1000, now: 0, hit: true },
      { expire: 1000, now: 999, hit: true },
      { expire: 1000, now: 1000, hit: false },
      { expire: 1000, now: 1001, hit: false },
    ]
    for (const kind of ['main', 'hot'] as const) {
      for (const { expire, now, hit } of cases) {
        const cache = goCache(1000)
        const e = entry(5, expire)
        cache.add(kind, 'k', e)
        const got = cache.get('k', now)
        const label = `${kind} expire ${expire} now ${now}`
        assert.equal(got, hit ? e : undefined, label)
        assert.equal(cache.stats(kind).hits, hit ? 1 : 0, `${label}: hits`)
        assert.equal(cache.stats(kind).items, hit ? 1 : 0, `${label}: items`)
        assert.equal(cache.bytes, hit ? 6 : 0, `${label}: bytes`)
      }
    }
  })

  test('an expired entry is dropped, not hidden: an earlier now still misses', () => {
    const cache = goCache(1000)
    cache.add('main', 'k', entry(5, 1000))
    assert.equal(cache.get('k', 1000), undefined)
    assert.equal(cache.get('k', 1), undefined)
    assert.deepEqual(cache.stats('main'), { bytes: 0, items: 0, gets: 2, hits: 0, evictions: 0 })
  })

  test('an entry past its expiry is still returned until staleUntil, then dropped', () => {
    const cases: Array<{ now: number; got: boolean; stale: boolean }> = [
      { now: 999, got: true, stale: false },
      { now: 1000, got: true, stale: true },
      { now: 2999, got: true, stale: true },
      { now: 3000, got: false, stale: false },
    ]
    for (const kind of ['main', 'hot'] as const) {
      for (const { now, got, stale } of cases) {
        const cache = new Cache(1000)
        const e = entry(5, 1000, 3000)
        cache.add(kind, 'k', e)
        const label = `${kind} now ${now}`
        assert.equal(cache.get('k', now), got ? e : undefined, label)
        assert.equal(isStale(e, now), stale, `${label}: isStale`)
        assert.equal(cache.stats(kind).items, got ? 1 : 0, `${label}: items`)
      }
    }
  })

  test('isStale is false for an entry without expiry, without a window, or past its window', () => {
    assert.equal(isStale(entry(1, 0, 0), 5), false)
    assert.equal(isStale(entry(1, 0, 9), 5), false)
    assert.equal(isStale(entry(1, 3, 0), 5), false)
    assert.equal(isStale(entry(1, 3, 5), 5), false)
    assert.equal(isStale(entry(1, 3, 6), 5), true)
  })

  test('get checks main before hot and does not touch hot on a main hit', () => {
    const cache = goCache(1000)
    const inMain = entry(1)
    const inHot = entry(2)
    cache.add('main', 'k', inMain)
    cache.add('hot', 'k', inHot)
    assert.equal(cache.get('k', 0), inMain)
    assert.deepEqual({ main: [cache.main.gets, cache.main.hits], hot: [cache.hot.gets, cache.hot.hits] }, { main: [1, 1], hot: [0, 0] })
  })

  test('get falls back to hot after a main miss, counting a get in each', () => {
    const cache = goCache(1000)
    const inHot = entry(2)
    cache.add('hot', 'k', inHot)
    assert.equal(cache.get('k', 0), inHot)
    assert.deepEqual({ main: [cache.main.gets, cache.main.hits], hot: [cache.hot.gets, cache.hot.hits] }, { main: [1, 0], hot: [1, 1] })
  })

  test('get falls back to a fresh hot copy when the main copy has expired', () => {
    const cache = goCache(1000)
    const inHot = entry(2, 5000)
    cache.add('main', 'k', entry(1, 100))
    cache.add('hot', 'k', inHot)
    assert.equal(cache.get('k', 200), inHot)
    assert.equal(cache.main.items, 0)
  })

  test('remove drops the key from both caches without counting evictions', () => {
    const cache = goCache(1000)
    cache.add('main', 'k', entry(1))
    cache.add('hot', 'k', entry(1))
    cache.add('main', 'other', entry(1))
    cache.remove('k')
    assert.equal(cache.get('k', 0), undefined)
    assert.deepEqual(cache.stats('main'), { bytes: 6, items: 1, gets: 1, hits: 0, evictions: 0 })
    assert.deepEqual(cache.stats('hot'), { bytes: 0, items: 0, gets: 1, hits: 0, evictions: 0 })
  })

  test('stats returns a snapshot that later activity does not change', () => {
    const cache = goCache(1000)
    cache.add('main', 'k', entry(3))
    const before = cache.stats('main')
    cache.get('k', 0)
    cache.add('main', 'j', entry(3))
    assert.deepEqual(before, { bytes: 4, items: 1, gets: 0, hits: 0, evictions: 0 })
    assert.deepEqual(cache.stats('main'), { bytes: 8, items: 2, gets: 1, hits: 1, evictions: 0 })
  })
})

describe('Entry', () => {
  /** pattern is `size` bytes running through every byte value. */
  const pattern = (size: number): Uint8Array => Uint8Array.from({ length: size }, (_, i) => (i * 7 + 3) % 256)

  test('gives back exactly the bytes it was made from, every byte value, at every size around the string limit', () => {
    for (const size of [0, 1, 255, 256, STRING_VALUE_MAX_BYTES - 1, STRING_VALUE_MAX_BYTES, STRING_VALUE_MAX_BYTES + 1, 70_000]) {
      const bytes = pattern(size)
      const e = new Entry(bytes, 0, 0, 'load')
      assert.equal(e.byteLength, size)
      assert.deepEqual([...e.bytes], [...bytes], `size ${size}`)
      assert.deepEqual([...e.bytes], [...bytes], `size ${size}, read twice`)
      assert.deepEqual([...e.scratchBytes()], [...bytes], `size ${size}, scratchBytes`)
    }
  })

  test('owns its bytes: a view on a larger buffer is copied, and later writes to that buffer do not reach it', () => {
    for (const size of [10, STRING_VALUE_MAX_BYTES, STRING_VALUE_MAX_BYTES + 1, 20_000]) {
      const scratch = Buffer.alloc(64 * 1024, 0xab)
      const view = scratch.subarray(100, 100 + size)
      const e = new Entry(view, 0, 0, 'load')
      scratch.fill(0)
      assert.ok(
        e.bytes.every((b) => b === 0xab),
        `size ${size}: the entry kept its own copy`,
      )
      if (typeof e.data !== 'string') {
        assert.equal(e.data.buffer.byteLength, e.data.byteLength, `size ${size}: the entry keeps only its own bytes`)
        assert.ok(e.data.byteLength < size + 8, `size ${size}: its frame, ${e.data.byteLength} bytes, is the value and its framing`)
      }
    }
  })

  test('holds its value framed as the GetResponse a peer is answered with: a small one as a one-byte string, a large one as bytes', () => {
    for (const [size, expire, staleUntil] of [
      [0, 0, 0],
      [100, 0, 0],
      [100, 1764000000000, 0],
      [STRING_VALUE_MAX_BYTES, 1764000000000, 1764000020000],
      [STRING_VALUE_MAX_BYTES + 1, 0, 0],
      [70_000, 1764000000000, 1764000020000],
    ] as const) {
      const value = pattern(size)
      const e = new Entry(value, expire, 0, 'load', staleUntil)
      const frame = e.frame
      assert.equal(typeof frame === 'string', size <= STRING_VALUE_MAX_BYTES, `size ${size}: held as a string`)
      const bytes = typeof frame === 'string' ? Buffer.from(frame, 'latin1') : frame
      assert.deepEqual(Buffer.from(bytes), Buffer.from(encodeGetResponse({ value, expire, staleUntil })), `size ${size}: the frame`)
      assert.deepEqual([...decodeGetResponse(bytes).value], [...value], `size ${size}: the value`)
    }
    assert.equal(new Entry(pattern(100), 0, 0, 'load').fresh, true)
  })

  test('a copy holds the same frame and value', () => {
    for (const size of [10, STRING_VALUE_MAX_BYTES + 1]) {
      const e = new Entry(pattern(size), 5, 1, 'peer', 9)
      const copy = e.copy()
      assert.equal(copy.frame, e.frame)
      assert.deepEqual([...copy.bytes], [...pattern(size)])
      assert.deepEqual([copy.expire, copy.generation, copy.origin, copy.staleUntil, copy.byteLength], [5, 1, 'peer', 9, size])
    }
  })

  test('bytes of a small value is a fresh copy each time, so a caller writing to it changes nothing', () => {
    const e = new Entry(pattern(50), 0, 0, 'load')
    const first = e.bytes
    first.fill(0)
    assert.deepEqual([...e.bytes], [...pattern(50)])
  })
})

describe('Cache counting', () => {
  test('an entry is counted as its key and value bytes plus ENTRY_OVERHEAD_BYTES', () => {
    const cases: Array<{ key: string; keyBytes: number }> = [
      { key: 'k', keyBytes: 1 },
      { key: 'é', keyBytes: 2 }, // one byte in V8, two in UTF-8: Go's figure, the larger
      { key: '日本', keyBytes: 6 }, // two bytes a character in V8, three in UTF-8
      { key: 'a🔑', keyBytes: 6 }, // five UTF-8 bytes, but V8 holds three two-byte units
    ]
    for (const kind of ['main', 'hot'] as const) {
      for (const { key, keyBytes } of cases) {
        const cache = new Cache(10_000)
        cache.add(kind, key, entry(10))
        assert.equal(cache.stats(kind).bytes, ENTRY_OVERHEAD_BYTES + keyBytes + 10, `${kind} ${key}`)
      }
    }
  })

  test('a value over STRING_VALUE_MAX_BYTES also counts the Uint8Array around it', () => {
    const cache = new Cache(1 << 20)
    cache.add('main', 'k', entry(STRING_VALUE_MAX_BYTES + 1))
    assert.equal(cache.bytes, ENTRY_OVERHEAD_BYTES + 1 + STRING_VALUE_MAX_BYTES + 1 + VIEW_BYTES + BUFFER_BYTES)
  })

  test('many small entries evict sooner: maxBytes holds as many as their counted cost allows, not maxBytes / value bytes', () => {
    const maxBytes = 64 * 1024
    const cache = new Cache(maxBytes)
    for (let i = 0; i < 10_000; i++) cache.add('main', `key${String(i).padStart(5, '0')}`, entry(10))
    const cost = ENTRY_OVERHEAD_BYTES + 8 + 10
    assert.equal(cache.main.items, Math.floor(maxBytes / cost))
    assert.ok(cache.bytes <= maxBytes)
    assert.equal(cache.main.evictions, 10_000 - Math.floor(maxBytes / cost))
  })

  test('a decoded value kept beside the bytes is counted once update is called, and pushes older entries out', () => {
    const cache = new Cache(3 * (ENTRY_OVERHEAD_BYTES + 1 + 10))
    const [a, b, c] = [entry(10), entry(10), entry(10)]
    cache.add('main', 'a', a)
    cache.add('main', 'b', b)
    cache.add('main', 'c', c)
    assert.equal(cache.main.items, 3)
    const value = Object.freeze({ name: 'x'.repeat(150), tags: Object.freeze(['one', 'two']) })
    c.value = value
    c.decoded = true
    cache.update(c)
    const grown = ENTRY_OVERHEAD_BYTES + 1 + 10 + heapBytes(value)
    assert.ok(heapBytes(value) > ENTRY_OVERHEAD_BYTES + 11 && grown <= cache.maxBytes, `the value is counted at ${heapBytes(value)} bytes`)
    assert.equal(cache.main.peek('c')?.size, grown)
    // a went, then b, to make room.
    assert.deepEqual(
      ['a', 'b', 'c'].map((k) => cache.main.peek(k) !== undefined),
      [false, false, true],
    )
    assert.equal(cache.bytes, grown)
  })

  test('an entry added with its decoded value already kept is counted with it', () => {
    const cache = new Cache(1 << 20)
    const e = entry(10)
    e.value = 'v'.repeat(100)
    e.decoded = true
    cache.add('hot', 'k', e)
    assert.equal(cache.bytes, ENTRY_OVERHEAD_BYTES + 1 + 10 + heapBytes(e.value))
  })

  test('update leaves an entry that no cache holds alone', () => {
    const cache = new Cache(1 << 20)
    const e = entry(10)
    e.value = 'v'.repeat(100)
    e.decoded = true
    cache.update(e)
    cache.add('main', 'k', entry(5))
    cache.remove('k')
    cache.update(e)
    assert.equal(cache.bytes, 0)
  })

  test('an entry one cache holds is stored in the other as a copy, counted in each', () => {
    const cache = new Cache(1 << 20)
    const e = entry(10)
    cache.add('main', 'k', e)
    cache.add('hot', 'k', e)
    const hot = cache.hot.peek('k')
    assert.ok(hot !== undefined && hot !== e)
    assert.equal(hot.data, e.data)
    assert.equal(cache.main.peek('k'), e)
    assert.equal(cache.bytes, 2 * (ENTRY_OVERHEAD_BYTES + 1 + 10))
    // Adding the same entry again under its own key is a refresh, not a copy.
    cache.add('main', 'k', e)
    assert.equal(cache.main.peek('k'), e)
    assert.equal(cache.main.items, 1)
  })
})

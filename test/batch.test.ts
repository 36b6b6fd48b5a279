import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  BatchError,
  type BatchItem,
  chunkKeys,
  decodeBatchAnswer,
  decodeBatchKeys,
  encodeBatchAnswer,
  encodeBatchKeys,
  MAX_BATCH_BODY_BYTES,
  MAX_BATCH_KEYS,
} from '../src/batch.js'
import { Entry } from '../src/cache.js'
import { encodeGetResponse, writeVarint } from '../src/wire.js'

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)
const varint = (n: number): Buffer => {
  const out = new Uint8Array(10)
  return Buffer.from(out.subarray(0, writeVarint(out, 0, n)))
}

describe('batch keys', () => {
  test('frame each key as a varint length and its UTF-8 bytes', () => {
    assert.equal(hex(encodeBatchKeys(['ab', '', 'é'])), '02 6162 00 02 c3a9'.replace(/ /g, ''))
  })

  test('round-trip every kind of key, the empty key and long keys included', () => {
    const keys = ['', 'a b', 'a+b', 'a/b', '100%', 'Привет', '😀', 'x'.repeat(4096)]
    assert.deepEqual(decodeBatchKeys(encodeBatchKeys(keys), MAX_BATCH_KEYS), keys)
  })

  test('refuse a truncated frame, bytes that are not UTF-8 and more keys than allowed', () => {
    const cases: Array<[string, Uint8Array, number]> = [
      ['a length past the end', fromHex('05 6162'), 10],
      ['a varint cut short', fromHex('80'), 10],
      ['a varint of 11 bytes', fromHex('ffffffffffffffffffff01'), 10],
      ['bytes that are not UTF-8', fromHex('01 ff'), 10],
      ['an overlong encoding', fromHex('02 c0af'), 10],
      ['one key too many', encodeBatchKeys(['a', 'b', 'c']), 2],
    ]
    for (const [what, bytes, max] of cases) {
      assert.throws(() => decodeBatchKeys(bytes, max), BatchError, what)
    }
  })
})

describe('batch answers', () => {
  const items: BatchItem[] = [
    { key: 'a', value: utf8('value of a'), expire: 1764000000000, generation: 3 },
    { key: '', value: new Uint8Array(0), expire: 0, generation: 0 },
    { key: 'gone', error: 'ERR_GROUPCACHE_NOT_FOUND', message: 'no such user' },
    { key: 'ключ', error: 'ERR_GROUPCACHE_LOAD_FAILED', message: '' },
  ]

  test('round-trip values with expiry and generation, and verdicts with their messages', () => {
    assert.deepEqual(decodeBatchAnswer(encodeBatchAnswer(items)), items)
  })

  test('carry the end of a stale window, so that a batch-fetched copy is served stale like a fetched one', () => {
    const stale: BatchItem = { key: 's', value: utf8('old'), expire: 1764000000000, staleUntil: 1764000020000, generation: 1 }
    assert.deepEqual(decodeBatchAnswer(encodeBatchAnswer([stale])), [stale])
  })

  test("carry each value as Go's GetResponse inside field 2", () => {
    // Item: key = 1 ("k"), response = 2 (0a 01 76: value "v"); framed by its length, 8.
    assert.equal(hex(encodeBatchAnswer([{ key: 'k', value: utf8('v'), expire: 0, generation: 0 }])), '08' + '0a016b' + '12030a0176')
  })

  test('skip unknown fields of every wire type, so later versions may add some', () => {
    // key "k", an unknown varint (field 9), fixed64 (10), bytes (11), fixed32 (12), then the response.
    const item = '0a016b' + '4801' + '510102030405060708' + '5a02ffff' + '6501020304' + '12030a0176'
    const framed = (item.length / 2).toString(16).padStart(2, '0') + item
    assert.deepEqual(decodeBatchAnswer(fromHex(framed)), [{ key: 'k', value: utf8('v'), expire: 0, generation: 0 }])
  })

  test('refuse items without a key, without a value or verdict, or cut short', () => {
    const cases: Array<[string, string]> = [
      ['no key', '05' + '12030a0176'],
      ['neither value nor verdict', '03' + '0a016b'],
      ['a frame past the end', '09' + '0a016b'],
      ['a field past the end', '05' + '0a056b'],
      ['field number 0', '03' + '00016b'],
      ['wire type 3', '03' + '0b016b'],
    ]
    for (const [what, bytes] of cases) {
      assert.throws(() => decodeBatchAnswer(fromHex(bytes)), BatchError, what)
    }
  })

  test('an answer with more items than keys were asked for is malformed, and is not read past that many', () => {
    const tiny: BatchItem = { key: '', error: 'E', message: '' }
    const three = encodeBatchAnswer([tiny, tiny, tiny])
    assert.equal(decodeBatchAnswer(three, 3).length, 3)
    assert.throws(() => decodeBatchAnswer(three, 2), { name: 'BatchError', message: /more than the 2 items asked for/ })
    // Garbage after the bound is never reached: the count refuses first.
    const garbage = Buffer.concat([encodeBatchAnswer([tiny, tiny]), fromHex('7f')])
    assert.throws(() => decodeBatchAnswer(garbage, 1), { name: 'BatchError', message: /items asked for/ })
    assert.throws(() => decodeBatchAnswer(garbage, 2), { name: 'BatchError', message: /past the end|truncated/ })
  })

  test('values are copies that do not keep the whole answer alive', () => {
    const bytes = encodeBatchAnswer(items)
    const [first] = decodeBatchAnswer(bytes)
    assert.ok(first !== undefined && 'value' in first)
    assert.equal(first.value.byteLength, first.value.buffer.byteLength)
  })

  test("write a cached entry's frame as it is: the bytes of the item of the same value, expiry, stale window, rate and generation", () => {
    // Today's item, spelt out: key = 1, response = 2 (Go's GetResponse as a GET answers it), generation = 5 when set.
    const field = (tag: number, bytes: Uint8Array): Buffer => Buffer.concat([Buffer.of(tag), varint(bytes.length), bytes])
    const expected = (
      key: string,
      value: Uint8Array,
      expire: number,
      staleUntil: number,
      generation: number,
      minuteQps?: number,
    ): Buffer => {
      const item = Buffer.concat([
        field(0x0a, utf8(key)),
        field(0x12, encodeGetResponse({ value, expire, staleUntil, minuteQps })),
        generation > 0 ? Buffer.concat([Buffer.of(0x28), varint(generation)]) : Buffer.alloc(0),
      ])
      return Buffer.concat([varint(item.length), item])
    }
    let cases = 0
    // One-byte-string frames (up to 1 KiB) and byte frames; expiries with a fraction of a millisecond, as a clock may give.
    for (const length of [0, 1, 127, 128, 1024, 1025, 20_000]) {
      for (const [expire, staleUntil] of [
        [0, 0],
        [1764000000000.5, 0],
        [1764000000000, 1764000020000],
      ] as const) {
        for (const generation of [0, 1764000000123]) {
          for (const minuteQps of [undefined, 0, 2 / 60]) {
            const value = new Uint8Array(length).map((_, i) => (i * 7 + length) % 256)
            const entry = new Entry(value, expire, generation, 'load', staleUntil)
            const key = `ключ-${length}`
            const framed = encodeBatchAnswer([{ key, frame: entry.frame, generation, minuteQps }])
            const plain = encodeBatchAnswer([{ key, value, expire, staleUntil, generation, minuteQps }])
            const want = expected(key, value, expire, staleUntil, generation, minuteQps)
            assert.equal(hex(framed), hex(want), `${length} bytes, expire ${expire}, generation ${generation}, qps ${minuteQps}`)
            assert.equal(hex(plain), hex(want))
            cases++
          }
        }
      }
    }
    assert.equal(cases, 7 * 3 * 2 * 3)
  })

  test('frame several framed, plain and error items in one answer, as each alone', () => {
    const entry = new Entry(utf8('cached'), 0, 0, 'load')
    const list: Array<Parameters<typeof encodeBatchAnswer>[0][number]> = [
      { key: 'f', frame: entry.frame, generation: 2, minuteQps: 1 },
      items[0] as BatchItem,
      items[2] as BatchItem,
      { key: 'é', frame: new Uint8Array(Buffer.from(entry.frame as string, 'latin1')), generation: 0 },
    ]
    assert.equal(hex(encodeBatchAnswer(list)), list.map((item) => hex(encodeBatchAnswer([item]))).join(''))
    assert.deepEqual(
      decodeBatchAnswer(encodeBatchAnswer(list)).map((item) => ('value' in item ? Buffer.from(item.value).toString() : item.error)),
      ['cached', 'value of a', 'ERR_GROUPCACHE_NOT_FOUND', 'cached'],
    )
  })

  test('leave out the items past the byte bound, but always keep the first', () => {
    const big = (key: string): BatchItem => ({ key, value: new Uint8Array(600), expire: 0, generation: 0 })
    const small: BatchItem = { key: 's', value: utf8('x'), expire: 0, generation: 0 }
    const kept = decodeBatchAnswer(encodeBatchAnswer([big('a'), big('b'), small], 1000)).map((item) => item.key)
    assert.deepEqual(kept, ['a', 's'])
    assert.deepEqual(
      decodeBatchAnswer(encodeBatchAnswer([big('a')], 10)).map((item) => item.key),
      ['a'],
    )
  })
})

describe('chunkKeys', () => {
  test(`cuts at ${MAX_BATCH_KEYS} keys by default`, () => {
    const keys = Array.from({ length: 2500 }, (_, i) => `k${i}`)
    const chunks = chunkKeys(keys)
    assert.deepEqual(
      chunks.map((c) => c.length),
      [1000, 1000, 500],
    )
    assert.deepEqual(chunks.flat(), keys)
  })

  test('cuts so that each chunk frames into at most the byte bound', () => {
    const keys = Array.from({ length: 600 }, (_, i) => `${i}`.padEnd(4000, 'x'))
    const chunks = chunkKeys(keys)
    assert.ok(chunks.length > 1)
    for (const chunk of chunks) assert.ok(encodeBatchKeys(chunk).length <= MAX_BATCH_BODY_BYTES)
    assert.deepEqual(chunks.flat(), keys)
  })

  test('gives a key too long for any chunk a chunk of its own', () => {
    assert.deepEqual(chunkKeys(['a', 'x'.repeat(50), 'b'], 10, 20), [['a'], ['x'.repeat(50)], ['b']])
  })
})

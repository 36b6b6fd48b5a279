import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  ARRAY_BYTES,
  BUFFER_BYTES,
  DICTIONARY_PROPERTIES,
  DICTIONARY_SLOT_BYTES,
  HEAP_NUMBER_BYTES,
  heapBytes,
  isOneByte,
  numberBytes,
  OBJECT_BYTES,
  ownString,
  STRING_HEADER_BYTES,
  stringBytes,
  VIEW_BYTES,
} from '../src/heap.js'

describe('heapBytes', () => {
  test('follows the V8 layout for strings, numbers and plain values', () => {
    const cases: Array<[string, unknown, number]> = [
      ['an empty string', '', STRING_HEADER_BYTES],
      ['a one-byte string, rounded up to 8', 'abc', STRING_HEADER_BYTES + 8],
      ['100 one-byte characters', 'x'.repeat(100), STRING_HEADER_BYTES + 104],
      ['Latin-1 is one byte a character too', 'é'.repeat(8), STRING_HEADER_BYTES + 8],
      ['beyond Latin-1, two bytes a character', 'ж'.repeat(8), STRING_HEADER_BYTES + 16],
      ['a small integer is unboxed', 42, 0],
      ['a double is boxed', 0.5, HEAP_NUMBER_BYTES],
      ['an integer beyond 31 bits is boxed', 2 ** 40, HEAP_NUMBER_BYTES],
      ['true', true, 0],
      ['null', null, 0],
      ['undefined', undefined, 0],
    ]
    for (const [what, value, bytes] of cases) assert.equal(heapBytes(value), bytes, what)
  })

  test('counts objects and arrays with their slots and what they hold', () => {
    const cases: Array<[string, unknown, number]> = [
      ['an empty object has room for four properties', {}, OBJECT_BYTES + 4 * 8],
      ['a record of four', { a: 1, b: 'xy', c: 0.5, d: null }, OBJECT_BYTES + 4 * 8 + (STRING_HEADER_BYTES + 8) + HEAP_NUMBER_BYTES],
      ['six properties add a property store', { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 }, OBJECT_BYTES + 6 * 8 + 16],
      ['an array of small integers', [1, 2, 3], ARRAY_BYTES + 3 * 8],
      ['an array of doubles keeps them unboxed', [0.5, 1.5], ARRAY_BYTES + 2 * 8],
      ['an array of strings', ['ab', 'cd'], ARRAY_BYTES + 2 * 8 + 2 * (STRING_HEADER_BYTES + 8)],
      ['nested', { list: [{}] }, OBJECT_BYTES + 4 * 8 + ARRAY_BYTES + 8 + OBJECT_BYTES + 4 * 8],
    ]
    for (const [what, value, bytes] of cases) assert.equal(heapBytes(value), bytes, what)
  })

  test('counts a hash-table object with its property names', () => {
    const n = DICTIONARY_PROPERTIES + 1
    const value = Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${String(i).padStart(3, '0')}`, i]))
    assert.equal(heapBytes(value), OBJECT_BYTES + n * DICTIONARY_SLOT_BYTES + n * (STRING_HEADER_BYTES + 8))
  })

  test('counts the whole buffer under a view, once, and not at all when it is the shared one', () => {
    const buffer = new ArrayBuffer(1000)
    const view = new Uint8Array(buffer, 10, 20)
    assert.equal(heapBytes(view), VIEW_BYTES + BUFFER_BYTES + 1000, 'a small view keeps its whole buffer')
    assert.equal(
      heapBytes([view, new DataView(buffer)]),
      ARRAY_BYTES + 16 + 2 * VIEW_BYTES + BUFFER_BYTES + 1000,
      'two views of one buffer',
    )
    assert.equal(heapBytes({ body: view }, buffer), OBJECT_BYTES + 4 * 8 + VIEW_BYTES, 'a view of the shared buffer')
  })

  test('terminates on cycles and counts a shared part once', () => {
    const a: Record<string, unknown> = { name: 'a' }
    a.self = a
    const part = { x: 'y'.repeat(50) }
    const partBytes = heapBytes(part)
    assert.equal(heapBytes(a), OBJECT_BYTES + 4 * 8 + STRING_HEADER_BYTES + 8)
    assert.equal(heapBytes([part, part]), ARRAY_BYTES + 2 * 8 + partBytes)
  })

  test('walks values nested deeper than the call stack goes', () => {
    let deep: unknown = 'leaf'
    for (let i = 0; i < 200_000; i++) deep = [deep]
    assert.equal(heapBytes(deep), 200_000 * (ARRAY_BYTES + 8) + STRING_HEADER_BYTES + 8)
  })
})

describe('strings', () => {
  test('isOneByte is true up to U+00FF and stringBytes follows it', () => {
    assert.equal(isOneByte('plain ascii'), true)
    assert.equal(isOneByte('ÿé'), true)
    assert.equal(isOneByte('Ā'), false)
    assert.equal(isOneByte('🔑'), false)
    assert.equal(stringBytes('🔑'), STRING_HEADER_BYTES + 8)
  })

  test('ownString returns an equal string, whatever it holds', () => {
    const big = 'prefix-'.repeat(1000)
    const cases = [
      '',
      'short',
      big.slice(7, 60),
      `${big.slice(0, 20)}+${'tail'.repeat(5)}`,
      'ключ-'.repeat(5),
      'a\ud800b-lone-surrogate',
      '🔑'.repeat(10),
    ]
    for (const s of cases) assert.equal(ownString(s), s, JSON.stringify(s.slice(0, 20)))
  })

  test('numberBytes boxes what is not a 31-bit integer', () => {
    assert.deepEqual([0, -1, 2 ** 31 - 1, -(2 ** 31)].map(numberBytes), [0, 0, 0, 0])
    assert.deepEqual([2 ** 31, 0.1, NaN, Date.now()].map(numberBytes), [
      HEAP_NUMBER_BYTES,
      HEAP_NUMBER_BYTES,
      HEAP_NUMBER_BYTES,
      HEAP_NUMBER_BYTES,
    ])
  })
})

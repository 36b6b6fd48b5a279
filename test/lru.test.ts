import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { LRU } from '../src/lru.js'

interface Item {
  readonly size: number
}

// Costs are key length plus the item's size, so a test can tell whether the
// key was passed to sizeOf.
const sizeOf = (value: Item, key: string): number => key.length + value.size

function counters(lru: LRU<Item>): { gets: number; hits: number; evictions: number; bytes: number; items: number } {
  return { gets: lru.gets, hits: lru.hits, evictions: lru.evictions, bytes: lru.bytes, items: lru.items }
}

describe('LRU', () => {
  test('removeOldest evicts the least recently added entry when none was read', () => {
    const lru = new LRU<Item>(sizeOf)
    lru.add('a', { size: 1 })
    lru.add('b', { size: 1 })
    lru.removeOldest()
    assert.equal(lru.get('a'), undefined)
    assert.deepEqual(lru.get('b'), { size: 1 })
  })

  test('get marks an entry most recently used, so removeOldest evicts the other one', () => {
    const lru = new LRU<Item>(sizeOf)
    const a = { size: 1 }
    const b = { size: 2 }
    lru.add('a', a)
    lru.add('b', b)
    assert.equal(lru.get('a'), a)
    lru.removeOldest()
    assert.equal(lru.get('b'), undefined)
    assert.equal(lru.get('a'), a)
    assert.equal(lru.items, 1)
  })

  test('add of an existing key makes it most recently used', () => {
    const lru = new LRU<Item>(sizeOf)
    lru.add('a', { size: 1 })
    lru.add('b', { size: 1 })
    lru.add('a', { size: 3 })
    lru.removeOldest()
    assert.equal(lru.get('b'), undefined)
    assert.deepEqual(lru.get('a'), { size: 3 })
  })

  test('counts every get, every hit and every removeOldest eviction', () => {
    const lru = new LRU<Item>(sizeOf)
    assert.deepEqual(counters(lru), { gets: 0, hits: 0, evictions: 0, bytes: 0, items: 0 })
    lru.add('a', { size: 1 })
    lru.add('b', { size: 1 })
    lru.add('c', { size: 1 })
    lru.get('a') // hit
    lru.get('a') // hit
    lru.get('zzz') // miss
    lru.removeOldest() // evicts b
    lru.get('b') // miss
    lru.removeOldest() // evicts c
    assert.deepEqual(counters(lru), { gets: 4, hits: 2, evictions: 2, bytes: 2, items: 1 })
  })

  test('removeOldest on an empty cache evicts nothing and counts nothing', () => {
    const lru = new LRU<Item>(sizeOf)
    lru.removeOldest()
    assert.deepEqual(counters(lru), { gets: 0, hits: 0, evictions: 0, bytes: 0, items: 0 })
  })

  test('remove drops an entry without counting an eviction and reports whether it was there', () => {
    const lru = new LRU<Item>(sizeOf)
    lru.add('a', { size: 4 })
    assert.equal(lru.remove('a'), true)
    assert.equal(lru.remove('a'), false)
    assert.equal(lru.remove('never'), false)
    assert.deepEqual(counters(lru), { gets: 0, hits: 0, evictions: 0, bytes: 0, items: 0 })
  })

  test('replacing a value is not counted as an eviction', () => {
    const lru = new LRU<Item>(sizeOf)
    lru.add('a', { size: 4 })
    lru.add('a', { size: 9 })
    assert.equal(lru.evictions, 0)
    assert.equal(lru.items, 1)
  })

  test('bytes and items follow sizeOf, which is given both value and key', () => {
    const seen: Array<[number, string]> = []
    const lru = new LRU<Item>((value, key) => {
      seen.push([value.size, key])
      return key.length + value.size
    })
    const steps: Array<{ op: () => void; bytes: number; items: number }> = [
      { op: () => lru.add('k', { size: 10 }), bytes: 11, items: 1 },
      { op: () => lru.add('key2', { size: 5 }), bytes: 11 + 9, items: 2 },
      { op: () => lru.add('k', { size: 2 }), bytes: 3 + 9, items: 2 },
      { op: () => lru.remove('key2'), bytes: 3, items: 1 },
      { op: () => lru.removeOldest(), bytes: 0, items: 0 },
    ]
    for (const [i, step] of steps.entries()) {
      step.op()
      assert.equal(lru.bytes, step.bytes, `step ${i}: bytes`)
      assert.equal(lru.items, step.items, `step ${i}: items`)
    }
    assert.deepEqual(seen, [
      [10, 'k'],
      [5, 'key2'],
      [2, 'k'],
    ])
  })

  test('expire drops an entry get just returned and counts that get as a miss', () => {
    const lru = new LRU<Item>(sizeOf)
    lru.add('a', { size: 7 })
    assert.deepEqual(lru.get('a'), { size: 7 })
    lru.expire('a')
    assert.deepEqual(counters(lru), { gets: 1, hits: 0, evictions: 0, bytes: 0, items: 0 })
    // Dropped, not hidden: the next get misses too.
    assert.equal(lru.get('a'), undefined)
    assert.deepEqual(counters(lru), { gets: 2, hits: 0, evictions: 0, bytes: 0, items: 0 })
  })

  test('expire of a key that is not held changes nothing', () => {
    const lru = new LRU<Item>(sizeOf)
    lru.add('a', { size: 7 })
    lru.get('a')
    lru.expire('nope')
    assert.deepEqual(counters(lru), { gets: 1, hits: 1, evictions: 0, bytes: 8, items: 1 })
  })

})

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Linked, LRU } from '../src/lru.js'

/** Item is a value an LRU can hold: it carries the LRU's links itself. */
class Item extends Linked {
  constructor(readonly name: string) {
    super()
  }
}

function counters(lru: LRU<Item>): { gets: number; hits: number; evictions: number; bytes: number; items: number } {
  return { gets: lru.gets, hits: lru.hits, evictions: lru.evictions, bytes: lru.bytes, items: lru.items }
}

/** held lists the keys among `keys` that the LRU holds, without reordering it. */
function held(lru: LRU<Item>, keys: string[]): string[] {
  return keys.filter((key) => lru.peek(key) !== undefined)
}

describe('LRU', () => {
  test('removeOldest evicts the least recently added entry when none was read', () => {
    const lru = new LRU<Item>()
    lru.add('a', new Item('a'), 1)
    lru.add('b', new Item('b'), 1)
    lru.removeOldest()
    assert.equal(lru.get('a'), undefined)
    assert.equal(lru.get('b')?.name, 'b')
  })

  test('get marks an entry most recently used, so removeOldest evicts the other one', () => {
    const lru = new LRU<Item>()
    const a = new Item('a')
    const b = new Item('b')
    lru.add('a', a, 1)
    lru.add('b', b, 2)
    assert.equal(lru.get('a'), a)
    lru.removeOldest()
    assert.equal(lru.get('b'), undefined)
    assert.equal(lru.get('a'), a)
    assert.equal(lru.items, 1)
  })

  test('peek returns an entry without counting a get or making it most recently used', () => {
    const lru = new LRU<Item>()
    const a = new Item('a')
    lru.add('a', a, 1)
    lru.add('b', new Item('b'), 1)
    assert.equal(lru.peek('a'), a)
    assert.equal(lru.peek('zzz'), undefined)
    assert.deepEqual(counters(lru), { gets: 0, hits: 0, evictions: 0, bytes: 2, items: 2 })
    lru.removeOldest()
    assert.equal(lru.peek('a'), undefined, 'a stayed the oldest')
  })

  test('add of an existing key makes it most recently used and replaces its value', () => {
    const lru = new LRU<Item>()
    const first = new Item('a1')
    lru.add('a', first, 1)
    lru.add('b', new Item('b'), 1)
    lru.add('a', new Item('a2'), 3)
    assert.equal(first.key, undefined, 'the replaced value is no longer held')
    lru.removeOldest()
    assert.equal(lru.get('b'), undefined)
    assert.equal(lru.get('a')?.name, 'a2')
    assert.equal(lru.bytes, 3)
  })

  test('evicts in least-recently-used order over a long mix of adds, gets and removes', () => {
    const lru = new LRU<Item>()
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`)
    // A model: an array in recency order, oldest first.
    const model: string[] = []
    let seed = 7
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % keys.length
    for (let step = 0; step < 2000; step++) {
      const key = keys[next()] as string
      const op = step % 5
      if (op === 0 || op === 1) {
        lru.add(key, new Item(key), 1)
        model.splice(model.indexOf(key) >>> 0, model.includes(key) ? 1 : 0)
        model.push(key)
      } else if (op === 2) {
        const hit = lru.get(key) !== undefined
        assert.equal(hit, model.includes(key), `step ${step}: get ${key}`)
        if (hit) model.push(...model.splice(model.indexOf(key), 1))
      } else if (op === 3) {
        assert.equal(lru.remove(key), model.includes(key), `step ${step}: remove ${key}`)
        if (model.includes(key)) model.splice(model.indexOf(key), 1)
      } else {
        lru.removeOldest()
        model.shift()
      }
      assert.equal(lru.items, model.length, `step ${step}: items`)
      assert.equal(lru.bytes, model.length, `step ${step}: bytes`)
    }
    // Draining shows the order: each removeOldest takes the model's first.
    const drained: string[] = []
    while (lru.items > 0) {
      const before = held(lru, keys)
      lru.removeOldest()
      drained.push(...before.filter((key) => lru.peek(key) === undefined))
    }
    assert.deepEqual(drained, model)
  })

  test('counts every get, every hit and every removeOldest eviction', () => {
    const lru = new LRU<Item>()
    assert.deepEqual(counters(lru), { gets: 0, hits: 0, evictions: 0, bytes: 0, items: 0 })
    lru.add('a', new Item('a'), 1)
    lru.add('b', new Item('b'), 1)
    lru.add('c', new Item('c'), 1)
    lru.get('a') // hit
    lru.get('a') // hit
    lru.get('zzz') // miss
    lru.removeOldest() // evicts b
    lru.get('b') // miss
    lru.removeOldest() // evicts c
    assert.deepEqual(counters(lru), { gets: 4, hits: 2, evictions: 2, bytes: 1, items: 1 })
  })

  test('removeOldest on an empty cache evicts nothing and counts nothing', () => {
    const lru = new LRU<Item>()
    lru.removeOldest()
    assert.deepEqual(counters(lru), { gets: 0, hits: 0, evictions: 0, bytes: 0, items: 0 })
  })

  test('remove drops an entry without counting an eviction and reports whether it was there', () => {
    const lru = new LRU<Item>()
    lru.add('a', new Item('a'), 4)
    assert.equal(lru.remove('a'), true)
    assert.equal(lru.remove('a'), false)
    assert.equal(lru.remove('never'), false)
    assert.deepEqual(counters(lru), { gets: 0, hits: 0, evictions: 0, bytes: 0, items: 0 })
  })

  test('replacing a value is not counted as an eviction', () => {
    const lru = new LRU<Item>()
    lru.add('a', new Item('a'), 4)
    lru.add('a', new Item('a'), 9)
    assert.equal(lru.evictions, 0)
    assert.equal(lru.items, 1)
  })

  test('bytes and items follow the sizes given to add and resize', () => {
    const lru = new LRU<Item>()
    const k = new Item('k')
    const steps: Array<{ op: () => void; bytes: number; items: number }> = [
      { op: () => lru.add('k', k, 11), bytes: 11, items: 1 },
      { op: () => lru.add('key2', new Item('key2'), 9), bytes: 11 + 9, items: 2 },
      { op: () => lru.add('k', new Item('k'), 3), bytes: 3 + 9, items: 2 },
      { op: () => lru.resize(lru.peek('k') as Item, 30), bytes: 30 + 9, items: 2 },
      { op: () => lru.resize(k, 1000), bytes: 30 + 9, items: 2 }, // k is no longer held: no change
      { op: () => lru.add('k', lru.peek('k') as Item, 5), bytes: 5 + 9, items: 2 }, // the same value again: a resize
      { op: () => lru.remove('key2'), bytes: 5, items: 1 },
      { op: () => lru.removeOldest(), bytes: 0, items: 0 },
    ]
    for (const [i, step] of steps.entries()) {
      step.op()
      assert.equal(lru.bytes, step.bytes, `step ${i}: bytes`)
      assert.equal(lru.items, step.items, `step ${i}: items`)
    }
  })

  test('a value records its key while held and forgets it when removed, evicted or cleared', () => {
    const lru = new LRU<Item>()
    const items = ['a', 'b', 'c'].map((name) => new Item(name))
    for (const item of items) lru.add(item.name, item, 1)
    assert.deepEqual(
      items.map((i) => i.key),
      ['a', 'b', 'c'],
    )
    lru.remove('b')
    lru.removeOldest()
    assert.deepEqual(
      items.map((i) => i.key),
      [undefined, undefined, 'c'],
    )
    lru.clear()
    assert.deepEqual(
      items.map((i) => [i.key, i.newer, i.older, i.size]),
      [
        [undefined, undefined, undefined, 0],
        [undefined, undefined, undefined, 0],
        [undefined, undefined, undefined, 0],
      ],
    )
    assert.deepEqual(counters(lru), { gets: 0, hits: 0, evictions: 1, bytes: 0, items: 0 })
    // A cleared LRU works as a new one.
    lru.add('d', new Item('d'), 2)
    assert.equal(lru.get('d')?.name, 'd')
  })

  test('refuses a value that another key or LRU holds', () => {
    const one = new LRU<Item>()
    const two = new LRU<Item>()
    const item = new Item('x')
    one.add('x', item, 1)
    assert.throws(() => two.add('x', item, 1), /already held/)
    assert.throws(() => one.add('y', item, 1), /already held/)
    assert.equal(one.peek('x'), item)
    assert.equal(two.items + (one.peek('y') === undefined ? 0 : 1), 0)
  })

  test('keeps the first key string of a replaced entry, so that the map and the value agree', () => {
    const lru = new LRU<Item>()
    lru.add('same', new Item('1'), 1)
    const second = new Item('2')
    lru.add(['s', 'a', 'm', 'e'].join(''), second, 1)
    assert.equal(second.key, 'same')
    lru.removeOldest()
    assert.equal(lru.items, 0)
  })

  test('expire drops an entry get just returned and counts that get as a miss', () => {
    const lru = new LRU<Item>()
    lru.add('a', new Item('a'), 8)
    assert.equal(lru.get('a')?.name, 'a')
    lru.expire('a')
    assert.deepEqual(counters(lru), { gets: 1, hits: 0, evictions: 0, bytes: 0, items: 0 })
    // Dropped, not hidden: the next get misses too.
    assert.equal(lru.get('a'), undefined)
    assert.deepEqual(counters(lru), { gets: 2, hits: 0, evictions: 0, bytes: 0, items: 0 })
  })

  test('expire of a key that is not held changes nothing', () => {
    const lru = new LRU<Item>()
    lru.add('a', new Item('a'), 8)
    lru.get('a')
    lru.expire('nope')
    assert.deepEqual(counters(lru), { gets: 1, hits: 1, evictions: 0, bytes: 8, items: 1 })
  })
})

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Deadlines, type Expiring } from '../src/deadlines.js'
import { waitFor } from './helpers/wait.js'

/** item is something due `inMs` from now that records its expiry in `expired`. */
function item(name: string, inMs: number, expired: string[]): Expiring {
  return { deadline: performance.now() + inMs, slot: -1, expire: () => void expired.push(name) }
}

describe('Deadlines', () => {
  test('expires each item once its deadline has passed, and forgets it', async () => {
    const deadlines = new Deadlines()
    const expired: string[] = []
    deadlines.add(item('a', 5, expired))
    deadlines.add(item('b', 10, expired))
    await waitFor('both to expire', () => expired.length === 2)
    assert.deepEqual(expired.sort(), ['a', 'b'])
    assert.equal(deadlines.size, 0)
  })

  test('an item deleted before its deadline never expires', async () => {
    const deadlines = new Deadlines()
    const expired: string[] = []
    const kept = item('kept', 1, expired)
    const deleted = item('deleted', 1, expired)
    deadlines.add(deleted)
    deadlines.delete(deleted)
    deadlines.add(kept)
    await waitFor('the kept item to expire', () => expired.includes('kept'))
    // A later item proves the timer ran past the deleted one's deadline.
    deadlines.add(item('later', 1, expired))
    await waitFor('the later item to expire', () => expired.includes('later'))
    assert.ok(!expired.includes('deleted'))
  })

  test('an item due before the armed timer brings it forward; one due far later waits', async () => {
    const deadlines = new Deadlines()
    const expired: string[] = []
    deadlines.add(item('far', 60_000, expired))
    deadlines.add(item('soon', 5, expired))
    await waitFor('the sooner item to expire', () => expired.includes('soon'))
    assert.deepEqual(expired, ['soon'])
    assert.equal(deadlines.size, 1)
    deadlines.clear()
    assert.equal(deadlines.size, 0)
  })

  test('a deadline moved later (a heartbeat) is honoured: the item expires only after the new one', async () => {
    const deadlines = new Deadlines()
    const expired: string[] = []
    const beating = item('beating', 5, expired)
    deadlines.add(beating)
    beating.deadline = performance.now() + 60_000
    // An item due now proves the timer fired past the first deadline.
    deadlines.add(item('witness', 5, expired))
    await waitFor('the witness to expire', () => expired.includes('witness'))
    assert.deepEqual(expired, ['witness'])
    beating.deadline = performance.now()
    deadlines.add(item('nudge', 0, expired))
    await waitFor('the moved item to expire', () => expired.includes('beating'))
    deadlines.clear()
  })

  test('an item added while others expire is watched too', async () => {
    const deadlines = new Deadlines()
    const expired: string[] = []
    deadlines.add({
      deadline: performance.now() + 1,
      slot: -1,
      expire: () => {
        expired.push('first')
        deadlines.add(item('added on expiry', 5, expired))
      },
    })
    await waitFor('the item added on expiry to expire', () => expired.includes('added on expiry'))
    assert.equal(deadlines.size, 0)
  })

  test('items deleted in any order leave the others watched, each once; a deleted or expired item can be added again', async () => {
    const deadlines = new Deadlines()
    const expired: string[] = []
    const items = ['a', 'b', 'c', 'd', 'e'].map((name) => item(name, 60_000, expired))
    for (const i of items) deadlines.add(i)
    deadlines.add(items[0] as Expiring) // already watched: nothing changes
    for (const i of [items[0], items[3], items[4]] as Expiring[]) deadlines.delete(i)
    deadlines.delete(items[3] as Expiring) // not watched any more: nothing changes
    assert.equal(deadlines.size, 2)
    for (const i of items) i.deadline = performance.now()
    deadlines.add(items[0] as Expiring)
    deadlines.add(item('nudge', 0, expired))
    await waitFor('the watched items to expire', () => expired.length === 4)
    assert.deepEqual(expired.sort(), ['a', 'b', 'c', 'nudge'])
    assert.equal(deadlines.size, 0)
    deadlines.add(items[1] as Expiring)
    await waitFor('an expired item added again to expire again', () => expired.length === 5)
    assert.equal(expired.at(-1), 'b')
  })
})

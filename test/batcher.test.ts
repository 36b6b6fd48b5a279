import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { allAborted, Batcher, shareSignal } from '../src/batcher.js'

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('Batcher', () => {
  test("dispatches what a synchronous loop added, in one call, once the loop's microtasks ran", async () => {
    const calls: number[][] = []
    const batcher = new Batcher<number>((items) => calls.push(items), 100)
    for (let i = 0; i < 5; i++) batcher.add(i, 'microtask')
    assert.deepEqual(calls, [])
    await Promise.resolve()
    assert.deepEqual(calls, [[0, 1, 2, 3, 4]])
  })

  test("'tick' collects items added from separate callbacks of one event-loop turn", async () => {
    const calls: string[][] = []
    const batcher = new Batcher<string>((items) => calls.push(items), 100)
    // Two timers due together run in one turn, as two requests arriving together would.
    await new Promise<void>((resolve) => {
      setTimeout(() => batcher.add('a', 'tick'), 1)
      setTimeout(() => {
        batcher.add('b', 'tick')
        resolve()
      }, 1)
    })
    await tick()
    assert.deepEqual(calls, [['a', 'b']])
  })

  test('a window waits for its time; an item that cannot wait brings the batch forward', async () => {
    const calls: string[][] = []
    const batcher = new Batcher<string>((items) => calls.push(items), 100)
    batcher.add('a', 60_000)
    await tick()
    assert.deepEqual(calls, [], 'the window is still open')
    batcher.add('b', 'microtask')
    await Promise.resolve()
    assert.deepEqual(calls, [['a', 'b']])
    assert.equal(batcher.size, 0)
  })

  test('a window dispatches when it closes', async () => {
    const calls: string[][] = []
    const batcher = new Batcher<string>((items) => calls.push(items), 100)
    batcher.add('a', 5)
    batcher.add('b', 5)
    const deadline = Date.now() + 10_000
    while (calls.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
    assert.deepEqual(calls, [['a', 'b']])
  })

  test('dispatches at once when maxItems are waiting', () => {
    const calls: number[][] = []
    const batcher = new Batcher<number>((items) => calls.push(items), 3)
    for (let i = 0; i < 7; i++) batcher.add(i, 60_000)
    assert.deepEqual(calls, [
      [0, 1, 2],
      [3, 4, 5],
    ])
    batcher.flush()
    assert.deepEqual(calls, [[0, 1, 2], [3, 4, 5], [6]])
  })
})

describe('allAborted', () => {
  test('aborts only once every signal has', () => {
    const a = new AbortController()
    const b = new AbortController()
    const { signal } = allAborted([a.signal, b.signal])
    a.abort()
    assert.equal(signal.aborted, false)
    b.abort()
    assert.equal(signal.aborted, true)
  })

  test('is aborted from the start when every signal already is, and never after release', () => {
    assert.equal(allAborted([AbortSignal.abort()]).signal.aborted, true)
    const a = new AbortController()
    const { signal, release } = allAborted([a.signal])
    release()
    a.abort()
    assert.equal(signal.aborted, false)
  })
})

describe('shareSignal', () => {
  test("follows the caller's signal with one listener, and lets go of it on release", () => {
    const caller = new AbortController()
    const shared = shareSignal(caller.signal)
    const listeners: string[] = []
    for (let i = 0; i < 50; i++) shared.signal?.addEventListener('abort', () => listeners.push('x'))
    caller.abort('why')
    assert.equal(shared.signal?.aborted, true)
    assert.equal(shared.signal?.reason, 'why')
    assert.equal(listeners.length, 50)

    const other = new AbortController()
    const released = shareSignal(other.signal)
    released.release()
    other.abort()
    assert.equal(released.signal?.aborted, false)
    assert.equal(shareSignal(undefined).signal, undefined)
  })
})

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { AbortedError } from '../src/errors.js'
import { Flight, type FlightCall } from '../src/flight.js'
import { type Deferred, deferred } from './helpers/wait.js'

/**
 * held is a flight function that counts its calls, records the signal each
 * call got and returns a promise the test settles by hand.
 */
function held<T>(): {
  fn: (call: FlightCall) => Promise<T>
  calls: Array<{ signal: AbortSignal; result: Deferred<T> }>
} {
  const calls: Array<{ signal: AbortSignal; result: Deferred<T> }> = []
  const fn = (call: FlightCall): Promise<T> => {
    const result = deferred<T>()
    calls.push({ signal: call.signal, result })
    return result.promise
  }
  return { fn, calls }
}

/** ticks lets queued microtasks run (fn starts on a microtask). */
async function ticks(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve()
}

function call<T>(calls: Array<{ signal: AbortSignal; result: Deferred<T> }>, i: number): { signal: AbortSignal; result: Deferred<T> } {
  const c = calls[i]
  assert.ok(c !== undefined, `call ${i} was never made`)
  return c
}

function isAborted(err: unknown): boolean {
  assert.ok(err instanceof AbortedError, `expected an AbortedError, got ${String(err)}`)
  assert.equal(err.code, 'ERR_GROUPCACHE_ABORTED')
  assert.equal(err.name, 'AbortError')
  return true
}

describe('Flight', () => {
  test('concurrent callers of one key share one call and its value', async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    const waiters = [flight.do('k', fn), flight.do('k', fn), flight.do('k', fn)]
    await ticks()
    assert.equal(calls.length, 1)
    assert.equal(flight.size, 1)
    call(calls, 0).result.resolve('v')
    assert.deepEqual(await Promise.all(waiters), ['v', 'v', 'v'])
    assert.equal(calls.length, 1)
    assert.equal(flight.size, 0)
  })

  test('callers of different keys run separate calls', async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    const a = flight.do('a', fn)
    const b = flight.do('b', fn)
    await ticks()
    assert.equal(calls.length, 2)
    assert.equal(flight.size, 2)
    call(calls, 1).result.resolve('for b')
    call(calls, 0).result.resolve('for a')
    assert.deepEqual(await Promise.all([a, b]), ['for a', 'for b'])
  })

  test('a call that settled is forgotten, so the next caller starts a new one', async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    const first = flight.do('k', fn)
    await ticks()
    call(calls, 0).result.resolve('one')
    assert.equal(await first, 'one')
    assert.equal(flight.size, 0)
    const second = flight.do('k', fn)
    await ticks()
    assert.equal(calls.length, 2)
    call(calls, 1).result.resolve('two')
    assert.equal(await second, 'two')
  })

  test('an error is shared by every waiter and not kept for the next caller', async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    const boom = new Error('boom')
    const controller = new AbortController()
    const waiters = [flight.do('k', fn), flight.do('k', fn, controller.signal)]
    await ticks()
    call(calls, 0).result.reject(boom)
    const settled = await Promise.allSettled(waiters)
    assert.deepEqual(settled, [
      { status: 'rejected', reason: boom },
      { status: 'rejected', reason: boom },
    ])
    assert.equal(flight.size, 0)
    const next = flight.do('k', fn)
    await ticks()
    assert.equal(calls.length, 2)
    call(calls, 1).result.resolve('recovered')
    assert.equal(await next, 'recovered')
  })

  test("a caller's abort rejects only that caller; the others still get the value", async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    const leaving = new AbortController()
    const staying = new AbortController()
    const a = flight.do('k', fn, leaving.signal)
    const b = flight.do('k', fn, staying.signal)
    const c = flight.do('k', fn)
    await ticks()
    const reason = new Error('user went away')
    leaving.abort(reason)
    await assert.rejects(a, (err: unknown) => {
      isAborted(err)
      assert.equal((err as AbortedError).cause, reason)
      return true
    })
    const fnSignal = call(calls, 0).signal
    assert.equal(fnSignal.aborted, false)
    assert.equal(flight.size, 1)
    call(calls, 0).result.resolve('v')
    assert.deepEqual(await Promise.all([b, c]), ['v', 'v'])
    assert.equal(calls.length, 1)
  })

  test("fn's signal aborts only when every waiter has left, and the call is then forgotten", async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    const one = new AbortController()
    const two = new AbortController()
    const a = flight.do('k', fn, one.signal)
    const b = flight.do('k', fn, two.signal)
    await ticks()
    const fnSignal = call(calls, 0).signal

    one.abort()
    await assert.rejects(a, isAborted)
    assert.equal(fnSignal.aborted, false)
    assert.equal(flight.size, 1)

    two.abort()
    await assert.rejects(b, isAborted)
    assert.equal(fnSignal.aborted, true)
    assert.ok(fnSignal.reason instanceof AbortedError)
    assert.equal(flight.size, 0)

    // The next caller does not join the dying call.
    const next = flight.do('k', fn)
    await ticks()
    assert.equal(calls.length, 2)
    assert.equal(flight.size, 1)
    call(calls, 1).result.resolve('fresh')
    assert.equal(await next, 'fresh')
  })

  test('a caller that joins after others left keeps the call alive', async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    const one = new AbortController()
    const two = new AbortController()
    const three = new AbortController()
    const a = flight.do('k', fn, one.signal)
    const b = flight.do('k', fn, two.signal)
    await ticks()
    one.abort()
    await assert.rejects(a, isAborted)
    const c = flight.do('k', fn, three.signal)
    two.abort()
    await assert.rejects(b, isAborted)
    assert.equal(call(calls, 0).signal.aborted, false)
    assert.equal(flight.size, 1)
    call(calls, 0).result.resolve('v')
    assert.equal(await c, 'v')
    assert.equal(calls.length, 1)
  })

  test('a caller without a signal never leaves, so the call is not aborted when the others do', async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    const controller = new AbortController()
    const plain = flight.do('k', fn)
    const leaving = flight.do('k', fn, controller.signal)
    await ticks()
    controller.abort()
    await assert.rejects(leaving, isAborted)
    assert.equal(call(calls, 0).signal.aborted, false)
    assert.equal(flight.size, 1)
    call(calls, 0).result.resolve('v')
    assert.equal(await plain, 'v')
  })

  test('an abandoned call that settles later does not drop the call that replaced it', async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    const controller = new AbortController()
    const abandoned = flight.do('k', fn, controller.signal)
    await ticks()
    controller.abort()
    await assert.rejects(abandoned, isAborted)
    const replacement = flight.do('k', fn)
    await ticks()
    assert.equal(calls.length, 2)
    call(calls, 0).result.resolve('stale')
    await ticks()
    assert.equal(flight.size, 1)
    const joiner = flight.do('k', fn)
    await ticks()
    assert.equal(calls.length, 2)
    call(calls, 1).result.resolve('new')
    assert.deepEqual(await Promise.all([replacement, joiner]), ['new', 'new'])
  })

  test('an already-aborted signal rejects at once without starting fn', async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    let started = 0
    const reason = new Error('too late')
    const p = flight.do('k', fn, AbortSignal.abort(reason), () => started++)
    assert.equal(flight.size, 0)
    await assert.rejects(p, (err: unknown) => {
      isAborted(err)
      assert.equal((err as AbortedError).cause, reason)
      return true
    })
    await ticks()
    assert.equal(calls.length, 0)
    assert.equal(started, 0)
  })

  test('an already-aborted signal does not disturb a call in flight for the same key', async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    const controller = new AbortController()
    const live = flight.do('k', fn, controller.signal)
    await ticks()
    await assert.rejects(flight.do('k', fn, AbortSignal.abort()), isAborted)
    assert.equal(call(calls, 0).signal.aborted, false)
    call(calls, 0).result.resolve('v')
    assert.equal(await live, 'v')
  })

  test('started runs once, only for the caller that started the call', async () => {
    const flight = new Flight<string>()
    const { fn, calls } = held<string>()
    const counts = [0, 0, 0]
    const bump = (i: number) => (): void => {
      counts[i] = (counts[i] ?? 0) + 1
    }
    const waiters = [
      flight.do('k', fn, undefined, bump(0)),
      flight.do('k', fn, undefined, bump(1)),
      flight.do('k', fn, new AbortController().signal, bump(2)),
    ]
    assert.deepEqual(counts, [1, 0, 0])
    await ticks()
    call(calls, 0).result.resolve('v')
    await Promise.all(waiters)
    assert.deepEqual(counts, [1, 0, 0])
  })

  test('a fn that throws synchronously becomes a rejection shared by every waiter', async () => {
    const flight = new Flight<string>()
    const boom = new Error('sync boom')
    let calls = 0
    const fn = (): Promise<string> => {
      calls++
      throw boom
    }
    let a: Promise<string> | undefined
    let b: Promise<string> | undefined
    assert.doesNotThrow(() => {
      a = flight.do('k', fn)
      b = flight.do('k', fn, new AbortController().signal)
    })
    assert.ok(a !== undefined && b !== undefined)
    await assert.rejects(a, (err: unknown) => err === boom)
    await assert.rejects(b, (err: unknown) => err === boom)
    assert.equal(calls, 1)
    assert.equal(flight.size, 0)
  })

  test('a caller that asks to go first hears the result before callers that joined earlier', async () => {
    const flight = new Flight<string>()
    const held = deferred<string>()
    const order: string[] = []
    const local = flight.do('k', () => held.promise).then(() => order.push('local'))
    const withSignal = flight.do('k', () => held.promise, new AbortController().signal).then(() => order.push('local with a signal'))
    const peer = flight.do('k', () => held.promise, undefined, undefined, true).then(() => order.push('peer'))
    held.resolve('v')
    await Promise.all([local, withSignal, peer])
    assert.deepEqual(order, ['peer', 'local', 'local with a signal'])
  })

  test('a caller that goes first finishes its work on the result, however many promise hops it takes, before the others hear it', async () => {
    const flight = new Flight<string>()
    const held = deferred<string>()
    const order: string[] = []
    const locals = Array.from({ length: 50 }, () => flight.do('k', () => held.promise).then(() => void order.push('local')))
    // A peer's answer goes through a framework: many hops between the result and the write.
    const peer = flight
      .do('k', () => held.promise, undefined, undefined, true)
      .then(async () => {
        for (let i = 0; i < 50; i++) await Promise.resolve()
        order.push('peer answered')
      })
    held.resolve('v')
    await Promise.all([peer, ...locals])
    assert.equal(order[0], 'peer answered')
    assert.equal(order.length, 51)
  })

  test('a caller that comes while the others have yet to hear the result joins the call instead of starting another', async () => {
    const flight = new Flight<string>()
    const held = deferred<string>()
    let calls = 0
    const fn = (): Promise<string> => (calls++, held.promise)
    const local = flight.do('k', fn)
    let late: Promise<string> | undefined
    const peer = flight.do('k', fn, undefined, undefined, true).then((value) => {
      // The first caller heard; the local one has not yet.
      late = flight.do('k', fn)
      return value
    })
    held.resolve('v')
    assert.deepEqual(await Promise.all([peer, local]), ['v', 'v'])
    assert.equal(await late, 'v')
    assert.equal(calls, 1)
    assert.equal(flight.size, 0)
  })

  test('without a caller that goes first, every caller hears the result in the same round of microtasks', async () => {
    const flight = new Flight<string>()
    const held = deferred<string>()
    let heard = 0
    const callers = Array.from({ length: 3 }, () => flight.do('k', () => held.promise).then(() => void heard++))
    held.resolve('v')
    for (let i = 0; i < 20 && heard < 3; i++) await Promise.resolve()
    assert.equal(heard, 3)
    await Promise.all(callers)
  })

  test('abortAll aborts every call and rejects its callers at once, even when fn ignores its signal', async () => {
    const flight = new Flight<string>()
    const held = deferred<string>()
    let signal: AbortSignal | undefined
    const fn = (c: FlightCall): Promise<string> => ((signal = c.signal), held.promise)
    const callers = [flight.do('k', fn), flight.do('k', fn, new AbortController().signal), flight.do('k', fn, undefined, undefined, true)]
    const closed = new Error('closed')
    flight.abortAll('shutting down', closed)
    for (const caller of callers) await assert.rejects(caller, (err: unknown) => err === closed)
    assert.equal(signal?.aborted, true)
    assert.equal(flight.size, 0, 'the next caller starts afresh')
    held.resolve('too late')
  })

  test('drain waits for, and abortAll rejects, the callers of calls that were forgotten while they waited', async () => {
    const flight = new Flight<string>()
    const never = new Promise<string>(() => {})
    const signals: AbortSignal[] = []
    const fn = (c: FlightCall): Promise<string> => (signals.push(c.signal), never)
    const one = flight.do('one', fn)
    const all = flight.do('all', fn, new AbortController().signal)
    await ticks()
    flight.forget('one')
    flight.forgetAll()
    assert.equal(flight.size, 0)
    let drained = false
    const draining = flight.drain().then(() => {
      drained = true
    })
    await ticks()
    assert.equal(drained, false, 'drain waits for the forgotten calls too')
    const closed = new Error('closed')
    flight.abortAll('shutting down', closed)
    await assert.rejects(one, (err: unknown) => err === closed)
    await assert.rejects(all, (err: unknown) => err === closed)
    await draining
    assert.deepEqual(
      signals.map((s) => s.aborted),
      [true, true],
    )
  })

  test("a call's own listeners hear every caller leave once, and its signal is made only when asked for, aborted if it is late", async () => {
    const flight = new Flight<string>()
    const held = deferred<string>()
    let flightCall: FlightCall | undefined
    const leaving = new AbortController()
    const p = flight.do(
      'k',
      (c) => {
        flightCall = c
        return held.promise
      },
      leaving.signal,
    )
    await ticks()
    assert.ok(flightCall !== undefined)
    const heard: string[] = []
    const removed = (): number => heard.push('removed')
    flightCall.addEventListener('abort', () => heard.push('first'))
    flightCall.addEventListener('abort', removed)
    flightCall.addEventListener('abort', () => heard.push('second'))
    flightCall.removeEventListener('abort', removed)
    assert.equal(flightCall.aborted, false)
    leaving.abort()
    await assert.rejects(p, isAborted)
    assert.deepEqual(heard, ['first', 'second'])
    assert.equal(flightCall.aborted, true)
    assert.ok(flightCall.reason instanceof AbortedError)
    assert.equal(flightCall.isCurrent(), false)
    // Made after the abort, the signal says so at once, with the same reason.
    assert.equal(flightCall.signal.aborted, true)
    assert.equal(flightCall.signal.reason, flightCall.reason)
    flightCall.addEventListener('abort', () => heard.push('late'))
    held.resolve('too late')
    await ticks()
    assert.deepEqual(heard, ['first', 'second'])
  })
})

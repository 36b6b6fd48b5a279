import { AbortedError } from './errors.js'

/**
 * FlightFn is the shared work of one flight, given its FlightCall: the
 * call's abort (when every caller waiting on the flight has left) and
 * whether it is still current.
 */
export type FlightFn<T> = (call: FlightCall) => Promise<T>

/**
 * AbortSource is what of an AbortSignal a flight and the default transport
 * read: an AbortSignal is one, and so is a FlightCall, which is cheaper.
 */
export interface AbortSource {
  readonly aborted: boolean
  readonly reason: unknown
  addEventListener(type: 'abort', listener: () => void): void
  removeEventListener(type: 'abort', listener: () => void): void
}

/**
 * FlightCall is one call of a flight as its work sees it. It aborts only
 * when every caller waiting on the flight has left (or on `abortAll`).
 * `isCurrent()` turns false once the call was forgotten (every caller left,
 * or `forget` was called): its result still reaches the callers already
 * waiting, but it is stale, and a cache must not keep it.
 *
 * It is an AbortSource of its own, and makes a real AbortSignal only when
 * asked for `signal` (a loader's, a custom transport's): on Node 20 an
 * AbortSignal costs microseconds to make, more than the rest of a peer
 * fetch's bookkeeping, and most calls never abort.
 */
export class FlightCall implements AbortSource {
  /** isCurrent says whether the call is still the flight's call for its key. */
  readonly isCurrent: () => boolean
  /**
   * joins counts the callers that ever waited on the call, those that left
   * included; once the call has ended, none can join any more.
   */
  joins = 0
  #aborted = false
  #reason: unknown
  #controller: AbortController | undefined
  #listeners: Array<() => void> | undefined

  constructor(isCurrent: () => boolean) {
    this.isCurrent = isCurrent
  }

  get aborted(): boolean {
    return this.#aborted
  }

  get reason(): unknown {
    return this.#reason
  }

  /** signal is an AbortSignal that aborts with the call, made on first use. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#aborted) this.#controller.abort(this.#reason)
    }
    return this.#controller.signal
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.#aborted) return
    if (this.#listeners === undefined) this.#listeners = [listener]
    else this.#listeners.push(listener)
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const listeners = this.#listeners
    if (listeners === undefined) return
    const i = listeners.indexOf(listener)
    if (i !== -1) listeners.splice(i, 1)
  }

  /** abort aborts the call once: its signal, if made, then its listeners. */
  abort(reason: unknown): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    this.#controller?.abort(reason)
    const listeners = this.#listeners
    this.#listeners = undefined
    if (listeners !== undefined) for (const listener of listeners) listener()
  }
}

interface Call<T> {
  /** early settles first, for callers who go first. */
  readonly early: Promise<T>
  /** promise settles with `early`, or a turn of the event loop later if a caller went first. */
  readonly promise: Promise<T>
  readonly call: FlightCall
  /** stop rejects every caller now, whatever `fn` does later. */
  readonly stop: (err: unknown) => void
  waiters: number
  /** firsts counts the callers that asked to go first. */
  firsts: number
  /** ended is true once the call has its outcome. */
  ended: boolean
}

/**
 * Calls is the table of a flight's calls by key: a Map's methods, over an
 * object without a prototype. A Map that takes and drops a key per call
 * made every young-generation collection keep, and promote, thousands of
 * finished calls with everything they reached (measured: scavenges of 20 ms
 * keeping 8 MB each instead of 1 ms, and a peer fetch 2.5 times slower);
 * an object's own properties, added and deleted, do not.
 */
class Calls<V> {
  #table: Record<string, V> = Object.create(null) as Record<string, V>
  #size = 0

  get size(): number {
    return this.#size
  }

  get(key: string): V | undefined {
    return this.#table[key]
  }

  has(key: string): boolean {
    return key in this.#table
  }

  set(key: string, value: V): void {
    if (!(key in this.#table)) this.#size++
    this.#table[key] = value
  }

  delete(key: string): void {
    if (!(key in this.#table)) return
    this.#size--
    delete this.#table[key]
  }

  clear(): void {
    this.#table = Object.create(null) as Record<string, V>
    this.#size = 0
  }

  values(): V[] {
    return Object.values(this.#table)
  }
}

/**
 * Flight runs at most one call per key at a time and lets every concurrent
 * caller of that key share its result (Go's singleflight).
 *
 * Unlike Go's, a caller may leave early through its own AbortSignal: that
 * rejects only that caller. When the last caller leaves, the call's own signal
 * aborts (so a loader can stop its database query) and the call is forgotten,
 * so the next caller starts fresh instead of joining a dying call.
 */
export class Flight<T> {
  readonly #calls = new Calls<Call<T>>()
  // Calls forgotten (`forget`, `forgetAll`) that have not ended, whose
  // callers still wait: `drain` and `abortAll` must reach them too, or a
  // shutdown would leave them waiting on a `fn` that never ends. A Set is
  // fine here: a call is forgotten only by a remove, set or clear.
  readonly #forgotten = new Set<Call<T>>()

  /** size is the number of calls in flight, for tests and stats. */
  get size(): number {
    return this.#calls.size
  }

  /**
   * do returns the result of the call in flight for `key`, starting `fn` if
   * there is none. `started` tells the caller whether this call started it
   * (to count deduplicated loads). A caller that passes `first` hears the
   * result before the others: a peer waiting on this node's load unblocks a
   * whole crowd of callers on its own node, a local caller only one. When
   * one did, the others hear it a turn of the event loop later (in
   * setImmediate), so that whatever the first callers do with it (answer a
   * peer, through any number of promise hops in a framework) is done before
   * this node's own callers run their code, however many there are.
   */
  do(key: string, fn: FlightFn<T>, signal?: AbortSource, started?: () => void, first = false): Promise<T> {
    if (signal?.aborted) return Promise.reject(new AbortedError(signal.reason))
    let call = this.#calls.get(key)
    if (call === undefined) {
      call = this.#start(key, fn)
      started?.()
    }
    call.waiters++
    call.call.joins++
    if (first) call.firsts++
    const result = first ? call.early : call.promise
    if (signal === undefined) return result
    return this.#wait(key, call, result, signal)
  }

  #start(key: string, fn: FlightFn<T>): Call<T> {
    const flightCall = new FlightCall((): boolean => this.#calls.get(key) === call)
    let resolveEarly!: (value: T) => void
    let rejectEarly!: (err: unknown) => void
    let resolveLate!: (value: T) => void
    let rejectLate!: (err: unknown) => void
    const early = new Promise<T>((resolve, reject) => {
      resolveEarly = resolve
      rejectEarly = reject
    })
    const promise = new Promise<T>((resolve, reject) => {
      resolveLate = resolve
      rejectLate = reject
    })
    let done = false
    const end = (ok: boolean, outcome: unknown): void => {
      if (done) return
      done = true
      call.ended = true
      this.#forgotten.delete(call)
      if (ok) resolveEarly(outcome as T)
      else rejectEarly(outcome)
      const late = ok ? resolveLate : rejectLate
      // Until every caller has heard the outcome, a new caller joins the
      // call and hears it too, rather than starting another: a load or a
      // refresh whose callers have not yet seen its end must not run twice.
      const finish = (): void => {
        if (this.#calls.get(key) === call) this.#calls.delete(key)
        late(outcome as T)
      }
      if (call.firsts > 0) setImmediate(finish)
      else finish()
    }
    const call: Call<T> = { early, promise, call: flightCall, stop: (err) => end(false, err), waiters: 0, firsts: 0, ended: false }
    this.#calls.set(key, call)
    // Started on a microtask, after the caller that starts it has joined;
    // a synchronous throw is a rejection like any other.
    queueMicrotask(() => {
      let result: Promise<T>
      try {
        result = Promise.resolve(fn(flightCall))
      } catch (err) {
        end(false, err)
        return
      }
      result.then(
        (value) => end(true, value),
        (err: unknown) => end(false, err),
      )
    })
    // A call every waiter left still settles; nobody is listening then.
    early.catch(() => {})
    promise.catch(() => {})
    return call
  }

  /**
   * forget detaches the call in flight for `key`, if any: its callers still
   * get its result, but later callers start a new call. This is how a removal
   * makes sure that a load begun before it is neither stored nor joined.
   */
  forget(key: string): void {
    const call = this.#calls.get(key)
    if (call === undefined) return
    this.#calls.delete(key)
    this.#keepForgotten(call)
  }

  /** forgetAll detaches every call in flight, as `forget` does for one. */
  forgetAll(): void {
    for (const call of this.#calls.values()) this.#keepForgotten(call)
    this.#calls.clear()
  }

  #keepForgotten(call: Call<T>): void {
    if (!call.ended && call.waiters > 0) this.#forgotten.add(call)
  }

  /** has says whether a call for `key` is in flight (a new caller would join it). */
  has(key: string): boolean {
    return this.#calls.has(key)
  }

  /**
   * drain waits until the calls in flight now have settled, forgotten ones
   * with callers included, then resolves. It never rejects: their outcome
   * belongs to their callers.
   */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#calls.values(), ...this.#forgotten].map((call) => call.promise))
  }

  /**
   * abortAll aborts the signal of every call in flight and rejects their
   * callers with `error` at once, for a shutdown that cannot wait: a `fn`
   * that ignores its signal no longer keeps anyone waiting, and what it
   * returns later reaches nobody.
   */
  abortAll(reason: unknown, error: unknown = reason): void {
    const calls = [...this.#calls.values(), ...this.#forgotten]
    this.#calls.clear()
    this.#forgotten.clear()
    for (const call of calls) {
      call.call.abort(reason)
      // Every caller at once: no one goes first at a shutdown.
      call.firsts = 0
      call.stop(error)
    }
  }

  #wait(key: string, call: Call<T>, result: Promise<T>, signal: AbortSource): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        reject(new AbortedError(signal.reason))
        this.#leave(key, call)
      }
      signal.addEventListener('abort', onAbort)
      result.then(
        (value) => {
          signal.removeEventListener('abort', onAbort)
          resolve(value)
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort)
          reject(err)
        },
      )
    })
  }

  #leave(key: string, call: Call<T>): void {
    call.waiters--
    if (call.waiters > 0) return
    if (this.#calls.get(key) === call) this.#calls.delete(key)
    this.#forgotten.delete(call)
    call.call.abort(new AbortedError('every caller left'))
  }
}

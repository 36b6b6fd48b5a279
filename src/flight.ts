import { AbortedError } from './errors.js'

/**
 * FlightFn is the shared work of one flight. Its `signal` aborts only when
 * every caller waiting on the flight has left. `isCurrent()` turns false once
 * the call was forgotten (every caller left, or `forget` was called): its
 * result still reaches the callers already waiting, but it is stale, and a
 * cache must not keep it.
 */
export type FlightFn<T> = (signal: AbortSignal, isCurrent: () => boolean) => Promise<T>

interface Call<T> {
  /** early settles a few microtask hops before `promise`, for callers who go first. */
  readonly early: Promise<T>
  readonly promise: Promise<T>
  readonly controller: AbortController
  /** stop rejects every caller now, whatever `fn` does later. */
  readonly stop: (err: unknown) => void
  waiters: number
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
  readonly #calls = new Map<string, Call<T>>()

  /** size is the number of calls in flight, for tests and stats. */
  get size(): number {
    return this.#calls.size
  }

  /**
   * do returns the result of the call in flight for `key`, starting `fn` if
   * there is none. `started` tells the caller whether this call started it
   * (to count deduplicated loads). A caller that passes `first` hears the
   * result before the others: a peer waiting on this node's load unblocks a
   * whole crowd of callers on its own node, a local caller only one.
   */
  do(key: string, fn: FlightFn<T>, signal?: AbortSignal, started?: () => void, first = false): Promise<T> {
    if (signal?.aborted) return Promise.reject(new AbortedError(signal.reason))
    let call = this.#calls.get(key)
    if (call === undefined) {
      call = this.#start(key, fn)
      started?.()
    }
    call.waiters++
    const result = first ? call.early : call.promise
    if (signal === undefined) return result
    return this.#wait(key, call, result, signal)
  }

  #start(key: string, fn: FlightFn<T>): Call<T> {
    const controller = new AbortController()
    // fn may throw synchronously; Promise.resolve().then keeps that a rejection.
    const isCurrent = (): boolean => this.#calls.get(key) === call
    let stop!: (err: unknown) => void
    const early = new Promise<T>((resolve, reject) => {
      stop = reject
      Promise.resolve()
        .then(() => fn(controller.signal, isCurrent))
        .then(resolve, reject)
    })
    const promise = early.finally(() => {
      if (this.#calls.get(key) === call) this.#calls.delete(key)
    })
    const call: Call<T> = { early, promise, controller, stop, waiters: 0 }
    this.#calls.set(key, call)
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
    this.#calls.delete(key)
  }

  /** forgetAll detaches every call in flight, as `forget` does for one. */
  forgetAll(): void {
    this.#calls.clear()
  }

  /** has says whether a call for `key` is in flight (a new caller would join it). */
  has(key: string): boolean {
    return this.#calls.has(key)
  }

  /**
   * drain waits until the calls in flight now have settled, then resolves.
   * It never rejects: their outcome belongs to their callers.
   */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#calls.values()].map((call) => call.promise))
  }

  /**
   * abortAll aborts the signal of every call in flight and rejects their
   * callers with `error` at once, for a shutdown that cannot wait: a `fn`
   * that ignores its signal no longer keeps anyone waiting, and what it
   * returns later reaches nobody.
   */
  abortAll(reason: unknown, error: unknown = reason): void {
    const calls = [...this.#calls.values()]
    this.#calls.clear()
    for (const call of calls) {
      call.controller.abort(reason)
      call.stop(error)
    }
  }

  #wait(key: string, call: Call<T>, result: Promise<T>, signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        reject(new AbortedError(signal.reason))
        this.#leave(key, call)
      }
      signal.addEventListener('abort', onAbort, { once: true })
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
    call.controller.abort(new AbortedError('every caller left'))
  }
}

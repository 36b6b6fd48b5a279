/**
 * Expiring is something with a deadline: a time on the `performance.now()`
 * clock, in ms, which its owner may move later at will (a heartbeat), and
 * what to do once it has passed. `slot` belongs to Deadlines: where it keeps
 * the item, -1 when it does not (start it at -1).
 */
export interface Expiring {
  deadline: number
  slot: number
  expire(): void
}

/**
 * Deadlines runs every deadline of a peer client on one timer, instead of
 * a timer per request: adding and removing one is an array operation, and
 * the timer fires about once per deadline's length while requests come and
 * go (each firing looks at the requests in flight, a few dozen). A deadline
 * moved later needs nothing; one earlier than the timer re-arms it.
 *
 * The items are kept in an array, each knowing its slot, and not in a Set:
 * a Set that takes and drops an item per request made every young-generation
 * collection keep, and promote, thousands of finished requests (measured:
 * scavenges of 18 ms keeping 10 MB each, instead of 1 ms).
 *
 * The timer does not keep the process alive: a request in flight does,
 * through its socket.
 */
export class Deadlines {
  readonly #items: Expiring[] = []
  #timer: NodeJS.Timeout | undefined
  // When the timer fires (Infinity: not armed).
  #armedAt = Infinity

  /** size is the number of deadlines being watched. */
  get size(): number {
    return this.#items.length
  }

  /** add watches `item` until `delete`, or until its deadline passes and it expires. */
  add(item: Expiring): void {
    if (item.slot !== -1) return
    item.slot = this.#items.length
    this.#items.push(item)
    if (item.deadline < this.#armedAt) this.#arm(item.deadline)
  }

  /** delete stops watching `item`; it will not expire. */
  delete(item: Expiring): void {
    const items = this.#items
    const slot = item.slot
    if (slot === -1 || items[slot] !== item) return
    item.slot = -1
    // The last item takes the freed slot; no slot keeps a finished item.
    const last = items.pop() as Expiring
    if (last !== item) {
      items[slot] = last
      last.slot = slot
    }
  }

  /** clear stops watching everything, and the timer. */
  clear(): void {
    for (const item of this.#items) item.slot = -1
    this.#items.length = 0
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#armedAt = Infinity
  }

  #arm(at: number): void {
    clearTimeout(this.#timer)
    this.#armedAt = at
    // Timers fire in whole ms, and may fire a little early by this clock:
    // #fire re-arms for whatever is left.
    this.#timer = setTimeout(this.#fire, Math.max(1, Math.ceil(at - performance.now())))
    this.#timer.unref()
  }

  readonly #fire = (): void => {
    this.#timer = undefined
    this.#armedAt = Infinity
    const now = performance.now()
    const due: Expiring[] = []
    for (const item of this.#items) if (item.deadline <= now) due.push(item)
    for (const item of due) this.delete(item)
    let next = Infinity
    for (const item of this.#items) if (item.deadline < next) next = item.deadline
    if (next < this.#armedAt) this.#arm(next)
    // Last, so that what an expiry does (add, delete) meets a consistent list.
    for (const item of due) item.expire()
  }
}

/**
 * MAX_TIMER_MS is the longest delay `setTimeout` takes (about 24.8 days);
 * a longer one would fire at once. A longer deadline waits this long.
 */
const MAX_TIMER_MS = 2_147_483_647

/**
 * withDeadline runs `run` with a signal that aborts when `signal` does, or
 * when `ms` have passed: then it aborts with the error `timeout()` makes,
 * and the promise rejects with that error at once, whatever `run` does later
 * (its result reaches nobody). One timer, cleared when `run` settles. It is
 * the group's `loadTimeoutMs`: a loader that hangs must not hold its callers
 * (nor its slot) for ever.
 *
 * The timer keeps the process alive while someone waits for the outcome;
 * once `signal` has aborted (every caller left, or a shutdown) it no longer
 * does, and it fires only to end the work.
 */
export function withDeadline<R>(
  ms: number,
  signal: AbortSignal,
  timeout: () => Error,
  run: (signal: AbortSignal) => R | Promise<R>,
): Promise<R> {
  const controller = new AbortController()
  return new Promise<R>((resolve, reject) => {
    const timer = setTimeout(
      () => {
        signal.removeEventListener('abort', onAbort)
        const err = timeout()
        // The callers first: a loader's abort listener must not delay them.
        reject(err)
        controller.abort(err)
      },
      Math.min(Math.max(1, ms), MAX_TIMER_MS),
    )
    const onAbort = (): void => {
      timer.unref()
      controller.abort(signal.reason)
    }
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    const settled = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
    }
    let result: Promise<R>
    try {
      result = Promise.resolve(run(controller.signal))
    } catch (err) {
      settled()
      reject(err)
      return
    }
    result.then(
      (value) => {
        settled()
        resolve(value)
      },
      (err: unknown) => {
        settled()
        reject(err)
      },
    )
  })
}

/**
 * Expiring is something with a deadline: a time on the `performance.now()`
 * clock, in ms, which its owner may move later at will (a heartbeat), and
 * what to do once it has passed.
 */
export interface Expiring {
  deadline: number
  expire(): void
}

/**
 * Deadlines runs every deadline of a peer client on one timer, instead of
 * a timer per request: adding and removing one is a Set operation, and the
 * timer fires about once per deadline's length while requests come and go
 * (each firing looks at the requests in flight, a few dozen). A deadline
 * moved later needs nothing; one earlier than the timer re-arms it.
 *
 * The timer does not keep the process alive: a request in flight does,
 * through its socket.
 */
export class Deadlines {
  readonly #items = new Set<Expiring>()
  #timer: NodeJS.Timeout | undefined
  // When the timer fires (Infinity: not armed).
  #armedAt = Infinity

  /** size is the number of deadlines being watched. */
  get size(): number {
    return this.#items.size
  }

  /** add watches `item` until `delete`, or until its deadline passes and it expires. */
  add(item: Expiring): void {
    this.#items.add(item)
    if (item.deadline < this.#armedAt) this.#arm(item.deadline)
  }

  /** delete stops watching `item`; it will not expire. */
  delete(item: Expiring): void {
    this.#items.delete(item)
  }

  /** clear stops watching everything, and the timer. */
  clear(): void {
    this.#items.clear()
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
    let next = Infinity
    for (const item of this.#items) {
      if (item.deadline <= now) {
        this.#items.delete(item)
        item.expire()
      } else if (item.deadline < next) {
        next = item.deadline
      }
    }
    if (next < this.#armedAt) this.#arm(next)
  }
}

/**
 * RATE_WINDOW_MS is the window a Rate counts over: one minute, as Go's
 * `minute_qps` field says.
 */
export const RATE_WINDOW_MS = 60_000

/** RATE_BYTES is what a Rate costs in memory (measured: 64), counted with the entry that keeps it. */
export const RATE_BYTES = 64

// Counts stay small integers (V8 keeps them unboxed, in the object itself).
const MAX_COUNT = 0x3fffffff

/**
 * Rate is a key's recent request rate, for deciding which keys deserve a hot
 * copy: a count for the current minute and one for the minute before,
 * blended by how far into the current minute it is (a sliding window, the
 * way rate limiters count). Four small integers, no timers and no list of
 * times: cheap enough to keep one in each cache entry that peers ask for.
 */
export class Rate {
  // The window `#count` belongs to (time / RATE_WINDOW_MS), and how far into it the last count came.
  #window: number
  #offset: number
  #count: number
  #previous = 0

  /** A new Rate starts with `count` events at `now` (unix ms). */
  constructor(now: number, count = 0) {
    this.#window = Math.floor(now / RATE_WINDOW_MS)
    this.#offset = Math.floor(now - this.#window * RATE_WINDOW_MS)
    this.#count = Math.min(Math.max(0, Math.round(count)), MAX_COUNT)
  }

  /**
   * of is a rate another node measured (`perSecond`, as it reported it) as
   * of `now`: it then fades as this node's own counts would, over the next
   * window or two, unless renewed.
   */
  static of(perSecond: number, now: number): Rate {
    return new Rate(now, perSecond * (RATE_WINDOW_MS / 1000))
  }

  /** add counts one event at `now`. */
  add(now: number): void {
    this.#roll(now)
    if (this.#count < MAX_COUNT) this.#count++
  }

  /** perSecond is the rate at `now`, in events per second over about the last minute. */
  perSecond(now: number): number {
    const window = Math.floor(now / RATE_WINDOW_MS)
    const into = (now - window * RATE_WINDOW_MS) / RATE_WINDOW_MS
    if (window === this.#window) return this.#blend(into)
    // The current count is the previous window's now; older counts are gone.
    if (window === this.#window + 1) return (this.#count * (1 - into)) / (RATE_WINDOW_MS / 1000)
    return window < this.#window ? this.#blend(0) : 0
  }

  /** lastPerSecond is the rate as of the last event counted (or the time it was made at). */
  get lastPerSecond(): number {
    return this.#blend(this.#offset / RATE_WINDOW_MS)
  }

  #blend(into: number): number {
    return (this.#previous * (1 - into) + this.#count) / (RATE_WINDOW_MS / 1000)
  }

  #roll(now: number): void {
    const window = Math.floor(now / RATE_WINDOW_MS)
    if (window > this.#window) {
      this.#previous = window === this.#window + 1 ? this.#count : 0
      this.#count = 0
      this.#window = window
    }
    // A clock that stepped back counts in the window it has.
    if (window === this.#window) this.#offset = Math.floor(now - window * RATE_WINDOW_MS)
  }
}

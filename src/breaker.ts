/**
 * DEFAULT_BREAKER_FAILURES is how many failures in a row open a peer's
 * circuit: enough that one dropped connection does not, few enough that a
 * dead peer costs only a handful of timeouts.
 */
export const DEFAULT_BREAKER_FAILURES = 3

/**
 * DEFAULT_BREAKER_BACKOFF_MS is how long an open circuit skips its peer
 * before one probe request may try it again. Each failed probe doubles it,
 * up to DEFAULT_BREAKER_MAX_BACKOFF_MS.
 */
export const DEFAULT_BREAKER_BACKOFF_MS = 1_000

/** DEFAULT_BREAKER_MAX_BACKOFF_MS caps the back-off of a peer that stays down. */
export const DEFAULT_BREAKER_MAX_BACKOFF_MS = 30_000

/** BreakerState is where a circuit is: in use, skipped, or on trial. */
export type BreakerState = 'closed' | 'open' | 'half-open'

/** BreakerOptions tune a Breaker; every field has a default. */
export interface BreakerOptions {
  failures?: number | undefined
  backoffMs?: number | undefined
  maxBackoffMs?: number | undefined
  now?: (() => number) | undefined
  /** peer names what the breaker guards, for logs. */
  peer?: string | undefined
  /** onChange hears each opening and each closing, once per transition. */
  onChange?: ((state: 'open' | 'closed', breaker: Breaker) => void) | undefined
}

/**
 * Breaker is a circuit breaker for one peer. A peer that keeps failing is
 * skipped for a back-off period, so that callers stop paying its timeout and
 * load locally at once; then a single request is let through (half-open):
 * if it succeeds the peer is used again, if not the back-off doubles.
 */
export class Breaker {
  /** peer is what the breaker guards, as given. */
  readonly peer: string | undefined
  readonly #threshold: number
  readonly #baseBackoff: number
  readonly #maxBackoff: number
  readonly #now: () => number
  readonly #onChange: ((state: 'open' | 'closed', breaker: Breaker) => void) | undefined
  #failures = 0
  #state: BreakerState = 'closed'
  #openUntil = 0
  #backoff: number
  #probing = false
  #lastError: string | undefined

  constructor(options: BreakerOptions = {}) {
    this.#threshold = options.failures ?? DEFAULT_BREAKER_FAILURES
    this.#baseBackoff = options.backoffMs ?? DEFAULT_BREAKER_BACKOFF_MS
    this.#maxBackoff = options.maxBackoffMs ?? DEFAULT_BREAKER_MAX_BACKOFF_MS
    this.#now = options.now ?? Date.now
    this.#onChange = options.onChange
    this.peer = options.peer
    this.#backoff = this.#baseBackoff
  }

  /** state is the circuit's state now (an open one past its back-off is half-open). */
  get state(): BreakerState {
    if (this.#state === 'open' && this.#now() >= this.#openUntil) return 'half-open'
    return this.#state
  }

  /** failures is the number of failures in a row. */
  get failures(): number {
    return this.#failures
  }

  /** lastError is the message of the last failure, for operators. */
  get lastError(): string | undefined {
    return this.#lastError
  }

  /**
   * allow says whether a request may go to the peer now. In half-open state
   * only one request at a time is let through, as the probe.
   */
  allow(): boolean {
    const state = this.state
    if (state === 'closed') return true
    if (state === 'open' || this.#probing) return false
    this.#state = 'half-open'
    this.#probing = true
    return true
  }

  /** success records an answer: the circuit closes and the back-off resets. */
  success(): void {
    const wasOpen = this.#state !== 'closed'
    this.#failures = 0
    this.#state = 'closed'
    this.#probing = false
    this.#backoff = this.#baseBackoff
    if (wasOpen) this.#onChange?.('closed', this)
  }

  /** failure records a failed request; enough of them open the circuit. */
  failure(message: string): void {
    this.#failures++
    this.#lastError = message
    if (this.#state === 'half-open') {
      this.#probing = false
      this.#backoff = Math.min(this.#backoff * 2, this.#maxBackoff)
      this.#open()
    } else if (this.#failures >= this.#threshold) {
      this.#open()
    }
  }

  /** release gives back a probe that ended without a verdict (the caller gave up). */
  release(): void {
    this.#probing = false
  }

  #open(): void {
    const wasClosed = this.#state === 'closed'
    this.#state = 'open'
    this.#openUntil = this.#now() + this.#backoff
    if (wasClosed) this.#onChange?.('open', this)
  }
}

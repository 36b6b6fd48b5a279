import { setMaxListeners } from 'node:events'

/**
 * BatchTiming says how long a Batcher waits for more items once one came:
 * to the end of this round of microtasks (`'microtask'`: everything a
 * synchronous loop started), to the end of this turn of the event loop
 * (`'tick'`: everything that arrived in the same I/O phase, say several peer
 * requests), or a number of milliseconds.
 */
export type BatchTiming = 'microtask' | 'tick' | number

/**
 * Batcher collects items that arrive close together and hands them to
 * `dispatch` in one call, so that many keys can share one request or one
 * loader call. An item asking for a shorter wait brings the whole batch
 * forward; `maxItems` items are dispatched at once.
 */
export class Batcher<I> {
  readonly #dispatch: (items: I[]) => void
  readonly #maxItems: number
  #items: I[] = []
  #microtask = false
  #immediate: NodeJS.Immediate | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(dispatch: (items: I[]) => void, maxItems: number) {
    this.#dispatch = dispatch
    this.#maxItems = maxItems
  }

  /** size is the number of items waiting. */
  get size(): number {
    return this.#items.length
  }

  /** add queues an item, to be dispatched no later than `timing` says. */
  add(item: I, timing: BatchTiming): void {
    this.#items.push(item)
    if (this.#items.length >= this.#maxItems) {
      this.flush()
      return
    }
    if (timing === 'microtask') {
      if (this.#microtask) return
      this.#microtask = true
      queueMicrotask(() => {
        this.#microtask = false
        this.flush()
      })
    } else if (timing === 'tick' || timing <= 0) {
      this.#immediate ??= setImmediate(() => {
        this.#immediate = undefined
        this.flush()
      })
    } else {
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined
        this.flush()
      }, timing)
    }
  }

  /** flush dispatches every waiting item now. */
  flush(): void {
    if (this.#immediate !== undefined) {
      clearImmediate(this.#immediate)
      this.#immediate = undefined
    }
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    if (this.#items.length === 0) return
    const items = this.#items
    this.#items = []
    this.#dispatch(items)
  }
}

/**
 * allAborted returns a signal that aborts once every one of `signals` has:
 * a request made for several callers must go on while any of them waits.
 * `release` detaches it from them once the request is over.
 */
export function allAborted(signals: readonly AbortSignal[]): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController()
  let left = signals.length
  const onAbort = (): void => {
    left--
    if (left === 0) controller.abort(signals[0]?.reason)
  }
  for (const signal of signals) {
    if (signal.aborted) left--
    else signal.addEventListener('abort', onAbort, { once: true })
  }
  if (left === 0) controller.abort(signals[0]?.reason)
  const release = (): void => {
    for (const signal of signals) signal.removeEventListener('abort', onAbort)
  }
  return { signal: controller.signal, release }
}

/**
 * shareSignal gives many waiters one signal to listen to in place of a
 * caller's: one listener on the caller's signal however many keys wait on
 * it (the platform warns past ten), and none left once `release` is called,
 * even if the caller keeps that signal for a long time.
 */
export function shareSignal(signal: AbortSignal | undefined): { signal: AbortSignal | undefined; release: () => void } {
  if (signal === undefined) return { signal, release: () => {} }
  const controller = new AbortController()
  setMaxListeners(0, controller.signal)
  const onAbort = (): void => controller.abort(signal.reason)
  if (signal.aborted) onAbort()
  else signal.addEventListener('abort', onAbort, { once: true })
  return { signal: controller.signal, release: () => signal.removeEventListener('abort', onAbort) }
}

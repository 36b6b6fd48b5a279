// Waiting without guessing how fast the machine is: a condition polled until
// it holds (with a deadline that only bounds a broken test), and a promise
// the test settles by hand. Tests never sleep to let something happen, and
// never assert how long something took: CI is a busy 2-core machine.

/** WAIT_TIMEOUT_MS is how long waitFor polls by default: far longer than any condition needs, so only a bug reaches it. */
export const WAIT_TIMEOUT_MS = 20_000
const POLL_MS = 5
/**
 * PEER_TIMEOUT_MS is the peerTimeoutMs of the nodes the tests run, unless a
 * test sets its own: with three nodes in one process on the busy shared
 * machine, peer fetches outlived the default 10 s, and a test that counts
 * loads or peer errors must see a timeout only where it means one.
 */
export const PEER_TIMEOUT_MS = 60_000
/**
 * ANSWER_TIMEOUT_MS is how long a test waits for one answer (an HTTP
 * request, an IPC call): far longer than one takes on a busy machine, and
 * than PEER_TIMEOUT_MS, so only a lost answer reaches it.
 */
export const ANSWER_TIMEOUT_MS = 120_000

/**
 * waitFor polls `check` (sync or async) until it returns true, and rejects,
 * naming `what`, when it has not after `timeoutMs`. The deadline is a guard
 * against a hang, not an assertion about speed: give it room.
 */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = WAIT_TIMEOUT_MS): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
}

/** Deferred is a promise with its resolve and reject exposed. */
export interface Deferred<T> {
  readonly promise: Promise<T>
  resolve(value: T): void
  reject(err: unknown): void
}

/** deferred makes a Deferred, to hold a loader (or anything) until the test lets it go. */
export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

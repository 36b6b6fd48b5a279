import type { BreakerState } from './breaker.js'
import { PeerError } from './errors.js'
import { type AbortSource, FlightCall } from './flight.js'
import type { GroupPeers, PeerValue } from './group.js'
import { Ring } from './ring.js'

/**
 * PeerTransport fetches a key's value from its owner. The default speaks
 * HTTP to Go-compatible peers; tests may inject their own. It rejects with a
 * PeerError when the owner could not answer (the caller then loads locally)
 * and with the owner's own GroupcacheError (not found, load failed) when it
 * answered with a verdict.
 */
export interface PeerTransport {
  /**
   * fetch asks the owner for a key. `generation` is this node's generation of
   * the group (0 until a `clear()`); the answer carries the owner's.
   * `headers`, when given, go along with the request (trace propagation).
   * `refresh` says this node holds a stale copy: the owner may hold the
   * answer until its own refresh of the key ends (see REFRESH_HEADER).
   * `accept`, when given, is called with the value before the answer counts
   * as a success; if it throws (the value cannot be decoded), the answer is
   * the peer's failure, a PeerError.
   */
  fetch(
    peer: string,
    group: string,
    key: string,
    signal: AbortSignal,
    generation?: number,
    headers?: Record<string, string>,
    refresh?: boolean,
    accept?: (value: Uint8Array) => void,
  ): Promise<PeerValue>
  /**
   * fetchMany asks the owner for several keys at once and answers each key
   * with its value or its error (a PeerError for a key the owner could not
   * answer, the owner's verdict otherwise). Without it, keys are fetched one
   * by one.
   */
  fetchMany?(
    peer: string,
    group: string,
    keys: readonly string[],
    signal: AbortSignal,
    generation?: number,
  ): Promise<Map<string, PeerValue | Error>>
  /** remove drops a key from a peer's caches (`DELETE`). */
  remove?(peer: string, group: string, key: string): Promise<void>
  /** set stores a value in a peer's main cache (`PUT`); `staleUntil` ends its stale window (0: none). */
  set?(peer: string, group: string, key: string, value: Uint8Array, expire: number, staleUntil?: number): Promise<void>
  /** clear moves a peer's group to `generation`, dropping older entries. */
  clear?(peer: string, group: string, generation: number): Promise<void>
  /** setPeers opens what is needed for a new peer list and drops the rest. */
  setPeers?(peers: readonly string[]): void
  /** health reports what the transport knows of each peer. */
  health?(): PeerHealth[]
  /** close ends every connection, after at most `graceMs` for requests in flight. */
  close?(graceMs?: number): Promise<void>
}

/**
 * takesAbortSource marks a transport whose `fetch` reads of its signal only
 * what an AbortSource has (the default transport): it is handed a flight's
 * call as it is, and no AbortSignal is made for the fetch.
 */
export const takesAbortSource: unique symbol = Symbol('groupcache.takesAbortSource')

/** PeerHealth is what a node knows of one peer's health. */
export interface PeerHealth {
  peer: string
  state: BreakerState
  /** failures counts failed requests in a row. */
  failures: number
  lastError: string | undefined
}

/**
 * Peers is a node's view of the other nodes, as its groups use it: the ring
 * that names each key's owner, and the transport that reaches the owner.
 * Replacing the peer list swaps the ring whole, so a lookup never sees half
 * of an update; loads in flight finish where they started.
 */
export class Peers implements GroupPeers {
  readonly self: string
  readonly #replicas: number
  readonly #transport: PeerTransport
  readonly #takesAbortSource: boolean
  #ring: Ring

  constructor(self: string, list: readonly string[], replicas: number, transport: PeerTransport) {
    this.self = self
    this.#replicas = replicas
    this.#transport = transport
    this.#takesAbortSource = (transport as { [takesAbortSource]?: unknown })[takesAbortSource] === true
    this.#ring = new Ring(list, replicas)
    transport.setPeers?.(list.filter((p) => p !== self))
  }

  /** list is every node, this one included, in the order given. */
  get list(): readonly string[] {
    return this.#ring.peers
  }

  /** ownerOf returns the peer that owns `key` on the ring. */
  ownerOf(key: string): string | undefined {
    return this.#ring.owner(key)
  }

  /** replace moves to a new peer list (already checked), as Go's `Set` does. */
  replace(list: readonly string[]): void {
    this.#ring = new Ring(list, this.#replicas)
    this.#transport.setPeers?.(list.filter((p) => p !== this.self))
  }

  fetch(
    peer: string,
    group: string,
    key: string,
    signal: AbortSource,
    generation: number,
    headers?: Record<string, string>,
    refresh?: boolean,
    accept?: (value: Uint8Array) => void,
  ): Promise<PeerValue> {
    // Any other transport gets a real AbortSignal, as its interface says.
    const given = this.#takesAbortSource || !(signal instanceof FlightCall) ? (signal as AbortSignal) : signal.signal
    return this.#transport.fetch(peer, group, key, given, generation, headers, refresh, accept)
  }

  fetchMany(
    peer: string,
    group: string,
    keys: readonly string[],
    signal: AbortSignal,
    generation: number,
  ): Promise<Map<string, PeerValue | Error>> {
    return (
      this.#transport.fetchMany?.(peer, group, keys, signal, generation) ??
      fetchEach(this.#transport, peer, group, keys, signal, generation)
    )
  }

  remove(peer: string, group: string, key: string): Promise<void> {
    return this.#call('remove', peer, (t) => t.remove?.(peer, group, key))
  }

  set(peer: string, group: string, key: string, value: Uint8Array, expire: number, staleUntil: number): Promise<void> {
    return this.#call('set', peer, (t) => t.set?.(peer, group, key, value, expire, staleUntil))
  }

  clear(peer: string, group: string, generation: number): Promise<void> {
    return this.#call('clear', peer, (t) => t.clear?.(peer, group, generation))
  }

  /** health reports what the transport knows of each peer (circuit state, last error). */
  health(): PeerHealth[] {
    return this.#transport.health?.() ?? []
  }

  /** close ends the transport's connections, after at most `graceMs` for requests in flight. */
  async close(graceMs: number): Promise<void> {
    await this.#transport.close?.(graceMs)
  }

  /** call runs an optional transport operation, refusing if the transport lacks it. */
  async #call(what: string, peer: string, op: (t: PeerTransport) => Promise<void> | undefined): Promise<void> {
    const pending = op(this.#transport)
    if (pending === undefined) throw new PeerError(peer, `the transport cannot ${what} on peers`)
    await pending
  }
}

/**
 * fetchEach is fetchMany for a transport without one: one fetch per key, at
 * once, each key answered with its value or its error.
 */
async function fetchEach(
  transport: PeerTransport,
  peer: string,
  group: string,
  keys: readonly string[],
  signal: AbortSignal,
  generation: number,
): Promise<Map<string, PeerValue | Error>> {
  const answers = new Map<string, PeerValue | Error>()
  await Promise.all(
    keys.map((key) =>
      transport.fetch(peer, group, key, signal, generation).then(
        (value) => void answers.set(key, value),
        (err: unknown) => void answers.set(key, err instanceof Error ? err : new PeerError(peer, String(err))),
      ),
    ),
  )
  return answers
}

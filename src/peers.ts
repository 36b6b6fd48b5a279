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
   * answer, the owner's verdict otherwise). `headers`, when given, go along
   * with each request, as `fetch`'s do. Without it, keys are fetched one by
   * one.
   */
  fetchMany?(
    peer: string,
    group: string,
    keys: readonly string[],
    signal: AbortSignal,
    generation?: number,
    headers?: Record<string, string>,
  ): Promise<Map<string, PeerValue | Error>>
  /** remove drops a key from a peer's caches (`DELETE`). */
  remove?(peer: string, group: string, key: string): Promise<void>
  /** set stores a value in a peer's main cache (`PUT`); `staleUntil` ends its stale window (0: none). */
  set?(peer: string, group: string, key: string, value: Uint8Array, expire: number, staleUntil?: number): Promise<void>
  /** clear moves a peer's group to `generation`, dropping older entries. */
  clear?(peer: string, group: string, generation: number): Promise<void>
  /**
   * peek asks a peer for its cached copy of a key, within `timeoutMs`; it
   * resolves to undefined on a miss or any failure, and never asks a peer
   * that has not shown our protocol marker.
   */
  peek?(peer: string, group: string, key: string, generation: number, timeoutMs: number): Promise<PeerValue | undefined>
  /**
   * peekMany is `peek` for several keys in one request, within `timeoutMs`;
   * it resolves to the copies the peer had, and never rejects. Without it,
   * keys are peeked at one by one.
   */
  peekMany?(peer: string, group: string, keys: readonly string[], generation: number, timeoutMs: number): Promise<Map<string, PeerValue>>
  /** handoff sends a peer entries to store (a hand-off body, see handoff.ts). */
  handoff?(peer: string, group: string, body: Uint8Array, generation: number, signal: AbortSignal): Promise<void>
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

/** MAX_PREVIOUS_RINGS bounds the rings kept for peeks, whatever the churn. */
const MAX_PREVIOUS_RINGS = 8

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
  readonly #handoffMs: number
  readonly #peekTimeoutMs: number
  readonly #now: () => number
  #ring: Ring
  #others: Ring | undefined
  // The ring without one peer, for the last peer asked (see ownerWithout).
  #without: { peer: string; ring: Ring } | undefined
  // The rings before each change, newest first, each kept for `handoffMs`
  // so that a new owner can peek at a moved key's previous owner before
  // loading it. At start, the ring without this node: its keys were the
  // others' until now. Several, because changes come in a row during a
  // rolling deploy, and the node that held a key may be two changes back.
  #previous: Array<{ ring: Ring; until: number }> = []

  constructor(
    self: string,
    list: readonly string[],
    replicas: number,
    transport: PeerTransport,
    handoff: { handoffMs: number; peekTimeoutMs: number; now: () => number } = { handoffMs: 0, peekTimeoutMs: 0, now: Date.now },
  ) {
    this.self = self
    this.#replicas = replicas
    this.#transport = transport
    this.#takesAbortSource = (transport as { [takesAbortSource]?: unknown })[takesAbortSource] === true
    this.#handoffMs = handoff.handoffMs
    this.#peekTimeoutMs = handoff.peekTimeoutMs
    this.#now = handoff.now
    this.#ring = new Ring(list, replicas)
    this.#keepPrevious(this.#withoutSelf())
    this.#reach()
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
    this.#keepPrevious(this.#ring)
    this.#ring = new Ring(list, this.#replicas)
    this.#others = undefined
    this.#without = undefined
    this.#expire(this.#now())
    this.#reach()
  }

  /**
   * previousOwnerOf names the node that owned `key` before a change of the
   * ring (or before this node started) at most `handoffMs` ago, if that is
   * another node; else undefined. The newest such owner, even one that has
   * left the list since: a node that leaves keeps serving while the others
   * drop it (in Kubernetes, while DNS forgets it), and then hands over
   * whatever it was not asked for; once it is gone, a peek at it fails at
   * once and the key loads.
   */
  previousOwnerOf(key: string): string | undefined {
    const previous = this.#previous
    if (previous.length === 0) return undefined
    if (this.#expire(this.#now())) this.#reach()
    for (const { ring } of previous) {
      const owner = ring.owner(key)
      if (owner !== undefined && owner !== this.self) return owner
    }
    return undefined
  }

  /** peeks is false when peeks are off (`handoffMs: 0`). */
  get peeks(): boolean {
    return this.#handoffMs > 0
  }

  /** nextOwnerOf names the owner of `key` on the ring without this node: its heir. */
  nextOwnerOf(key: string): string | undefined {
    return this.#withoutSelf().owner(key)
  }

  /**
   * ownerWithout names the owner of `key` on the ring without `peer`: the
   * node its keys go to when it leaves. One such ring is kept (usually one
   * peer at a time is unreachable), rebuilt when asked about another.
   */
  ownerWithout(key: string, peer: string): string | undefined {
    if (peer === this.self) return this.nextOwnerOf(key)
    let without = this.#without
    if (without?.peer !== peer) {
      without = {
        peer,
        ring: new Ring(
          this.#ring.peers.filter((p) => p !== peer),
          this.#replicas,
        ),
      }
      this.#without = without
    }
    return without.ring.owner(key)
  }

  async peekMany(peer: string, group: string, keys: readonly string[], generation: number): Promise<Map<string, PeerValue>> {
    const transport = this.#transport
    const timeoutMs = this.#peekTimeoutMs
    if (keys.length > 1 && transport.peekMany !== undefined) return transport.peekMany(peer, group, keys, generation, timeoutMs)
    const found = new Map<string, PeerValue>()
    const peek = transport.peek
    if (peek === undefined) return found
    await Promise.all(
      keys.map(async (key) => {
        const value = await peek.call(transport, peer, group, key, generation, timeoutMs).catch(() => undefined)
        if (value !== undefined) found.set(key, value)
      }),
    )
    return found
  }

  handoff(peer: string, group: string, body: Uint8Array, generation: number, signal: AbortSignal): Promise<void> {
    return this.#call('hand entries over', peer, (t) => t.handoff?.(peer, group, body, generation, signal))
  }

  #withoutSelf(): Ring {
    this.#others ??= new Ring(
      this.#ring.peers.filter((p) => p !== this.self),
      this.#replicas,
    )
    return this.#others
  }

  /** expire drops the previous rings older than `handoffMs`; true if it dropped any. */
  #expire(now: number): boolean {
    const previous = this.#previous
    const before = previous.length
    while (previous.length > 0 && now >= (previous.at(-1) as { until: number }).until) previous.pop()
    return previous.length < before
  }

  /**
   * reach tells the transport which peers to keep connections to: the list,
   * and the peers of the previous rings kept for peeks (those that left
   * lately), this node excluded.
   */
  #reach(): void {
    const reachable = new Set(this.#ring.peers)
    for (const { ring } of this.#previous) for (const peer of ring.peers) reachable.add(peer)
    reachable.delete(this.self)
    this.#transport.setPeers?.([...reachable])
  }

  #keepPrevious(ring: Ring): void {
    if (this.#handoffMs <= 0) return
    this.#previous.unshift({ ring, until: this.#now() + this.#handoffMs })
    if (this.#previous.length > MAX_PREVIOUS_RINGS) this.#previous.pop()
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

  /**
   * fetchMany asks a transport's `fetchMany`, or its `fetch` once per key.
   * It is async, whatever the transport's method is: a group calls it from
   * a batch's timer or microtask, where a custom transport's synchronous
   * throw (or an answer that is no promise) would end the process and
   * leave the batch's callers waiting; here it is a rejection.
   */
  async fetchMany(
    peer: string,
    group: string,
    keys: readonly string[],
    signal: AbortSignal,
    generation: number,
    headers?: Record<string, string>,
  ): Promise<Map<string, PeerValue | Error>> {
    return await (this.#transport.fetchMany?.(peer, group, keys, signal, generation, headers) ??
      fetchEach(this.#transport, peer, group, keys, signal, generation, headers))
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
    const list = this.#ring.peers
    return (this.#transport.health?.() ?? []).filter((h) => list.includes(h.peer))
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
  headers: Record<string, string> | undefined,
): Promise<Map<string, PeerValue | Error>> {
  const answers = new Map<string, PeerValue | Error>()
  await Promise.all(
    keys.map((key) =>
      transport.fetch(peer, group, key, signal, generation, headers).then(
        (value) => void answers.set(key, value),
        (err: unknown) => void answers.set(key, err instanceof Error ? err : new PeerError(peer, String(err))),
      ),
    ),
  )
  return answers
}

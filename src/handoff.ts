import { decodeGetResponse, encodeGetResponse } from './wire.js'

// Keeping the cache through membership changes: a new owner peeks at a key's
// previous owner before loading it, and a leaving node hands its entries to
// their next owners. Both speak only to peers that showed our protocol
// marker: a Go peer would answer a peek as a get (loading the key).

/**
 * DEFAULT_HANDOFF_MS is how long a node keeps the previous ring after a
 * change of its peer list (or after it started) and peeks at a moved key's
 * previous owner before loading it: long enough for a rolling deploy to
 * settle, short enough that a key's old owner has not evicted it yet.
 */
export const DEFAULT_HANDOFF_MS = 60_000

/**
 * DEFAULT_PEEK_TIMEOUT_MS bounds one peek (or one batch of peeks). A peer
 * answers a peek from memory in a millisecond or two, but the process of a
 * busy app may not get to the request for a long while, and a peek that
 * times out costs the very load it was to save: on 2 cores at a load of
 * about 10, a rolling restart of 3 nodes (test/soak/rolling.ts) loaded
 * 5-13 % of its keys again with 250 ms, about 2 % with 500 ms or more. A
 * peer that is gone refuses at once; one that is stuck costs this much per
 * batch of misses, and none once its circuit opens.
 */
export const DEFAULT_PEEK_TIMEOUT_MS = 500

/**
 * CHANGE_GUARD_MS is how long a key removed or set on this node (`remove`,
 * `set`, or a peer's `DELETE`/`PUT`) is neither peeked at nor taken from a
 * hand-off: a copy another node held may predate the change, and the change
 * may not have reached that node yet (it travels to every peer at once, each
 * within the peer timeout) or the copy may be in flight (a hand-off snapshot
 * travels for at most MAX_HANDOFF_AGE_MS). Such keys load instead.
 */
export const CHANGE_GUARD_MS = 60_000

/**
 * MAX_HANDOFF_AGE_MS bounds how long after its snapshot a leaving node still
 * sends a hand-off, well within CHANGE_GUARD_MS, so that a receiver's
 * record of a change outlives every snapshot that could predate it.
 */
export const MAX_HANDOFF_AGE_MS = CHANGE_GUARD_MS / 2

/**
 * MAX_GUARDED_KEY_BYTES bounds what a group spends on remembering changed
 * keys (their UTF-8 bytes plus GUARD_OVERHEAD_BYTES each). Past it, the
 * group forgets them and guards every key instead for CHANGE_GUARD_MS: fewer
 * keys are taken from peers, never an older copy.
 */
export const MAX_GUARDED_KEY_BYTES = 1024 * 1024

/** GUARD_OVERHEAD_BYTES is what one remembered key costs beyond its bytes (a Map entry). */
const GUARD_OVERHEAD_BYTES = 64

/**
 * PEEK_HEADER on a `GET {group}/{key}` asks for the owner's cached copy
 * only: the peer answers 200 from its main cache or 404, and never loads or
 * forwards.
 */
export const PEEK_HEADER = 'x-groupcache-peek'

/** HANDOFF_TYPE is the content type of a hand-off body (`PUT {group}`). */
export const HANDOFF_TYPE = 'application/x-groupcache-handoff'

/**
 * MAX_HANDOFF_BODY_BYTES caps one hand-off request, what a receiver reads and
 * what a sender puts in one; a larger hand-off is sent as several.
 */
export const MAX_HANDOFF_BODY_BYTES = 4 * 1024 * 1024

/**
 * HandoffEntry is one entry handed over: its key, bytes, absolute expiry
 * and end of its stale window (unix ms, 0: none).
 */
export interface HandoffEntry {
  key: string
  value: Uint8Array
  expire: number
  staleUntil?: number | undefined
}

/** HandoffError reports a hand-off body that is not well formed. */
export class HandoffError extends Error {
  constructor(message: string) {
    super(`malformed hand-off: ${message}`)
    this.name = 'HandoffError'
  }
}

/** recordBytes is what an entry adds to a hand-off body, an upper bound. */
export function recordBytes(entry: HandoffEntry): number {
  return 8 + Buffer.byteLength(entry.key) + entry.value.length + 32
}

/**
 * encodeHandoff frames entries as records of a 4-byte big-endian key length,
 * the key in UTF-8, a 4-byte length and a GetResponse (value, expire and
 * staleUntil).
 */
export function encodeHandoff(entries: readonly HandoffEntry[]): Uint8Array {
  const parts: Buffer[] = []
  for (const entry of entries) {
    const key = Buffer.from(entry.key)
    const msg = encodeGetResponse({ value: entry.value, expire: entry.expire, staleUntil: entry.staleUntil ?? 0 })
    const head = Buffer.allocUnsafe(4)
    head.writeUInt32BE(key.length)
    const mid = Buffer.allocUnsafe(4)
    mid.writeUInt32BE(msg.length)
    parts.push(head, key, mid, Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength))
  }
  return Buffer.concat(parts)
}

/**
 * decodeHandoff reads what encodeHandoff wrote, refusing anything truncated,
 * a key longer than `maxKeyBytes` or not UTF-8. Values are copies, never
 * views into the body.
 */
export function decodeHandoff(body: Uint8Array, maxKeyBytes: number): HandoffEntry[] {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const entries: HandoffEntry[] = []
  const decoder = new TextDecoder('utf-8', { fatal: true })
  let pos = 0
  const length = (): number => {
    if (pos + 4 > buf.length) throw new HandoffError('truncated length')
    const n = buf.readUInt32BE(pos)
    pos += 4
    if (n > buf.length - pos) throw new HandoffError('truncated record')
    return n
  }
  while (pos < buf.length) {
    const keyLength = length()
    if (keyLength > maxKeyBytes) throw new HandoffError(`key longer than ${maxKeyBytes} bytes`)
    let key: string
    try {
      key = decoder.decode(buf.subarray(pos, pos + keyLength))
    } catch {
      throw new HandoffError('key is not UTF-8')
    }
    pos += keyLength
    const msgLength = length()
    const msg = decodeGetResponse(buf.subarray(pos, pos + msgLength))
    pos += msgLength
    entries.push({ key, value: Uint8Array.prototype.slice.call(msg.value), expire: msg.expire ?? 0, staleUntil: msg.staleUntil ?? 0 })
  }
  return entries
}

/**
 * RecentChanges remembers which keys were removed or set on this node in the
 * last CHANGE_GUARD_MS, so that a copy from another node (a peek's answer,
 * a hand-off) that may predate the change is not taken. It closes the race
 * of a `remove` that reaches this node before the node a copy comes from:
 * that copy is older than the remove, and would bring the key back. Its
 * memory is bounded (MAX_GUARDED_KEY_BYTES); past it, every key is guarded.
 */
export class RecentChanges {
  readonly #guardMs: number
  readonly #maxBytes: number
  // Key -> until when; insertion order is expiry order (the guard is one length).
  readonly #keys = new Map<string, number>()
  #bytes = 0
  #allUntil = 0

  constructor(guardMs = CHANGE_GUARD_MS, maxBytes = MAX_GUARDED_KEY_BYTES) {
    this.#guardMs = guardMs
    this.#maxBytes = maxBytes
  }

  /** note records a change of `key` at `now` (a monotonic or wall clock, the same as `has` gets). */
  note(key: string, now: number): void {
    this.#prune(now)
    if (now < this.#allUntil) return
    const keys = this.#keys
    if (keys.delete(key)) this.#bytes -= cost(key)
    keys.set(key, now + this.#guardMs)
    this.#bytes += cost(key)
    if (this.#bytes > this.#maxBytes) {
      // Too many to remember: guard them all, for as long as any could need it.
      this.#allUntil = now + this.#guardMs
      keys.clear()
      this.#bytes = 0
    }
  }

  /** has says whether `key` changed here within the guard, so that no copy of it may be taken. */
  has(key: string, now: number): boolean {
    if (now < this.#allUntil) return true
    const until = this.#keys.get(key)
    return until !== undefined && now < until
  }

  #prune(now: number): void {
    const keys = this.#keys
    for (const [key, until] of keys) {
      if (until > now) return
      keys.delete(key)
      this.#bytes -= cost(key)
    }
  }
}

function cost(key: string): number {
  return Buffer.byteLength(key) + GUARD_OVERHEAD_BYTES
}

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
 * DEFAULT_PEEK_TIMEOUT_MS bounds one peek. A peek answers from memory, so a
 * healthy peer answers well within it; a slow one costs a miss only this much.
 */
export const DEFAULT_PEEK_TIMEOUT_MS = 50

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

/** HandoffEntry is one entry handed over: its key, bytes and absolute expiry (0: none). */
export interface HandoffEntry {
  key: string
  value: Uint8Array
  expire: number
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
  return 8 + Buffer.byteLength(entry.key) + entry.value.length + 24
}

/**
 * encodeHandoff frames entries as records of a 4-byte big-endian key length,
 * the key in UTF-8, a 4-byte length and a GetResponse (value and expire).
 */
export function encodeHandoff(entries: readonly HandoffEntry[]): Uint8Array {
  const parts: Buffer[] = []
  for (const entry of entries) {
    const key = Buffer.from(entry.key)
    const msg = encodeGetResponse({ value: entry.value, expire: entry.expire })
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
    entries.push({ key, value: Uint8Array.prototype.slice.call(msg.value), expire: msg.expire ?? 0 })
  }
  return entries
}

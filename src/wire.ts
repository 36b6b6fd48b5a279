/**
 * GetResponse is the protobuf message a peer answers with, as defined by Go's
 * groupcache (`value = 1`, `minute_qps = 2`), plus our extensions
 * `expire = 3`, the absolute expiry in unix milliseconds, so that hot copies
 * on other nodes expire when the owner's copy does, and `stale_until = 4`,
 * the absolute time until which a value past its expiry may still be served
 * while the owner refreshes it (`staleMs`). Go peers skip both as unknown.
 */
export interface GetResponse {
  value: Uint8Array
  minuteQps?: number | undefined
  expire?: number | undefined
  staleUntil?: number | undefined
}

/** WireError reports bytes that are not a well-formed GetResponse. */
export class WireError extends Error {
  constructor(message: string) {
    super(`malformed GetResponse: ${message}`)
    this.name = 'WireError'
  }
}

const TAG_VALUE = (1 << 3) | 2 // field 1, length-delimited
/** TAG_MINUTE_QPS is the tag of minute_qps (field 2, 64-bit), which batch answers write after a frame too. */
export const TAG_MINUTE_QPS = (2 << 3) | 1
const TAG_EXPIRE = (3 << 3) | 0 // field 3, varint
const TAG_STALE_UNTIL = (4 << 3) | 0 // field 4, varint

/** varintLength is the size of `n` as a protobuf varint (batch.ts frames with it too). */
export function varintLength(n: number): number {
  let len = 1
  while (n >= 0x80) {
    n = Math.floor(n / 128)
    len++
  }
  return len
}

/** writeVarint writes `n` as a protobuf varint at `pos` and returns the position after it. */
export function writeVarint(out: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) {
    out[pos++] = (n % 128) | 0x80
    n = Math.floor(n / 128)
  }
  out[pos++] = n
  return pos
}

/** timeField is a time field's value as written: whole milliseconds, 0 for none. */
export function timeField(ms: number | undefined): number {
  return ms !== undefined && ms > 0 ? Math.floor(Math.min(ms, Number.MAX_SAFE_INTEGER)) : 0
}

/**
 * getResponseSize is the length of a GetResponse with a value of
 * `valueLength` bytes, the given expiry and end of stale window (0 for
 * none), and no minute_qps.
 */
export function getResponseSize(valueLength: number, expire: number, staleUntil: number): number {
  let size = 1 + varintLength(valueLength) + valueLength
  if (expire > 0) size += 1 + varintLength(expire)
  if (staleUntil > 0) size += 1 + varintLength(staleUntil)
  return size
}

/**
 * writeGetResponse writes a GetResponse without minute_qps at the start of
 * `out`, which must hold `getResponseSize` bytes, and returns where the
 * value begins in it.
 */
export function writeGetResponse(out: Uint8Array, value: Uint8Array, expire: number, staleUntil: number): number {
  let pos = 0
  out[pos++] = TAG_VALUE
  pos = writeVarint(out, pos, value.length)
  const start = pos
  out.set(value, pos)
  pos += value.length
  if (expire > 0) {
    out[pos++] = TAG_EXPIRE
    pos = writeVarint(out, pos, expire)
  }
  if (staleUntil > 0) {
    out[pos++] = TAG_STALE_UNTIL
    writeVarint(out, pos, staleUntil)
  }
  return start
}

/**
 * MINUTE_QPS_FIELD_BYTES is the length of a minute_qps field: its tag and a
 * little-endian double.
 */
export const MINUTE_QPS_FIELD_BYTES = 9

/**
 * minuteQpsField is field 2 (minute_qps) alone. Protobuf readers take fields
 * in any order, so a field that changes with every answer can follow a
 * GetResponse written once (a cached frame) instead of being encoded into it.
 */
export function minuteQpsField(qps: number): Buffer {
  const out = Buffer.allocUnsafe(MINUTE_QPS_FIELD_BYTES)
  out[0] = TAG_MINUTE_QPS
  out.writeDoubleLE(qps, 1)
  return out
}

/**
 * MinuteQpsText writes a minute_qps field as a one-byte string (one
 * character per byte), for a server that writes it after a cached frame:
 * it joins a frame held as such a string in one write, and costs no Buffer
 * per answer after a frame of bytes either. Each instance has an 8-byte
 * scratch of its own that holds nothing between calls.
 */
export class MinuteQpsText {
  readonly #bytes = new Uint8Array(8)
  readonly #view = new DataView(this.#bytes.buffer)

  /** of is the field for `qps`: its tag and the little-endian double. */
  of(qps: number): string {
    this.#view.setFloat64(0, qps, true)
    const b = this.#bytes
    return String.fromCharCode(
      TAG_MINUTE_QPS,
      b[0] as number,
      b[1] as number,
      b[2] as number,
      b[3] as number,
      b[4] as number,
      b[5] as number,
      b[6] as number,
      b[7] as number,
    )
  }
}

/**
 * encodeGetResponse writes a GetResponse. The value field is always written
 * (an empty value as `0a 00`); expire and stale_until only when set, and
 * minute_qps, when set, last.
 */
export function encodeGetResponse(msg: GetResponse): Uint8Array {
  const { value } = msg
  const expire = timeField(msg.expire)
  const staleUntil = timeField(msg.staleUntil)
  const qps = msg.minuteQps
  const size = getResponseSize(value.length, expire, staleUntil)
  const out = Buffer.allocUnsafe(size + (qps === undefined ? 0 : MINUTE_QPS_FIELD_BYTES))
  writeGetResponse(out, value, expire, staleUntil)
  if (qps !== undefined) {
    out[size] = TAG_MINUTE_QPS
    out.writeDoubleLE(qps, size + 1)
  }
  return out
}

/**
 * decodeGetResponse reads a GetResponse, skipping unknown fields of every
 * wire type as protobuf requires. A missing value field is an empty value.
 * The returned value is a view into `bytes`, not a copy.
 */
export function decodeGetResponse(bytes: Uint8Array): GetResponse {
  const msg: GetResponse = { value: new Uint8Array(0) }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let pos = 0
  const varint = (): number => {
    let result = 0
    let scale = 1
    for (let i = 0; i < 10; i++) {
      if (pos >= bytes.length) throw new WireError('truncated varint')
      const b = bytes[pos++] as number
      result += (b & 0x7f) * scale
      if (b < 0x80) return result
      scale *= 128
    }
    throw new WireError('varint longer than 10 bytes')
  }
  const skip = (n: number): void => {
    if (n > bytes.length - pos) throw new WireError('truncated field')
    pos += n
  }
  while (pos < bytes.length) {
    const tag = varint()
    const field = Math.floor(tag / 8)
    const type = tag % 8
    if (field === 0) throw new WireError('field number 0')
    if (type === 0) {
      const n = varint()
      if (field === 3) msg.expire = n
      else if (field === 4) msg.staleUntil = n
    } else if (type === 1) {
      if (field === 2 && pos + 8 <= bytes.length) msg.minuteQps = view.getFloat64(pos, true)
      skip(8)
    } else if (type === 2) {
      const len = varint()
      const start = pos
      skip(len)
      if (field === 1) msg.value = bytes.subarray(start, start + len)
    } else if (type === 5) {
      skip(4)
    } else {
      throw new WireError(`unsupported wire type ${type}`)
    }
  }
  return msg
}

/**
 * readVarint reads a protobuf varint of at most 10 bytes at `pos`, for the
 * framing of batches (batch.ts), and returns it with the position after it.
 */
export function readVarint(bytes: Uint8Array, pos: number): [value: number, next: number] {
  let result = 0
  let scale = 1
  for (let i = 0; i < 10; i++) {
    if (pos >= bytes.length) throw new WireError('truncated varint')
    const b = bytes[pos++] as number
    result += (b & 0x7f) * scale
    if (b < 0x80) return [result, pos]
    scale *= 128
  }
  throw new WireError('varint longer than 10 bytes')
}

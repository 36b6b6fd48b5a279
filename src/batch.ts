import {
  decodeGetResponse,
  getResponseSize,
  MINUTE_QPS_FIELD_BYTES,
  readVarint,
  TAG_MINUTE_QPS,
  timeField,
  varintLength,
  writeGetResponse,
  writeVarint,
} from './wire.js'

/**
 * BATCH_CONTENT_TYPE is the content type of a batch request and of its
 * answer. Only our peers send or understand it: a batch goes only to peers
 * that have shown `x-groupcache-protocol`; Go peers get one GET per key.
 */
export const BATCH_CONTENT_TYPE = 'application/x-groupcache-batch'

/**
 * MAX_BATCH_KEYS is the most keys one batch request carries, and the most
 * one `loadMany` call gets: larger batches are cut into chunks. A thousand
 * keys is one modest SQL `IN (...)` list (Oracle's limit), and one answer
 * of values a node can hold at once.
 */
export const MAX_BATCH_KEYS = 1000

/**
 * MAX_BATCH_BODY_BYTES bounds a batch request's body, the framed keys: the
 * endpoint refuses more with 413 before decoding, and the client cuts its
 * chunks to fit. A thousand keys of a kilobyte fit; long keys make smaller
 * chunks.
 */
export const MAX_BATCH_BODY_BYTES = 1024 * 1024

/**
 * MAX_BATCH_ANSWER_BYTES bounds the values in one batch answer, so that one
 * request cannot make the owner build (and the asker read) an answer of
 * unbounded size. Items that do not fit are left out, after they have been
 * loaded and cached; the asker fetches them one GET each. It stays well under
 * the client's limit on any answer (`DEFAULT_MAX_RESPONSE_BYTES`, 64 MiB).
 */
export const MAX_BATCH_ANSWER_BYTES = 32 * 1024 * 1024

/** BatchError reports bytes that are not a well-formed batch. */
export class BatchError extends Error {
  constructor(message: string) {
    super(`malformed batch: ${message}`)
    this.name = 'BatchError'
  }
}

/**
 * BatchItem is one key's part of a batch answer: its value (as a GetResponse
 * would carry it, with the generation its load began in), or the owner's
 * verdict, an `ERR_GROUPCACHE_*` code with a message.
 */
export type BatchItem =
  | { key: string; value: Uint8Array; expire: number; staleUntil?: number | undefined; generation: number; minuteQps?: number | undefined }
  | { key: string; error: string; message: string }

// A batch answer is a sequence of items, each a varint length and then this
// protobuf message: key = 1 (string), response = 2 (a GetResponse),
// error = 3 (string), message = 4 (string), generation = 5 (varint).
const TAG_KEY = (1 << 3) | 2
const TAG_RESPONSE = (2 << 3) | 2
const TAG_ERROR = (3 << 3) | 2
const TAG_MESSAGE = (4 << 3) | 2
const TAG_GENERATION = (5 << 3) | 0

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * encodeBatchKeys frames keys as a batch request's body: for each key, its
 * UTF-8 length as a varint, then its bytes.
 */
export function encodeBatchKeys(keys: readonly string[]): Uint8Array {
  const parts = keys.map((key) => Buffer.from(key))
  return frame(parts)
}

/**
 * decodeBatchKeys reads a batch request's body. It throws a BatchError on a
 * truncated frame, bytes that are not UTF-8 (two byte strings must never
 * share a key), or more than `maxKeys` keys.
 */
export function decodeBatchKeys(bytes: Uint8Array, maxKeys: number): string[] {
  const keys: string[] = []
  try {
    for (const part of frames(bytes)) {
      if (keys.length === maxKeys) throw new BatchError(`more than ${maxKeys} keys`)
      keys.push(utf8.decode(part))
    }
  } catch (err) {
    throw err instanceof BatchError ? err : new BatchError(err instanceof Error ? err.message : String(err))
  }
  return keys
}

/**
 * FramedItem is a value's item whose GetResponse is framed already: a cached
 * entry's frame (value, expire, stale_until: a one-byte string, one
 * character per byte, or bytes), written into the answer as it is, with the
 * minute_qps field after it when the answer reports one, as a GET answers.
 * Its bytes are those of the BatchItem with the same value.
 */
export interface FramedItem {
  key: string
  frame: string | Uint8Array
  generation: number
  minuteQps?: number | undefined
}

/**
 * encodeBatchAnswer frames the items of a batch answer, leaving out those
 * that would take it past `maxBytes` (the first item is always kept: one GET
 * would carry it too). The asker fetches what was left out one by one. The
 * answer is written in one buffer, each value copied once into it: a
 * FramedItem's frame as it is, a BatchItem's value framed there.
 */
export function encodeBatchAnswer(items: readonly (BatchItem | FramedItem)[], maxBytes = MAX_BATCH_ANSWER_BYTES): Uint8Array {
  // Per item: its key's UTF-8 length, its response's (or error's) length and
  // its whole length; -1 for an item left out.
  const sizes: number[] = new Array<number>(items.length * 3)
  let size = 0
  let kept = 0
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as BatchItem | FramedItem
    const keyLength = Buffer.byteLength(item.key)
    let length = 1 + varintLength(keyLength) + keyLength
    let inner: number
    if ('error' in item) {
      inner = Buffer.byteLength(item.error)
      const message = Buffer.byteLength(item.message)
      length += 1 + varintLength(inner) + inner + 1 + varintLength(message) + message
    } else {
      inner = responseLength(item)
      length += 1 + varintLength(inner) + inner
      if (item.generation > 0) length += 1 + varintLength(item.generation)
    }
    const framed = varintLength(length) + length
    if (kept > 0 && size + framed > maxBytes) {
      sizes[i * 3 + 2] = -1
      continue
    }
    sizes[i * 3] = keyLength
    sizes[i * 3 + 1] = inner
    sizes[i * 3 + 2] = length
    size += framed
    kept++
  }
  const out = Buffer.allocUnsafe(size)
  let pos = 0
  for (let i = 0; i < items.length; i++) {
    const length = sizes[i * 3 + 2] as number
    if (length < 0) continue
    const item = items[i] as BatchItem | FramedItem
    const inner = sizes[i * 3 + 1] as number
    pos = writeVarint(out, pos, length)
    out[pos++] = TAG_KEY
    pos = writeVarint(out, pos, sizes[i * 3] as number)
    pos += out.write(item.key, pos, 'utf8')
    if ('error' in item) {
      out[pos++] = TAG_ERROR
      pos = writeVarint(out, pos, inner)
      pos += out.write(item.error, pos, 'utf8')
      out[pos++] = TAG_MESSAGE
      pos = writeVarint(out, pos, Buffer.byteLength(item.message))
      pos += out.write(item.message, pos, 'utf8')
      continue
    }
    out[pos++] = TAG_RESPONSE
    pos = writeVarint(out, pos, inner)
    pos = writeResponse(out, pos, item)
    if (item.generation > 0) {
      out[pos++] = TAG_GENERATION
      pos = writeVarint(out, pos, item.generation)
    }
  }
  return out
}

/** responseLength is the length of an item's GetResponse, minute_qps included. */
function responseLength(item: Extract<BatchItem, { value: Uint8Array }> | FramedItem): number {
  const qps = item.minuteQps === undefined ? 0 : MINUTE_QPS_FIELD_BYTES
  if ('frame' in item) return (typeof item.frame === 'string' ? item.frame.length : item.frame.byteLength) + qps
  return getResponseSize(item.value.length, timeField(item.expire), timeField(item.staleUntil)) + qps
}

/**
 * writeResponse writes an item's GetResponse at `pos`, as encodeGetResponse
 * would: a frame as it is (or the value framed), then minute_qps.
 */
function writeResponse(out: Buffer, pos: number, item: Extract<BatchItem, { value: Uint8Array }> | FramedItem): number {
  if ('frame' in item) {
    const frame = item.frame
    if (typeof frame === 'string') {
      pos += out.write(frame, pos, 'latin1')
    } else {
      out.set(frame, pos)
      pos += frame.byteLength
    }
  } else {
    const expire = timeField(item.expire)
    const staleUntil = timeField(item.staleUntil)
    writeGetResponse(out.subarray(pos), item.value, expire, staleUntil)
    pos += getResponseSize(item.value.length, expire, staleUntil)
  }
  const qps = item.minuteQps
  if (qps !== undefined) {
    out[pos] = TAG_MINUTE_QPS
    out.writeDoubleLE(qps, pos + 1)
    pos += MINUTE_QPS_FIELD_BYTES
  }
  return pos
}

/**
 * decodeBatchAnswer reads a batch answer. Unknown fields are skipped, as
 * protobuf requires, so later versions may add some. An item must have a key
 * and either a value or an error code. Values are copies, owned by the item.
 * An answer has an item per key asked for at most: past `maxItems` it is
 * malformed, and the rest is not read. An answer may be 64 MiB long, which
 * holds 13 million items of a few bytes: decoding them all blocked the
 * event loop for seconds and took a gigabyte of heap, from one bad peer.
 */
export function decodeBatchAnswer(bytes: Uint8Array, maxItems = Infinity): BatchItem[] {
  const items: BatchItem[] = []
  try {
    for (const part of frames(bytes)) {
      if (items.length >= maxItems) throw new BatchError(`more than the ${maxItems} items asked for`)
      items.push(decodeItem(part))
    }
  } catch (err) {
    throw err instanceof BatchError ? err : new BatchError(err instanceof Error ? err.message : String(err))
  }
  return items
}

function decodeItem(bytes: Uint8Array): BatchItem {
  let key: string | undefined
  let response: Uint8Array | undefined
  let error: string | undefined
  let message = ''
  let generation = 0
  let pos = 0
  while (pos < bytes.length) {
    let tag: number
    ;[tag, pos] = readVarint(bytes, pos)
    const field = Math.floor(tag / 8)
    const type = tag % 8
    if (field === 0) throw new BatchError('field number 0')
    if (type === 0) {
      let n: number
      ;[n, pos] = readVarint(bytes, pos)
      if (field === 5) generation = Number.isSafeInteger(n) ? n : 0
    } else if (type === 2) {
      let len: number
      ;[len, pos] = readVarint(bytes, pos)
      if (len > bytes.length - pos) throw new BatchError('truncated field')
      const part = bytes.subarray(pos, pos + len)
      pos += len
      if (field === 1) key = utf8.decode(part)
      else if (field === 2) response = part
      else if (field === 3) error = utf8.decode(part)
      else if (field === 4) message = utf8.decode(part)
    } else if (type === 1 || type === 5) {
      const n = type === 1 ? 8 : 4
      if (n > bytes.length - pos) throw new BatchError('truncated field')
      pos += n
    } else {
      throw new BatchError(`unsupported wire type ${type}`)
    }
  }
  if (key === undefined) throw new BatchError('an item without a key')
  if (error !== undefined) return { key, error, message }
  if (response === undefined) throw new BatchError(`item ${JSON.stringify(key)} has neither a value nor an error`)
  const msg = decodeGetResponse(response)
  // A copy, so that a kept value does not hold the whole answer's buffer.
  const staleUntil = msg.staleUntil ?? 0
  const item: BatchItem = { key, value: new Uint8Array(msg.value), expire: msg.expire ?? 0, generation }
  // Only a value with a stale window or a rate says so, so that plain items compare equal to what was sent.
  if (staleUntil > 0) item.staleUntil = staleUntil
  if (msg.minuteQps !== undefined) item.minuteQps = msg.minuteQps
  return item
}

/**
 * chunkKeys cuts keys into batches of at most `maxKeys` keys and
 * `maxBytes` framed bytes each. A key too long for any batch is impossible
 * with the default `maxKeyBytes`; it would still get a batch of its own.
 */
export function chunkKeys(keys: readonly string[], maxKeys = MAX_BATCH_KEYS, maxBytes = MAX_BATCH_BODY_BYTES): string[][] {
  const chunks: string[][] = []
  let chunk: string[] = []
  let bytes = 0
  for (const key of keys) {
    const length = Buffer.byteLength(key)
    const size = varintLength(length) + length
    if (chunk.length > 0 && (chunk.length === maxKeys || bytes + size > maxBytes)) {
      chunks.push(chunk)
      chunk = []
      bytes = 0
    }
    chunk.push(key)
    bytes += size
  }
  if (chunk.length > 0) chunks.push(chunk)
  return chunks
}

function frame(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0
  for (const part of parts) size += varintLength(part.length) + part.length
  const out = Buffer.allocUnsafe(size)
  let pos = 0
  for (const part of parts) {
    pos = writeVarint(out, pos, part.length)
    out.set(part, pos)
    pos += part.length
  }
  return out
}

function* frames(bytes: Uint8Array): Generator<Uint8Array> {
  let pos = 0
  while (pos < bytes.length) {
    let len: number
    ;[len, pos] = readVarint(bytes, pos)
    if (len > bytes.length - pos) throw new BatchError('truncated item')
    yield bytes.subarray(pos, pos + len)
    pos += len
  }
}

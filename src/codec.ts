import { Packr } from 'msgpackr'
import { CodecError, describe, errorMessage } from './errors.js'

/**
 * Codec turns a group's values into the bytes that are cached and sent to
 * peers, and back. Every node of a cluster must use the same codec for a
 * group (a Go peer sees only the bytes). A custom codec's values are decoded
 * afresh for every caller, because this library cannot know how to make them
 * immutable, unless the codec says `immutable: true`: then one decoded value
 * is kept beside the bytes and handed to every caller, so a hit costs no
 * decode. Say so only if callers never change what they get (freeze it).
 */
export interface Codec<T> {
  encode(value: T): Uint8Array
  decode(bytes: Uint8Array): T
  readonly immutable?: boolean | undefined
}

/**
 * ResolvedCodec is a codec plus its sharing rule: `share(value)` makes a
 * decoded value safe to hand to every caller (by deep-freezing it) and says
 * whether it could. A value it cannot share is decoded again for each caller.
 * `decode` is told when `bytes` is a fresh copy nobody else holds, which a
 * codec that hands out bytes may then return as it is.
 */
export interface ResolvedCodec {
  encode(value: unknown): Uint8Array
  decode(bytes: Uint8Array, fresh?: boolean): unknown
  share(value: unknown): boolean
  /** decodesAnything is true for a codec whose decode never throws ('bytes'). */
  readonly decodesAnything?: boolean
  /**
   * viewsBytes says whether a value it shares may view the bytes it was
   * decoded from, so that those must be memory of their own. The built-in
   * codecs share only values that own their memory; a custom immutable one
   * may share anything.
   */
  readonly viewsBytes: boolean
}

/**
 * Frozen is the type of what `get` returns for a group of `T`: every plain
 * object and array in it is readonly, all the way down, because the
 * 'msgpack' and 'json' codecs deep-freeze one decoded value and share it
 * between callers (writing to it throws in strict mode). Binary data, Dates,
 * Maps, Sets and functions keep their types: those values are never frozen
 * (a value holding one is decoded afresh for each caller). For values decoded
 * afresh ('bytes', custom codecs without `immutable`, values holding a Date)
 * the type is stricter than needed; copy the value to change it.
 * `Frozen<T>` is assignable wherever a `T` without arrays is expected, since
 * TypeScript lets a readonly property stand in for a mutable one; readonly
 * arrays are not, on purpose.
 */
export type Frozen<T> = T extends Unfrozen ? T : { readonly [K in keyof T]: Frozen<T[K]> }

/** Unfrozen lists what deep-freezing leaves alone. */
type Unfrozen =
  | string
  | number
  | boolean
  | bigint
  | symbol
  | null
  | undefined
  | ((...args: never[]) => unknown)
  | ArrayBuffer
  | ArrayBufferView
  | Date
  | ReadonlyMap<unknown, unknown>
  | ReadonlySet<unknown>

/** CodecName names a built-in codec. */
export type CodecName = 'msgpack' | 'json' | 'string' | 'bytes'

/** DEFAULT_CODEC is 'msgpack': compact, fast, and it keeps binary data. */
export const DEFAULT_CODEC: CodecName = 'msgpack'

/**
 * deepFreeze freezes a decoded plain value in place so that one copy can be
 * handed to every caller, and reports whether it could. Objects and arrays
 * freeze; typed arrays, Maps, Sets and Dates stay writable when frozen, so a
 * value holding one is left untouched and decoded afresh for each caller.
 */
function deepFreeze(value: unknown): boolean {
  if (!freezable(value)) return false
  freeze(value)
  return true
}

function freezable(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true
  if (ArrayBuffer.isView(value) || value instanceof Map || value instanceof Set || value instanceof Date) return false
  for (const key in value) {
    if (!freezable((value as Record<string, unknown>)[key])) return false
  }
  return true
}

function freeze(value: unknown): void {
  if (typeof value !== 'object' || value === null) return
  for (const key in value) freeze((value as Record<string, unknown>)[key])
  Object.freeze(value)
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })

/**
 * MSGPACK_SCRATCH_BYTES: msgpackr writes every value into one buffer that
 * all its packers share, hands out slices of it, and starts each new buffer
 * as large as the last; a 256 KiB string grows it to 3 MiB for good. After a
 * value that left it larger than 64 KiB, the codec gives it a fresh 8 KiB
 * buffer, so one large value does not keep a buffer many times its size
 * alive. (Cached entries copy their bytes out, so they keep no slice.)
 */
export const MSGPACK_SCRATCH_BYTES = 64 * 1024

/** packSmall packs a value and, if that left msgpackr's buffer large, gives it a small new one. */
function packSmall(packr: Packr, value: unknown): Uint8Array {
  const bytes = packr.pack(value)
  if (bytes.buffer.byteLength > MSGPACK_SCRATCH_BYTES) packr.useBuffer(Buffer.allocUnsafeSlow(8192))
  return bytes
}

function msgpack(): ResolvedCodec {
  // One Packr per group; no structure records, so any msgpack reader can read
  // it. Binary data is decoded into copies: a view on the cached bytes would
  // let a caller who writes to it change what the next caller gets.
  const packr = new Packr({ useRecords: false, moreTypes: false, copyBuffers: true })
  return {
    encode: (value) => packSmall(packr, value),
    decode: (bytes) => packr.unpack(bytes),
    share: deepFreeze,
    viewsBytes: false,
  }
}

const jsonCodec: ResolvedCodec = {
  encode(value) {
    const text = JSON.stringify(value)
    if (text === undefined) throw new TypeError(`JSON cannot represent ${typeof value}`)
    return textEncoder.encode(text)
  },
  decode: (bytes) => JSON.parse(textDecoder.decode(bytes)),
  share: deepFreeze,
  viewsBytes: false,
}

const stringCodec: ResolvedCodec = {
  share: () => true,
  viewsBytes: false,
  encode(value) {
    if (typeof value !== 'string') throw new TypeError(`expected a string, got ${typeof value}`)
    return textEncoder.encode(value)
  },
  decode: (bytes) => textDecoder.decode(bytes),
}

// Buffers cannot be frozen, so every caller gets its own copy: a caller that
// writes into its value must not change what the next caller gets.
const bytesCodec: ResolvedCodec = {
  share: () => false,
  decodesAnything: true,
  viewsBytes: false,
  encode(value) {
    if (!(value instanceof Uint8Array)) throw new TypeError(`expected a Uint8Array, got ${typeof value}`)
    return Uint8Array.prototype.slice.call(value)
  },
  decode(bytes, fresh) {
    if (fresh === true && Buffer.isBuffer(bytes)) return bytes
    // allocUnsafe + set copies in one go; Buffer.from(Uint8Array) copies byte by byte.
    const copy = Buffer.allocUnsafe(bytes.length)
    copy.set(bytes)
    return copy
  },
}

/**
 * resolveCodec turns a codec option into a codec, validating custom ones.
 * Built-in codecs are made per group, so no state is shared between groups.
 */
export function resolveCodec(option: CodecName | Codec<unknown> | undefined, optionName: string): ResolvedCodec {
  switch (option === undefined ? DEFAULT_CODEC : option) {
    case 'msgpack':
      return msgpack()
    case 'json':
      return jsonCodec
    case 'string':
      return stringCodec
    case 'bytes':
      return bytesCodec
  }
  const custom = option as Codec<unknown>
  if (typeof custom !== 'object' || custom === null || typeof custom.encode !== 'function' || typeof custom.decode !== 'function') {
    throw new TypeError(`expected ${optionName} to be 'msgpack', 'json', 'string', 'bytes' or { encode, decode }, got ${describe(option)}`)
  }
  const share = custom.immutable === true ? () => true : () => false
  return { encode: (value) => custom.encode(value), decode: (bytes) => custom.decode(bytes), share, viewsBytes: custom.immutable === true }
}

/** encodeValue runs a codec's encode, reporting failures as CodecError. */
export function encodeValue(codec: ResolvedCodec, value: unknown, what: string): Uint8Array {
  let bytes: unknown
  try {
    bytes = codec.encode(value)
  } catch (err) {
    throw new CodecError(`cannot encode ${what}: ${errorMessage(err)}`, { cause: err })
  }
  if (!(bytes instanceof Uint8Array)) {
    throw new CodecError(`cannot encode ${what}: the codec's encode returned ${describe(bytes)}, not a Uint8Array`)
  }
  return bytes
}

/**
 * heap.ts knows what values cost in memory, so that a cache can count what
 * it really holds rather than the bytes it was given. The figures are V8's
 * object layouts as Node ships them on 64-bit machines (8-byte slots, no
 * pointer compression), checked with `process.memoryUsage()` after forced
 * collections: heap plus ArrayBuffer memory, the two figures a cache can
 * grow. Estimates err on the large side where V8's layout varies.
 */

/** STRING_HEADER_BYTES is a flat string's header (map, hash, length); its characters follow, rounded up to 8 bytes. */
export const STRING_HEADER_BYTES = 16

/** VIEW_BYTES is a typed array's or DataView's own object, beside the buffer it views (measured: 96). */
export const VIEW_BYTES = 96

/**
 * BUFFER_BYTES is an ArrayBuffer's object and its bookkeeping, beside its
 * contents (measured: 77–88). A fresh 100-byte Uint8Array so costs about
 * 284 bytes, where a 100-character one-byte string costs 120.
 */
export const BUFFER_BYTES = 88

/** HEAP_NUMBER_BYTES is a boxed number: a double, or an integer beyond 31 bits, held in an object field. */
export const HEAP_NUMBER_BYTES = 16

/** OBJECT_BYTES is a plain object's header (map, properties, elements); each property then takes an 8-byte slot, at least four. */
export const OBJECT_BYTES = 24

/** ARRAY_BYTES is an array's object and the header of its element store; each element then takes an 8-byte slot. */
export const ARRAY_BYTES = 48

/**
 * DICTIONARY_PROPERTIES: V8 keeps an object with more properties than this
 * (set one by one, as decoders do) as a hash table, where each property
 * costs DICTIONARY_SLOT_BYTES plus its name, instead of one slot.
 */
export const DICTIONARY_PROPERTIES = 128

/** DICTIONARY_SLOT_BYTES is one property of a hash-table object (name, value, details, at V8's load factor). */
export const DICTIONARY_SLOT_BYTES = 56

const SLOT_BYTES = 8
// A Map or Set entry: V8's ordered hash table at its usual load (measured 28–56).
const MAP_SLOT_BYTES = 48
// Below this length V8 copies a substring or a concatenation instead of
// keeping a slice of, or a pair of pointers to, its parts.
const MIN_SHARED_STRING_LENGTH = 13
// biome-ignore lint/suspicious/noControlCharactersInRegex: the range starts at U+0000 on purpose (Latin-1)
const TWO_BYTE = /[^\u0000-\u00ff]/

const align8 = (n: number): number => (n + 7) & ~7

/** isOneByte says whether V8 can keep the string at one byte per character (every character below U+0100). */
export function isOneByte(s: string): boolean {
  return !TWO_BYTE.test(s)
}

/** stringBytes is what a flat string costs: its header and its characters, one or two bytes each. */
export function stringBytes(s: string): number {
  return STRING_HEADER_BYTES + align8(isOneByte(s) ? s.length : 2 * s.length)
}

/**
 * ownString returns a flat copy of a string that may be a slice of a larger
 * string or a chain of concatenated parts, so that keeping it keeps only
 * its own characters. A key cut from a 1 MB text, stored as it came, would
 * keep the whole text alive. Short strings are always flat already.
 */
export function ownString(s: string): string {
  if (s.length < MIN_SHARED_STRING_LENGTH) return s
  return isOneByte(s) ? Buffer.from(s, 'latin1').toString('latin1') : Buffer.from(s, 'utf16le').toString('utf16le')
}

/** numberBytes is what a number held in an object field costs beyond its slot: nothing for a 31-bit integer, else a box. */
export function numberBytes(n: number): number {
  return Number.isInteger(n) && n >= -0x80000000 && n <= 0x7fffffff ? 0 : HEAP_NUMBER_BYTES
}

/**
 * heapBytes estimates the memory a value holds: objects, arrays, strings,
 * boxed numbers, and the buffers under typed arrays (the whole buffer: a
 * view keeps all of it alive), except `shared`, a buffer already counted
 * elsewhere. Property names of ordinary objects are not counted (V8 shares
 * them between objects of one shape); those of hash-table objects are.
 * Shared parts and cycles are counted once. The walk uses its own stack, so
 * deep values cannot overflow the call stack.
 */
export function heapBytes(value: unknown, shared?: ArrayBufferLike): number {
  if (typeof value === 'string') return stringBytes(value)
  if (typeof value !== 'object' || value === null) return scalarBytes(value)
  let total = 0
  const seen = new Set<unknown>()
  if (shared !== undefined) seen.add(shared)
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const v = stack.pop()
    if (typeof v === 'string') {
      total += stringBytes(v)
      continue
    }
    if ((typeof v !== 'object' && typeof v !== 'function') || v === null) {
      total += scalarBytes(v)
      continue
    }
    if (seen.has(v)) continue
    seen.add(v)
    if (ArrayBuffer.isView(v)) {
      total += VIEW_BYTES
      if (!seen.has(v.buffer)) {
        seen.add(v.buffer)
        total += BUFFER_BYTES + v.buffer.byteLength
      }
    } else if (v instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && v instanceof SharedArrayBuffer)) {
      total += BUFFER_BYTES + v.byteLength
    } else if (Array.isArray(v)) {
      total += ARRAY_BYTES + SLOT_BYTES * v.length
      let doubles = true
      for (const item of v) if (typeof item !== 'number') doubles = false
      // An array of numbers only keeps them unboxed, in its own slots.
      if (doubles) continue
      for (const item of v) stack.push(item)
    } else if (v instanceof Map || v instanceof Set) {
      total += OBJECT_BYTES + MAP_SLOT_BYTES * (v.size + 1)
      if (v instanceof Map) {
        for (const [k, item] of v) stack.push(k, item)
      } else {
        for (const item of v) stack.push(item)
      }
    } else {
      const keys = Object.keys(v)
      if (keys.length > DICTIONARY_PROPERTIES) {
        total += OBJECT_BYTES + keys.length * DICTIONARY_SLOT_BYTES
        for (const k of keys) total += stringBytes(k)
      } else {
        // An object made empty and then filled (as decoders do) has room for
        // four properties in itself; past four V8 adds a separate store.
        total += OBJECT_BYTES + SLOT_BYTES * Math.max(4, keys.length) + (keys.length > 4 ? 2 * SLOT_BYTES : 0)
      }
      for (const k of keys) stack.push((v as Record<string, unknown>)[k])
    }
  }
  return total
}

function scalarBytes(value: unknown): number {
  if (typeof value === 'number') return numberBytes(value)
  if (typeof value === 'bigint') return HEAP_NUMBER_BYTES + SLOT_BYTES * Math.ceil(value.toString(16).length / 16)
  return 0
}

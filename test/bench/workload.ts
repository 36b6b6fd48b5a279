// What the multi-process scenarios (B5, B6) load: the same deterministic
// values in the parent (to count unique bytes) and in every replica.
import { crc32 } from 'node:zlib'

/** ValueSizes: 'fixed' is 1 KB for every key; 'varied' is 512–1,535 B by key hash. */
export type ValueSizes = 'fixed' | 'varied'

/** valueSize is the length in bytes (ASCII) of the value for `key`. */
export function valueSize(key: string, sizes: ValueSizes): number {
  return sizes === 'fixed' ? 1024 : 512 + (crc32(key) % 1024)
}

/** valueFor is the value a loader returns for `key`: ASCII, `valueSize` bytes. */
export function valueFor(key: string, sizes: ValueSizes): string {
  return `${key}:`.padEnd(valueSize(key, sizes), '.')
}

/** entryBytes is what an entry costs by groupcache's rule: key bytes + value bytes. */
export function entryBytes(key: string, sizes: ValueSizes): number {
  return Buffer.byteLength(key) + valueSize(key, sizes)
}

import { crc32 } from 'node:zlib'

/**
 * DEFAULT_REPLICAS is the number of ring points per peer: 50, Go's HTTPPool
 * default. Every node of a cluster, Go or Node, must use the same number.
 */
export const DEFAULT_REPLICAS = 50

// CRC-32 IEEE, one table entry per byte value, for hashKey.
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

/**
 * hashKey is `zlib.crc32(key)` computed in JS for ASCII keys (where UTF-16
 * units are the UTF-8 bytes), and by zlib for the rest. zlib's result comes
 * back boxed for three hashes in four, one allocation per lookup; this one
 * stays a machine integer, and for short keys it is faster too.
 */
export function hashKey(key: string): number {
  let c = 0xffffffff
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i)
    if (code > 0x7f) return crc32(key)
    c = (CRC_TABLE[(c ^ code) & 0xff] as number) ^ (c >>> 8)
  }
  return (c ^ 0xffffffff) >>> 0
}

/**
 * Ring is a consistent-hash ring that agrees, key for key, with Go's
 * groupcache/consistenthash: for each peer `p` and `i` in `0..replicas-1` a
 * point at `crc32(String(i) + p)`; the owner of a key is the peer of the first
 * point at or after `crc32(key)`, wrapping to the first point.
 *
 * Go keeps duplicated points in its sorted list and maps a duplicated value
 * to the peer added last; building `owners` in add order reproduces that, so
 * peers must be given in the same order on every node for the (rare) tie.
 *
 * A Ring is immutable: a membership change builds a new one, as Go's `Set`
 * replaces its map wholesale. Lookups allocate nothing but the hash.
 */
export class Ring {
  readonly peers: readonly string[]
  readonly replicas: number
  readonly #points: Uint32Array
  readonly #owners: string[]

  constructor(peers: readonly string[], replicas = DEFAULT_REPLICAS) {
    this.peers = Object.freeze([...peers])
    this.replicas = replicas
    const byPoint = new Map<number, string>()
    const points: number[] = []
    for (const peer of peers) {
      for (let i = 0; i < replicas; i++) {
        const point = crc32(String(i) + peer)
        points.push(point)
        byPoint.set(point, peer)
      }
    }
    this.#points = Uint32Array.from(points).sort()
    this.#owners = Array.from(this.#points, (point) => byPoint.get(point) as string)
  }

  /** isEmpty is true for a ring without peers, which owns no key. */
  get isEmpty(): boolean {
    return this.#points.length === 0
  }

  /**
   * owner returns the peer URL that owns `key`, or undefined on an empty
   * ring. The hash is over the key's UTF-8 bytes, as in Go.
   */
  owner(key: string): string | undefined {
    const points = this.#points
    const n = points.length
    if (n === 0) return undefined
    const hash = hashKey(key)
    let lo = 0
    let hi = n
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((points[mid] as number) < hash) lo = mid + 1
      else hi = mid
    }
    return this.#owners[lo === n ? 0 : lo]
  }
}

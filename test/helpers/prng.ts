/** mulberry32 is a small seeded PRNG: the same seed draws the same floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Prng is mulberry32 with helpers, for tests that must replay exactly: the
 * same seed gives the same requests, keys and sizes on every run.
 */
export class Prng {
  /** next returns a float in [0, 1). */
  readonly next: () => number

  constructor(seed: number) {
    this.next = mulberry32(seed)
  }

  /** int returns an integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }

  /** chance is true with probability p. */
  chance(p: number): boolean {
    return this.next() < p
  }

  /** pick returns one element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T
  }

  /** weighted picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as Array<[K, number]>
    const total = entries.reduce((sum, [, w]) => sum + w, 0)
    let r = this.next() * total
    for (const [key, w] of entries) {
      r -= w
      if (r < 0) return key
    }
    return (entries[entries.length - 1] as [K, number])[0]
  }

  /** string returns `length` characters drawn from `alphabet`. */
  string(alphabet: string, length: number): string {
    let out = ''
    for (let i = 0; i < length; i++) out += alphabet[Math.floor(this.next() * alphabet.length)]
    return out
  }
}

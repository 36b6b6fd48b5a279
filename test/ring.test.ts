import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { crc32 } from 'node:zlib'
import { DEFAULT_REPLICAS, hashKey, Ring } from '../src/ring.js'

interface VectorCase {
  name: string
  replicas: number
  peers: string[]
  owners: Array<[string, number]>
  duplicatePoint?: { hash: number; pointInputs: [string, string]; winner: string; targetKeys: string[] }
}

// Made by a real Go groupcache (test/interop/ringvectors); see its README.
const vectors = JSON.parse(readFileSync(new URL('./fixtures/ring-vectors.json', import.meta.url), 'utf8')) as {
  cases: VectorCase[]
}

describe('Ring agrees with Go groupcache consistenthash', () => {
  test('the fixture holds the cases it promises', () => {
    assert.ok(vectors.cases.length >= 5)
    assert.ok(vectors.cases.some((c) => c.duplicatePoint !== undefined))
  })

  for (const c of vectors.cases) {
    test(`gives Go's owner for all ${c.owners.length} keys in case ${c.name}`, () => {
      const ring = new Ring(c.peers, c.replicas)
      let mismatches = 0
      const examples: string[] = []
      for (const [key, index] of c.owners) {
        const got = ring.owner(key)
        if (got !== c.peers[index]) {
          mismatches++
          if (examples.length < 3) examples.push(`${JSON.stringify(key)}: got ${got}; want ${c.peers[index]}`)
        }
      }
      assert.equal(mismatches, 0, examples.join('\n'))
    })
  }

  test('on a duplicated point, the peer added last wins, as in Go', () => {
    const c = vectors.cases.find((x) => x.duplicatePoint !== undefined)!
    const dup = c.duplicatePoint!
    assert.equal(crc32(dup.pointInputs[0]), dup.hash)
    assert.equal(crc32(dup.pointInputs[1]), dup.hash)
    const ring = new Ring(c.peers, c.replicas)
    for (const key of dup.targetKeys) assert.equal(ring.owner(key), dup.winner, key)
    const reversed = new Ring([...c.peers].reverse(), c.replicas)
    const other = c.peers.find((p) => p !== dup.winner)
    for (const key of dup.targetKeys) assert.equal(reversed.owner(key), other, `${key} with the peers reversed`)
  })
})

describe('hashKey', () => {
  test('equals zlib.crc32 for ASCII, unicode, long and empty keys', () => {
    const keys = ['', 'a', 'key-1', 'x'.repeat(5000), 'Привет', '😀', 'mixed-日本-key', '\u007f\u0080', 'tab\tkey']
    for (let i = 0; i < 2_000; i++) keys.push(`user:${i * 7919}`)
    for (const key of keys) assert.equal(hashKey(key), crc32(key), JSON.stringify(key.slice(0, 20)))
  })
})

describe('Ring', () => {
  test('uses 50 replicas by default, like Go', () => {
    assert.equal(DEFAULT_REPLICAS, 50)
    assert.equal(new Ring(['http://a']).replicas, 50)
  })

  test('owns nothing when empty', () => {
    const ring = new Ring([])
    assert.equal(ring.isEmpty, true)
    assert.equal(ring.owner('k'), undefined)
  })

  test('gives every key to the only peer of a one-peer ring', () => {
    const ring = new Ring(['http://only:1'])
    for (const key of ['', 'a', 'zzz', '😀']) assert.equal(ring.owner(key), 'http://only:1')
  })

  test('spreads keys over peers roughly evenly', () => {
    const peers = Array.from({ length: 8 }, (_, i) => `http://10.0.0.${i + 1}:3000`)
    const ring = new Ring(peers)
    const counts = new Map<string, number>()
    for (let i = 0; i < 80_000; i++) {
      const owner = ring.owner(`key-${i}`)!
      counts.set(owner, (counts.get(owner) ?? 0) + 1)
    }
    assert.equal(counts.size, 8)
    for (const [peer, n] of counts) assert.ok(n > 4_000 && n < 20_000, `${peer} owns ${n} of 80000`)
  })

  test('moves only the keys of a peer that leaves', () => {
    const peers = Array.from({ length: 5 }, (_, i) => `http://p${i}:80`)
    const before = new Ring(peers)
    const after = new Ring(peers.slice(0, 4))
    for (let i = 0; i < 5_000; i++) {
      const key = `k${i}`
      const owner = before.owner(key)
      if (owner !== peers[4]) assert.equal(after.owner(key), owner, key)
    }
  })

  test('is immutable: its peer list is frozen', () => {
    const ring = new Ring(['http://a:1', 'http://b:1'])
    assert.ok(Object.isFrozen(ring.peers))
  })
})

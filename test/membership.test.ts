// Membership changes: setPeers while gets are in flight loses nothing, and
// only the keys of the peer that joins or leaves move (about 1/N of them).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Ring } from '../src/ring.js'
import { startLocalNodes } from './helpers/local.js'

/** movedFraction is the share of `keys` whose owner differs between two peer lists. */
function movedFraction(before: string[], after: string[], keys: number): number {
  const a = new Ring(before)
  const b = new Ring(after)
  let moved = 0
  for (let i = 0; i < keys; i++) if (a.owner(`key-${i}`) !== b.owner(`key-${i}`)) moved++
  return moved / keys
}

describe('membership changes', () => {
  test('about 1/N of the keys move when one of N peers joins or leaves, and only to or from that peer', () => {
    const figures: string[] = []
    for (const n of [3, 5, 10]) {
      const peers = Array.from({ length: n }, (_, i) => `http://10.0.0.${i + 1}:3000`)
      const leave = movedFraction(peers, peers.slice(0, -1), 50_000)
      const join = movedFraction(peers.slice(0, -1), peers, 50_000)
      figures.push(`N=${n}: leave ${(leave * 100).toFixed(1)}% (1/N ${(100 / n).toFixed(1)}%), join ${(join * 100).toFixed(1)}%`)
      // 50 points per peer leave some unevenness: within half of 1/N either way.
      assert.ok(Math.abs(leave - 1 / n) < 0.5 / n, figures.at(-1))
      assert.ok(Math.abs(join - 1 / n) < 0.5 / n, figures.at(-1))
      const before = new Ring(peers)
      const after = new Ring(peers.slice(0, -1))
      for (let i = 0; i < 5_000; i++) {
        const key = `key-${i}`
        if (before.owner(key) !== after.owner(key)) assert.equal(before.owner(key), peers.at(-1), key)
      }
    }
    console.log(`# keys moved: ${figures.join('; ')}`)
  })

  test('setPeers while gets are in flight: every get completes, in-flight loads finish once, keys move to the new owner', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(3)
    try {
      const [a, b, c] = urls as [string, string, string]
      // The third node joins: A and B start without it.
      nodes[0]!.setPeers([a, b])
      nodes[1]!.setPeers([a, b])
      const loads = nodes.map(() => new Map<string, number>())
      const groups = nodes.map((gc, i) =>
        gc.newGroup<string>({
          name: 'g',
          maxBytes: 1 << 20,
          codec: 'string',
          promote: false,
          load: async (key) => {
            loads[i]!.set(key, (loads[i]!.get(key) ?? 0) + 1)
            await new Promise((resolve) => setTimeout(resolve, 30))
            return `v:${key}`
          },
        }),
      )
      const before = Array.from({ length: 60 }, (_, i) => `m${i}`)
      // Keys asked for after the join, 40 of them owned by the new peer:
      // its share of 120 random keys depends on the nodes' random ports
      // (at most 20 in about one run in 22).
      const joined = new Ring([a, b, c])
      const after: string[] = []
      for (let i = 0, mine = 0, others = 0; mine < 40 || others < 80; i++) {
        const key = `n${i}`
        if (joined.owner(key) === c ? mine++ < 40 : others++ < 80) after.push(key)
      }
      const first = before.map((key, i) => groups[i % 2]!.get(key))
      await new Promise((resolve) => setTimeout(resolve, 10))
      nodes[0]!.setPeers([a, b, c])
      nodes[1]!.setPeers([a, b, c])
      const second = after.flatMap((key) => groups.map((g) => g.get(key)))
      const values = await Promise.all([...first, ...second])
      assert.deepEqual(values, [...before.map((k) => `v:${k}`), ...after.flatMap((k) => [`v:${k}`, `v:${k}`, `v:${k}`])])
      for (const g of groups) assert.equal(g.stats.peerErrors, 0)
      // Loads in flight during the change ran once each, where they started.
      const oldRing = new Ring([a, b])
      for (const key of before) {
        const where = loads.map((l) => l.get(key) ?? 0)
        assert.deepEqual(
          where,
          urls.map((u) => (u === oldRing.owner(key) ? 1 : 0)),
          key,
        )
      }
      // Keys asked for after it load once, on their owner in the new ring,
      // the new peer included.
      const ring = new Ring([a, b, c])
      for (const key of after) {
        const where = loads.map((l) => l.get(key) ?? 0)
        assert.deepEqual(
          where,
          urls.map((u) => (u === ring.owner(key) ? 1 : 0)),
          key,
        )
      }
      assert.equal(after.filter((k) => ring.owner(k) === c).length, 40, 'the new peer owns its share')
    } finally {
      await closeAll()
    }
  })
})

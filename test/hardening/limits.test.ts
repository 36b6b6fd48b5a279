// A flood of distinct keys from outside must not stampede the database: the
// loads run for peers are capped per group, the excess gets 503 with
// Retry-After, and a peer that gets it asks again after it (overload.test.ts),
// loading the key itself only once its peerTimeoutMs has passed.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { DEFAULT_MAX_PEER_LOADS } from '../../src/index.js'
import { keyOwnedBy, startLocalNodes } from '../helpers/local.js'
import { rawRequest } from '../helpers/raw.js'
import { deferred, waitFor } from '../helpers/wait.js'

// PEER_TIMEOUT_MS is the asker's deadline in the test of a refused peer: a
// third of it is the heartbeat period of the owner's held load, so the test
// outlives any stall of the busy machine shorter than two thirds of it.
const PEER_TIMEOUT_MS = 3_000

describe('maxPeerLoads', () => {
  test('defaults to 64', () => {
    assert.equal(DEFAULT_MAX_PEER_LOADS, 64)
  })

  test('a request that would start one load too many gets 503 with Retry-After; joining a running load is free', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(1)
    try {
      const held = deferred<string>()
      let loads = 0
      nodes[0]!.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', maxPeerLoads: 2, load: () => (loads++, held.promise) })
      const port = Number(new URL(urls[0]!).port)
      const first = [rawRequest(port, '/_groupcache/g/a'), rawRequest(port, '/_groupcache/g/b')]
      await waitFor('both loads to start', () => loads >= 2)
      const refused = await rawRequest(port, '/_groupcache/g/c')
      assert.equal(refused.status, 503)
      assert.equal(refused.headers['retry-after'], '1')
      assert.match(refused.body.toString(), /already running 2 loads for peers/)
      const joined = rawRequest(port, '/_groupcache/g/a')
      held.resolve('v')
      for (const res of await Promise.all([...first, joined])) assert.equal(res.status, 200)
      assert.equal(loads, 2)
      assert.equal((await rawRequest(port, '/_groupcache/g/c')).status, 200, 'the cap frees up as loads finish')
    } finally {
      await closeAll()
    }
  })

  test("the node's own gets are not capped, and a peer refused for longer than its peerTimeoutMs loads the key itself", async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ peerTimeoutMs: PEER_TIMEOUT_MS }))
    try {
      const held = deferred<string>()
      const loads = [0, 0]
      const groups = nodes.map((gc, i) =>
        gc.newGroup<string>({
          name: 'g',
          maxBytes: 1 << 20,
          codec: 'string',
          maxPeerLoads: 1,
          promote: false,
          load: async (k) => {
            loads[i]!++
            return i === 1 && k.startsWith('slow') ? held.promise : `by-${i}:${k}`
          },
        }),
      )
      const [asker, owner] = groups as [(typeof groups)[0], (typeof groups)[0]]
      const slow = keyOwnedBy(nodes[0]!, urls[1]!, 'slow')
      const busy = asker.get(slow)
      await waitFor('the held load to start on the owner', () => loads[1] !== 0)
      const other = keyOwnedBy(nodes[0]!, urls[1]!, 'other')
      assert.equal(await asker.get(other), `by-0:${other}`, 'refused by the busy owner, loaded here')
      assert.equal(asker.stats.peerErrors, 1)
      const own = keyOwnedBy(nodes[1]!, urls[1]!, 'own')
      assert.equal(await owner.get(own), `by-1:${own}`, "the owner's own gets are not capped")
      held.resolve('slow-value')
      assert.equal(await busy, 'slow-value')
    } finally {
      await closeAll()
    }
  })
})

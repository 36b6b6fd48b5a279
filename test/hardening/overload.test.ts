// An owner that is overloaded (503 from maxPeerLoads) or slow but alive (a
// load longer than peerTimeoutMs) must not make its askers load the key
// themselves: that is the duplicate load the cap and the owner exist to
// prevent. The asker honours Retry-After; the owner that works on a key says
// so with early headers and heartbeats, so only silence counts.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { describe, test } from 'node:test'
import { type Group, Groupcache, NotFoundError } from '../../src/index.js'
import { minuteQpsField } from '../../src/wire.js'
import { startApp } from '../helpers/apps.js'
import { deferred, keyOwnedBy, startLocalNodes } from '../helpers/local.js'
import { reservePorts, urlsFor } from '../helpers/ports.js'
import { rawRequest } from '../helpers/raw.js'

// The asker's silence budget, and a load well beyond it. Generous, so that
// a stall of a busy machine is not taken for a silent owner: the owner beats
// every third of it, so only a stall of two thirds of it (2 s) fails a test
// (at 1 s, stalls of 667 ms did, with the load average at 25).
const SILENCE_MS = 3_000
const LONG_LOAD_MS = 1.5 * SILENCE_MS

async function waitFor(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/**
 * cappedGroups makes group 'g' on each node, with `maxPeerLoads`, whose
 * loader counts loads per key and holds a key named `blocker…` until `held`
 * resolves: that fills the owner's slots for peers.
 */
function cappedGroups(
  nodes: readonly Groupcache[],
  maxPeerLoads: number,
): { held: ReturnType<typeof deferred<void>>; loads: Record<string, number>; groups: [Group<string>, Group<string>] } {
  const held = deferred<void>()
  const loads: Record<string, number> = {}
  const groups = nodes.map((gc, i) =>
    gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      maxPeerLoads,
      load: async (key) => {
        loads[key] = (loads[key] ?? 0) + 1
        if (key.startsWith('blocker')) await held.promise
        return `${key} by ${i}`
      },
    }),
  )
  return { held, loads, groups: groups as [Group<string>, Group<string>] }
}

describe('an overloaded owner', () => {
  test('is asked again after Retry-After instead of the asker loading the key itself', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2)
    try {
      const a = nodes[0]!
      const { held, loads, groups } = cappedGroups(nodes, 2)
      const [ga, gb] = groups
      const blockers = [keyOwnedBy(a, urls[1]!, 'blocker-a-'), keyOwnedBy(a, urls[1]!, 'blocker-b-')]
      const blocked = blockers.map((k) => ga.get(k))
      await waitFor('the owner to run both loads for peers', () => blockers.every((k) => loads[k] === 1))
      const key = keyOwnedBy(a, urls[1]!, 'wanted-')
      // The owner is at its cap: the asker is refused, and waits.
      const asked = ga.get(key)
      await waitFor('the asker to be refused', () => gb.stats.serverRequests >= 3)
      // Meanwhile the owner's own callers load the key (not capped).
      assert.equal(await gb.get(key), `${key} by 1`)
      assert.equal(await asked, `${key} by 1`, 'the asker got the owner’s value')
      assert.equal(loads[key], 1, 'loaded once in the cluster')
      assert.equal(ga.stats.localLoads, 0)
      assert.equal(ga.stats.peerErrors, 0)
      assert.equal(a.peerHealth()[0]?.failures, 0, 'a refusal is no failure of the peer')
      held.resolve()
      await Promise.all(blocked)
    } finally {
      await closeAll()
    }
  })
})

describe('an overloaded owner of a batch', () => {
  test('has the keys it refused asked for again after Retry-After: each key loaded once in the cluster', async () => {
    // Past the start-up window (handoffMs 0), in which a new owner would take
    // a key from the node that loaded it meanwhile, as after a minute of running.
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ handoffMs: 0 }))
    try {
      const [a, b] = nodes as [Groupcache, Groupcache]
      const { held, loads, groups } = cappedGroups(nodes, 1)
      const [ga, gb] = groups
      // The owner's one slot for peers is taken by a held load.
      const blocker = keyOwnedBy(a, urls[1]!, 'blocker-')
      const blocked = ga.get(blocker)
      await waitFor('the owner to run the held load for a peer', () => loads[blocker] === 1)
      // One key the owner has cached (answered at once), and keys it must load (refused).
      const cached = keyOwnedBy(b, urls[1]!, 'cached-')
      await gb.get(cached)
      const keys = [cached, ...Array.from({ length: 20 }, (_, i) => keyOwnedBy(a, urls[1]!, `wanted-${i}-`))]
      const asked = ga.getMany(keys)
      await waitFor('the batch to be refused', () => gb.stats.serverRequests >= 1 + keys.length)
      held.resolve()
      await blocked
      const got = await asked
      // The owner's own callers then find what the asker's retry had it load.
      const own = await gb.getMany(keys)
      assert.deepEqual(
        keys.map((key) => loads[key]),
        keys.map(() => 1),
        'each key loaded once in the cluster',
      )
      const values = keys.map((key) => [key, `${key} by 1`])
      assert.deepEqual([...got], values, 'the asker got the owner’s values')
      assert.deepEqual([...own], values)
      assert.equal(ga.stats.localLoads, 0)
      assert.equal(ga.stats.peerErrors, 0)
      assert.equal(a.peerHealth()[0]?.failures, 0, 'a refusal is no failure of the peer')
    } finally {
      await closeAll()
    }
  })
})

describe('a slow but working owner', () => {
  test('keeps its asker waiting past peerTimeoutMs: one load, no breaker failure', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ peerTimeoutMs: SILENCE_MS }))
    try {
      const held = deferred<void>()
      let started = 0
      const loads: number[] = [0, 0]
      const groups = nodes.map((gc, i) =>
        gc.newGroup<string>({
          name: 'g',
          maxBytes: 1 << 20,
          codec: 'string',
          load: async (key) => {
            loads[i]!++
            started++
            await held.promise
            return `${key} by ${i}`
          },
        }),
      )
      const key = keyOwnedBy(nodes[0]!, urls[1]!)
      const asked = Promise.all([groups[0]!.get(key), groups[0]!.get(key)])
      await waitFor('the owner to start loading', () => started === 1)
      // Well past the asker's peerTimeoutMs: it must still be waiting.
      await new Promise((resolve) => setTimeout(resolve, LONG_LOAD_MS))
      assert.deepEqual(loads, [0, 1], 'the asker did not give up and load the key itself')
      held.resolve()
      assert.deepEqual(await asked, [`${key} by 1`, `${key} by 1`])
      assert.deepEqual(loads, [0, 1])
      assert.equal(groups[0]!.stats.peerErrors, 0)
      assert.equal(nodes[0]!.peerHealth()[0]?.state, 'closed')
      assert.equal(nodes[0]!.peerHealth()[0]?.failures, 0)
    } finally {
      await closeAll()
    }
  })

  test('keeps the asker of a batch waiting past peerTimeoutMs: each key loaded once, no breaker failure', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ peerTimeoutMs: SILENCE_MS, handoffMs: 0 }))
    try {
      const held = deferred<void>()
      const loads: Record<string, number> = {}
      const groups = nodes.map((gc, i) =>
        gc.newGroup<string>({
          name: 'g',
          maxBytes: 1 << 20,
          codec: 'string',
          load: async (key) => {
            loads[key] = (loads[key] ?? 0) + 1
            await held.promise
            return `${key} by ${i}`
          },
        }),
      )
      const keys = Array.from({ length: 5 }, (_, i) => keyOwnedBy(nodes[0]!, urls[1]!, `slow-${i}-`))
      const asked = groups[0]!.getMany(keys)
      await waitFor('the owner to start loading', () => keys.every((key) => loads[key] === 1))
      // Well past the asker's peerTimeoutMs: it must still be waiting.
      await new Promise((resolve) => setTimeout(resolve, LONG_LOAD_MS))
      assert.deepEqual(
        keys.map((key) => loads[key]),
        keys.map(() => 1),
        'the asker did not give up and load the keys itself',
      )
      held.resolve()
      assert.deepEqual(
        [...(await asked)],
        keys.map((key) => [key, `${key} by 1`]),
      )
      assert.deepEqual(
        keys.map((key) => loads[key]),
        keys.map(() => 1),
      )
      assert.equal(groups[0]!.stats.peerErrors, 0)
      assert.equal(nodes[0]!.peerHealth()[0]?.state, 'closed')
      assert.equal(nodes[0]!.peerHealth()[0]?.failures, 0)
    } finally {
      await closeAll()
    }
  })

  test('answers a Go client (no wait header) as Go would: one plain 200 when the load ends', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(1, () => ({ peerTimeoutMs: SILENCE_MS }))
    try {
      const held = deferred<void>()
      nodes[0]!.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: async (k) => (await held.promise, `v:${k}`) })
      const answer = rawRequest(Number(new URL(urls[0]!).port), '/_groupcache/g/slow')
      setTimeout(() => held.resolve(), LONG_LOAD_MS)
      const res = await answer
      assert.equal(res.status, 200)
      assert.equal(res.headers['content-type'], 'application/x-protobuf')
      // The value, then Go's own minute_qps field (which Go reads and ignores): one request so far.
      assert.equal(
        res.body.toString('hex'),
        `0a06${Buffer.from('v:slow').toString('hex')}${Buffer.from(minuteQpsField(1 / 60)).toString('hex')}`,
      )
    } finally {
      await closeAll()
    }
  })
})

describe('a slow owner behind each adapter', () => {
  for (const framework of ['express', 'fastify', 'koa'] as const) {
    test(`${framework} keeps the asker informed while the load runs`, async () => {
      const [ownerPort, askerPort] = (await reservePorts(2)) as [number, number]
      const [ownerUrl, askerUrl] = urlsFor([ownerPort, askerPort]) as [string, string]
      const peers = [ownerUrl, askerUrl]
      const held = deferred<void>()
      let loads = 0
      const app = await startApp(
        framework,
        { self: ownerUrl, peers, secret: 'slow-secret', peerTimeoutMs: SILENCE_MS },
        (gc) =>
          void gc.newGroup<string>({
            name: 'g',
            maxBytes: 1 << 20,
            codec: 'string',
            load: async (k) => (loads++, await held.promise, `v:${k}`),
          }),
        ownerPort,
      )
      const asker = new Groupcache({ self: askerUrl, peers, secret: 'slow-secret', peerTimeoutMs: SILENCE_MS })
      try {
        let askerLoads = 0
        const group = asker.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => (askerLoads++, `local:${k}`) })
        const key = keyOwnedBy(asker, ownerUrl)
        const asked = group.get(key)
        await waitFor('the owner to start loading', () => loads === 1)
        await new Promise((resolve) => setTimeout(resolve, LONG_LOAD_MS))
        held.resolve()
        assert.equal(await asked, `v:${key}`)
        assert.equal(askerLoads, 0)
        assert.equal(group.stats.peerErrors, 0)
      } finally {
        await asker.close()
        await app.close()
      }
    })
  }
})

describe('a deferred answer', () => {
  test("carries the owner's verdict when the slow load fails: no second load", async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ peerTimeoutMs: SILENCE_MS }))
    try {
      const loads = [0, 0]
      const groups = nodes.map((gc, i) =>
        gc.newGroup<string>({
          name: 'g',
          maxBytes: 1 << 20,
          codec: 'string',
          load: async (key) => {
            loads[i]!++
            await new Promise((resolve) => setTimeout(resolve, LONG_LOAD_MS))
            if (key.startsWith('nf')) throw new NotFoundError(`no ${key}`)
            throw new Error('the database is down')
          },
        }),
      )
      await assert.rejects(groups[0]!.get(keyOwnedBy(nodes[0]!, urls[1]!, 'nf-')), NotFoundError)
      await assert.rejects(groups[0]!.get(keyOwnedBy(nodes[0]!, urls[1]!, 'lf-')), {
        code: 'ERR_GROUPCACHE_LOAD_FAILED',
        message: /the database is down/,
      })
      assert.deepEqual(loads, [0, 2])
      assert.equal(groups[0]!.stats.peerErrors, 0)
    } finally {
      await closeAll()
    }
  })

  test('that falls silent counts as a failed peer after peerTimeoutMs of silence', async () => {
    const sockets = new Set<Socket>()
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-groupcache-deferred', 'x-groupcache-protocol': '1' })
      res.write(Buffer.of(0)) // one heartbeat, then nothing
    })
    server.on('connection', (s) => (sockets.add(s), s.on('close', () => sockets.delete(s))))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const peer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const self = 'http://127.0.0.1:1'
    const gc = new Groupcache({ self, peers: [self, peer], peerTimeoutMs: 300 })
    try {
      const group = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => `local:${k}` })
      const key = keyOwnedBy(gc, peer)
      assert.equal(await group.get(key), `local:${key}`)
      assert.equal(group.stats.peerErrors, 1)
      assert.match(gc.peerHealth()[0]?.lastError ?? '', /timed out/)
    } finally {
      await gc.close({ graceMs: 100 })
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    }
  })
})

// Keeping the cache through membership changes: a new owner peeks at a
// moved key's previous owner, a leaving node hands its entries over, and a
// rolling restart of every node reloads almost nothing.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import { BodyTooLarge } from '../src/errors.js'
import { decodeHandoff, encodeHandoff, HANDOFF_TYPE, HandoffError, MAX_HANDOFF_BODY_BYTES, PEEK_HEADER } from '../src/handoff.js'
import { GENERATION_HEADER, type Group, Groupcache, type PeerRequest } from '../src/index.js'
import { type Cluster, startCluster, startNode, type TestNode } from './helpers/cluster.js'
import { keyOwnedBy, startLocalNodes } from './helpers/local.js'
import { reservePorts, urlsFor } from './helpers/ports.js'
import { getAll, KEYS, loadsOf, PEEK_TIMEOUT_MS, rollingRestart } from './helpers/rolling.js'

describe('encodeHandoff and decodeHandoff', () => {
  test('round-trip keys, values and expiries, values copied out of the body', () => {
    const entries = [
      { key: 'a', value: Buffer.from('one'), expire: 0 },
      { key: 'ключ 🔑', value: new Uint8Array(0), expire: 1_800_000_000_000 },
    ]
    const body = encodeHandoff(entries)
    const decoded = decodeHandoff(body, 4096)
    assert.deepEqual(
      decoded.map((e) => ({ key: e.key, value: Buffer.from(e.value).toString(), expire: e.expire })),
      [
        { key: 'a', value: 'one', expire: 0 },
        { key: 'ключ 🔑', value: '', expire: 1_800_000_000_000 },
      ],
    )
    body.fill(0)
    assert.equal(Buffer.from(decoded[0]!.value).toString(), 'one')
  })

  test('refuse truncated bodies, long keys, keys that are not UTF-8 and malformed values', () => {
    const body = encodeHandoff([{ key: 'abc', value: Buffer.from('xyz'), expire: 5 }])
    for (let cut = 1; cut < body.length; cut++) {
      assert.throws(() => decodeHandoff(body.subarray(0, cut), 4096), Error, `cut at ${cut}`)
    }
    assert.throws(() => decodeHandoff(body, 2), HandoffError)
    const badKey = Buffer.from([0, 0, 0, 1, 0xff, 0, 0, 0, 2, 0x0a, 0x00])
    assert.throws(() => decodeHandoff(badKey, 4096), HandoffError)
    const huge = Buffer.from([0xff, 0xff, 0xff, 0xff])
    assert.throws(() => decodeHandoff(huge, 4096), HandoffError)
    const badMsg = Buffer.from([0, 0, 0, 1, 0x61, 0, 0, 0, 1, 0x0f])
    assert.throws(() => decodeHandoff(badMsg, 4096))
    assert.ok(MAX_HANDOFF_BODY_BYTES >= 1024 * 1024)
  })
})

const SECRET = 'handoff-test-secret'

/** handOver builds a hand-off request for the handler, as a peer (or an attacker) would send it. */
function handOver(body: Uint8Array, headers: Record<string, string> = {}): PeerRequest {
  return {
    method: 'PUT',
    url: '/_groupcache/g',
    headers: { authorization: `Bearer ${SECRET}`, 'content-type': HANDOFF_TYPE, ...headers },
    readBody: async (max) => {
      if (body.length > max) throw new BodyTooLarge(`over ${max} bytes`)
      return body
    },
  }
}

function receiver(now: () => number = Date.now): { gc: Groupcache; group: Group<string>; loads: string[] } {
  const loads: string[] = []
  const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'], secret: SECRET, now })
  const group = gc.newGroup<string>({
    name: 'g',
    maxBytes: 1 << 20,
    codec: 'string',
    load: (key) => {
      loads.push(key)
      return `loaded:${key}`
    },
  })
  return { gc, group, loads }
}

const one = (key: string, value: string, expire = 0): Uint8Array => encodeHandoff([{ key, value: Buffer.from(value), expire }])

describe('the hand-off and peek requests, as an attacker sends them', () => {
  test('a hand-off without the secret, or with a wrong one, is refused with 401 and stores nothing', async () => {
    const { gc, group, loads } = receiver()
    for (const authorization of ['', 'Bearer nope', `Bearer ${SECRET} `]) {
      const res = await gc.handler(handOver(one('k', 'forged'), { authorization }))
      assert.equal(res.status, 401)
    }
    assert.equal(await group.get('k'), 'loaded:k')
    assert.deepEqual(loads, ['k'])
    assert.equal(group.stats.handoffsReceived, 0)
    await gc.close()
  })

  test('an oversized hand-off is refused with 413, garbage with 400, and neither stores anything', async () => {
    const { gc, group } = receiver()
    const big = new Uint8Array(MAX_HANDOFF_BODY_BYTES + 1)
    assert.equal((await gc.handler(handOver(big))).status, 413)
    for (const garbage of [Buffer.from('garbage'), Buffer.from([0, 0, 0, 1]), Buffer.concat([one('a', 'x'), Buffer.from([1])])]) {
      assert.equal((await gc.handler(handOver(garbage))).status, 400)
    }
    assert.equal(group.cacheStats('main').items, 0)
    assert.equal(group.stats.handoffsReceived, 0)
    await gc.close()
  })

  test('a hand-off from an older generation is refused with 409; a newer one moves the receiver to it first', async () => {
    const { gc, group } = receiver()
    await group.clear() // generation 1
    assert.equal((await gc.handler(handOver(one('old', 'stale')))).status, 409)
    assert.equal((await gc.handler(handOver(one('old', 'stale'), { [GENERATION_HEADER]: '1' }))).status, 204)
    assert.equal(await group.get('old'), 'stale')
    await group.set('mine', 'fresh')
    assert.equal((await gc.handler(handOver(one('new', 'later'), { [GENERATION_HEADER]: '2' }))).status, 204)
    assert.equal(group.generation, 2)
    assert.equal(await group.get('new'), 'later')
    assert.equal(group.cacheStats('main').items, 1, 'the move to generation 2 dropped what generation 1 held')
    await gc.close()
  })

  test('a hand-off keeps what the receiver holds, skips expired entries and keeps expiries', async () => {
    let now = 1_000_000
    const { gc, group, loads } = receiver(() => now)
    await group.set('held', 'receiver')
    const body = encodeHandoff([
      { key: 'held', value: Buffer.from('sender'), expire: 0 },
      { key: 'gone', value: Buffer.from('expired'), expire: now },
      { key: 'short', value: Buffer.from('lives'), expire: now + 100 },
    ])
    assert.equal((await gc.handler(handOver(body))).status, 204)
    assert.equal(group.stats.handoffsReceived, 1)
    assert.equal(await group.get('held'), 'receiver')
    assert.equal(await group.get('short'), 'lives')
    now += 100
    assert.equal(await group.get('short'), 'loaded:short')
    assert.equal(await group.get('gone'), 'loaded:gone')
    assert.deepEqual(loads, ['short', 'gone'])
    await gc.close()
  })

  test('a peek answers only from the main cache, 404 otherwise, and never runs the loader', async () => {
    const { gc, group, loads } = receiver()
    const peek = (key: string): PeerRequest => ({
      method: 'GET',
      url: `/_groupcache/g/${key}`,
      headers: { authorization: `Bearer ${SECRET}`, [PEEK_HEADER]: '1' },
    })
    assert.equal((await gc.handler(peek('absent'))).status, 404)
    assert.deepEqual(loads, [])
    await group.get('present')
    const hit = await gc.handler(peek('present'))
    assert.equal(hit.status, 200)
    assert.match(Buffer.from(hit.body).toString(), /loaded:present/)
    assert.equal((await gc.handler({ ...peek('present'), headers: { [PEEK_HEADER]: '1' } })).status, 401)
    assert.deepEqual(loads, ['present'])
    await gc.close()
  })
})

describe('Go peers', () => {
  test('a peer without our protocol marker (a Go node) is never peeked at nor handed entries: only probed', async () => {
    const seen: string[] = []
    const goLike = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`)
      res.writeHead(400).end('bad request')
    })
    await new Promise<void>((resolve) => goLike.listen(0, '127.0.0.1', resolve))
    const [port] = await reservePorts(1)
    const self = urlsFor([port!])[0]!
    const go = `http://127.0.0.1:${(goLike.address() as AddressInfo).port}`
    const gc = new Groupcache({ self, peers: [self, go], secret: SECRET })
    const loads: string[] = []
    const group = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => (loads.push(key), `v:${key}`) })
    try {
      await gc.listen({ port: port!, host: '127.0.0.1' })
      const mine = Array.from({ length: 5 }, (_, i) => keyOwnedBy(gc, self, `k${i}-`))
      for (const key of mine) assert.equal(await group.get(key), `v:${key}`)
      assert.deepEqual(loads, mine)
      assert.equal(group.stats.peekHits, 0)
      await gc.close()
      assert.ok(seen.length >= 1)
      for (const request of seen) assert.equal(request, 'GET /_groupcache/', 'only the marker probe')
      assert.equal(group.stats.handoffsSent, 0)
    } finally {
      await gc.close()
      goLike.closeAllConnections()
      await new Promise((resolve) => goLike.close(resolve))
    }
  })
})

describe('hand-off on close (in process)', () => {
  test("close() hands the main cache to each key's next owner, which then serves it without loading; handoff: false does not", async () => {
    for (const handoff of [true, false]) {
      const loads: string[] = []
      const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ secret: SECRET, handoffMs: 0 }))
      try {
        const groups = nodes.map((gc) =>
          gc.newGroup<string>({
            name: 'g',
            maxBytes: 1 << 20,
            codec: 'string',
            promote: false,
            load: (key) => (loads.push(key), `v:${key}`),
          }),
        )
        const keys = Array.from({ length: 20 }, (_, i) => keyOwnedBy(nodes[0]!, urls[0]!, `k${i}-`))
        for (const key of keys) await groups[1]!.get(key)
        assert.equal(loads.length, 20)
        await nodes[0]!.close({ handoff })
        nodes[1]!.setPeers([urls[1]!])
        for (const key of keys) assert.equal(await groups[1]!.get(key), `v:${key}`)
        assert.equal(loads.length, handoff ? 20 : 40)
        assert.equal(groups[0]!.stats.handoffsSent, handoff ? 20 : 0)
        assert.equal(groups[1]!.stats.handoffsReceived, handoff ? 20 : 0)
      } finally {
        await closeAll()
      }
    }
  })

  test('handoffBytes bounds the hand-off, most recently used entries first', async () => {
    const loads: string[] = []
    const { nodes, urls, closeAll } = await startLocalNodes(2, (i) => ({
      secret: SECRET,
      handoffMs: 0,
      ...(i === 0 ? { handoffBytes: 300 } : {}),
    }))
    try {
      const groups = nodes.map((gc) =>
        gc.newGroup<string>({
          name: 'g',
          maxBytes: 1 << 20,
          codec: 'string',
          promote: false,
          load: (key) => (loads.push(key), `v:${key}`),
        }),
      )
      const keys = Array.from({ length: 10 }, (_, i) => keyOwnedBy(nodes[0]!, urls[0]!, `k${i}-`))
      for (const key of keys) await groups[0]!.get(key)
      await nodes[0]!.close()
      const sent = groups[0]!.stats.handoffsSent
      assert.ok(sent > 0 && sent < 10, `sent ${sent}`)
      nodes[1]!.setPeers([urls[1]!])
      loads.length = 0
      for (const key of keys) await groups[1]!.get(key)
      assert.deepEqual(loads, keys.slice(0, 10 - sent), 'the least recently used were left behind')
    } finally {
      await closeAll()
    }
  })
})

describe('peek on join (real processes)', () => {
  let cluster: Cluster | undefined
  let joined: TestNode | undefined
  after(async () => {
    await Promise.all([cluster?.stop(), joined?.stop()])
  })

  test('a 4th node joins 3 nodes holding 3,000 warm keys: the keys that moved to it are taken from their previous owners, not loaded', async () => {
    // No hot copies: every get of a moved key reaches its new owner.
    cluster = await startCluster(3, () => ({ peekTimeoutMs: PEEK_TIMEOUT_MS, promote: false }))
    const { nodes, urls } = cluster
    assert.equal(await getAll(nodes[0]!, KEYS), 0)
    const [port] = await reservePorts(1)
    const url = urlsFor([port!])[0]!
    const all = [...urls, url]
    joined = await startNode({ self: url, peers: all, port: port!, peekTimeoutMs: PEEK_TIMEOUT_MS, promote: false })
    await Promise.all(nodes.map((node) => node.setPeers(all)))
    const moved: string[] = []
    for (const key of KEYS) if ((await joined.owner(key)) === url) moved.push(key)
    assert.ok(moved.length > 300, `expected a quarter of the keys to move, got ${moved.length}`)
    const before = await loadsOf(nodes, moved)
    assert.equal(before, moved.length)
    const everyone = [...nodes, joined]
    // Gets arrive anywhere, as behind a load balancer.
    const failed = await Promise.all(
      everyone.map((node, i) =>
        getAll(
          node,
          KEYS.filter((_, k) => k % 4 === i),
        ),
      ),
    )
    assert.deepEqual(failed, [0, 0, 0, 0])
    const reloaded = (await loadsOf(everyone, moved)) - before
    assert.ok(reloaded <= moved.length * 0.05, `${reloaded} of ${moved.length} moved keys were loaded again`)
    // A moved key asked of its previous owner is a hit there; the rest
    // reach the new owner, which takes them from the previous owner.
    const { peekHits } = (await joined.stats()).stats
    assert.ok(peekHits! >= moved.length / 2, `${peekHits} peek hits for ${moved.length} moved keys`)
  })
})

describe('hand-off on leave (real processes)', () => {
  let cluster: Cluster | undefined
  after(async () => {
    await cluster?.stop()
  })

  test('one of 3 nodes holding 3,000 warm keys closes and the others drop it: its keys are handed over, not loaded again', async () => {
    cluster = await startCluster(3, () => ({ peekTimeoutMs: PEEK_TIMEOUT_MS, promote: false }))
    const { nodes, urls } = cluster
    assert.equal(await getAll(nodes[0]!, KEYS), 0)
    const leaving = nodes[2]!
    const its: string[] = []
    for (const key of KEYS) if ((await nodes[0]!.owner(key)) === leaving.url) its.push(key)
    const stayers = nodes.slice(0, 2)
    const before = await loadsOf(stayers, its)
    await leaving.close()
    await Promise.all(stayers.map((node) => node.setPeers(urls.slice(0, 2))))
    const failed = await Promise.all(
      stayers.map((node, i) =>
        getAll(
          node,
          KEYS.filter((_, k) => k % 2 === i),
        ),
      ),
    )
    assert.deepEqual(failed, [0, 0])
    const reloaded = (await loadsOf(stayers, its)) - before
    assert.ok(reloaded <= its.length * 0.05, `${reloaded} of the leaving node's ${its.length} keys were loaded again`)
    let received = 0
    for (const node of stayers) received += (await node.stats()).stats.handoffsReceived!
    assert.ok(received >= its.length * 0.95, `${received} of ${its.length} entries were handed over`)
  })
})

describe('a rolling restart (real processes)', () => {
  test('restarting 3 nodes holding 3,000 warm keys one at a time under steady gets reloads at most 10 % of the keys and fails no get', async () => {
    const { loads, failed, errors } = await rollingRestart(true)
    assert.deepEqual(errors, [])
    assert.equal(failed, 0)
    assert.ok(loads <= KEYS.length * 0.1, `${loads} loads for ${KEYS.length} keys`)
  })
})

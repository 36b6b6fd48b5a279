// Peeks and hand-offs (issue 16) as an attacker and a bad peer would use
// them: a hand-off is a change (PUT) and needs the secret like any other;
// forged, oversized and garbage hand-offs get a 4xx and change nothing; a
// peek, of one key or a batch, answers from memory only, never loading or
// forwarding; Go peers are never peeked at nor handed entries.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import { decodeBatchAnswer, encodeBatchKeys } from '../../src/batch.js'
import { BodyTooLarge } from '../../src/errors.js'
import { encodeHandoff, HANDOFF_TYPE, MAX_HANDOFF_BODY_BYTES, PEEK_HEADER } from '../../src/handoff.js'
import {
  BATCH_CONTENT_TYPE,
  GENERATION_HEADER,
  type Group,
  Groupcache,
  type GroupcacheOptions,
  MAX_GENERATION_LEAD_MS,
  type PeerRequest,
} from '../../src/index.js'
import { keyOwnedBy, startLocalNodes } from '../helpers/local.js'
import { reservePorts, urlsFor } from '../helpers/ports.js'

const SECRET = 'handoff-test-secret'
const AUTH = { authorization: `Bearer ${SECRET}` }

/** handOver builds a hand-off request for the handler, as a peer (or an attacker) would send it. */
function handOver(body: Uint8Array, headers: Record<string, string> = {}): PeerRequest {
  return {
    method: 'PUT',
    url: '/_groupcache/g',
    headers: { ...AUTH, 'content-type': HANDOFF_TYPE, ...headers },
    readBody: async (max) => {
      if (body.length > max) throw new BodyTooLarge(`over ${max} bytes`)
      return body
    },
  }
}

/** peekAt builds a peek of one key, or of several (a batch), as a new owner sends it. */
function peekAt(keys: string | string[], headers: Record<string, string> = AUTH): PeerRequest {
  if (typeof keys === 'string') return { method: 'GET', url: `/_groupcache/g/${keys}`, headers: { ...headers, [PEEK_HEADER]: '1' } }
  const body = encodeBatchKeys(keys)
  return {
    method: 'POST',
    url: '/_groupcache/g',
    headers: { ...headers, [PEEK_HEADER]: '1', 'content-type': BATCH_CONTENT_TYPE },
    readBody: async () => body,
  }
}

function receiver(
  options: Partial<GroupcacheOptions> = {},
  group: { notFoundTtlMs?: number; ttlMs?: number; staleMs?: number } = {},
): { gc: Groupcache; group: Group<string>; loads: string[] } {
  const loads: string[] = []
  const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'], secret: SECRET, ...options })
  return {
    gc,
    loads,
    group: gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      ...group,
      load: (key) => {
        loads.push(key)
        if (key.startsWith('missing')) throw new (class extends Error {})('x')
        return `loaded:${key}`
      },
    }),
  }
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

  test('a node without a secret refuses every hand-off with 403 and stores nothing, unless it dangerously allows changes', async () => {
    const open = receiver({ secret: undefined })
    const res = await open.gc.handler(handOver(one('k', 'forged'), { authorization: '' }))
    assert.equal(res.status, 403)
    assert.equal(await open.group.get('k'), 'loaded:k')
    assert.equal(open.group.stats.handoffsReceived, 0)
    await open.gc.close()
    const dangerous = receiver({ secret: undefined, dangerouslyAllowUnauthenticatedChanges: true })
    assert.equal((await dangerous.gc.handler(handOver(one('k', 'handed'), { authorization: '' }))).status, 204)
    assert.equal(await dangerous.group.get('k'), 'handed')
    await dangerous.gc.close()
  })

  test('an oversized hand-off is refused with 413, garbage with 400, and neither stores anything', async () => {
    const { gc, group } = receiver()
    const big = new Uint8Array(MAX_HANDOFF_BODY_BYTES + 1)
    assert.equal((await gc.handler(handOver(big))).status, 413)
    const longKey = encodeHandoff([{ key: 'k'.repeat(5000), value: Buffer.from('x'), expire: 0 }])
    const garbage = [Buffer.from('garbage'), Buffer.from([0, 0, 0, 1]), Buffer.concat([one('a', 'x'), Buffer.from([1])]), longKey]
    for (const body of garbage) assert.equal((await gc.handler(handOver(body))).status, 400)
    // A generation the receiver cannot accept (far ahead of its clock, not a number) refuses the whole hand-off.
    for (const generation of [String(Date.now() + MAX_GENERATION_LEAD_MS + 60_000), 'nope', '-1']) {
      assert.equal((await gc.handler(handOver(one('a', 'x'), { [GENERATION_HEADER]: generation }))).status, 400)
    }
    assert.equal(group.generation, 0)
    assert.equal(group.cacheStats('main').items, 0)
    assert.equal(group.stats.handoffsReceived, 0)
    await gc.close()
  })

  test('a hand-off from an older generation is refused with 409; a newer one moves the receiver to it first', async () => {
    const { gc, group } = receiver()
    await group.clear()
    const cleared = group.generation
    assert.ok(cleared > 0)
    assert.equal((await gc.handler(handOver(one('old', 'stale')))).status, 409)
    assert.equal((await gc.handler(handOver(one('old', 'stale'), { [GENERATION_HEADER]: String(cleared - 1) }))).status, 409)
    assert.equal((await gc.handler(handOver(one('old', 'current'), { [GENERATION_HEADER]: String(cleared) }))).status, 204)
    assert.equal(await group.get('old'), 'current')
    await group.set('mine', 'fresh')
    assert.equal((await gc.handler(handOver(one('new', 'later'), { [GENERATION_HEADER]: String(cleared + 1) }))).status, 204)
    assert.equal(group.generation, cleared + 1)
    assert.equal(await group.get('new'), 'later')
    assert.equal(group.cacheStats('main').items, 1, 'the move to the newer generation dropped what the older one held')
    await gc.close()
  })

  test('a hand-off keeps what the receiver holds, skips expired and oversized entries, and keeps expiries', async () => {
    let now = 1_000_000
    const { gc, group, loads } = receiver({ now: () => now })
    await group.set('held', 'receiver')
    const body = encodeHandoff([
      { key: 'held', value: Buffer.from('sender'), expire: 0 },
      { key: 'gone', value: Buffer.from('expired'), expire: now },
      { key: 'short', value: Buffer.from('lives'), expire: now + 100 },
      { key: 'large', value: Buffer.alloc((1 << 20) / 8 + 1), expire: 0 },
    ])
    assert.equal((await gc.handler(handOver(body))).status, 204)
    assert.equal(group.stats.handoffsReceived, 1)
    assert.equal(await group.get('held'), 'receiver')
    assert.equal(await group.get('short'), 'lives')
    now += 100
    assert.equal(await group.get('short'), 'loaded:short')
    assert.equal(await group.get('gone'), 'loaded:gone')
    assert.equal(await group.get('large'), 'loaded:large')
    assert.deepEqual(loads, ['short', 'gone', 'large'])
    await gc.close()
  })

  test('a peek, of one key or a batch, answers only fresh entries of the main cache, and never runs the loader', async () => {
    let now = 1_000_000
    const { gc, group, loads } = receiver({ now: () => now }, { notFoundTtlMs: 60_000, ttlMs: 1_000, staleMs: 60_000 })
    assert.equal((await gc.handler(peekAt('absent'))).status, 404)
    assert.deepEqual(loads, [])
    await group.get('present')
    await assert.rejects(group.get('missing'))
    const hit = await gc.handler(peekAt('present'))
    assert.equal(hit.status, 200)
    assert.match(Buffer.from(hit.body).toString(), /loaded:present/)
    assert.equal((await gc.handler(peekAt('missing'))).status, 404, 'a remembered not-found verdict is no value')
    const batch = await gc.handler(peekAt(['present', 'absent', 'missing', 'other']))
    assert.equal(batch.status, 200)
    const items = decodeBatchAnswer(batch.body)
    assert.deepEqual(
      items.map((item) => [item.key, 'value' in item ? Buffer.from(item.value).toString() : undefined]),
      [
        ['present', 'loaded:present'],
        ['absent', undefined],
        ['missing', undefined],
        ['other', undefined],
      ],
    )
    now += 1_000
    assert.equal((await gc.handler(peekAt('present'))).status, 404, 'a stale value needs a refresh, which is a load')
    assert.equal((await gc.handler({ ...peekAt('present'), headers: { [PEEK_HEADER]: '1' } })).status, 401)
    assert.deepEqual(loads, ['present', 'missing'])
    await gc.close()
  })

  test('a peek at a node that does not own the key is answered from memory, never forwarded to the owner', async () => {
    const loads: string[] = []
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ secret: SECRET, handoffMs: 0 }))
    try {
      const groups = nodes.map((gc) =>
        gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => (loads.push(key), `v:${key}`) }),
      )
      const key = keyOwnedBy(nodes[1]!, urls[1]!)
      assert.equal((await nodes[0]!.handler(peekAt(key))).status, 404)
      assert.equal((await nodes[0]!.handler(peekAt([key, `${key}-2`]))).status, 200)
      assert.deepEqual(loads, [])
      assert.deepEqual(
        groups.map((g) => g.stats.serverRequests),
        [0, 0],
      )
    } finally {
      await closeAll()
    }
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
      // Keys this node owns, which the Go node owned before it started: one by one, then as a batch.
      const mine = Array.from({ length: 10 }, (_, i) => keyOwnedBy(gc, self, `k${i}-`))
      for (const key of mine.slice(0, 5)) assert.equal(await group.get(key), `v:${key}`)
      assert.deepEqual(
        [...(await group.getMany(mine.slice(5))).values()],
        mine.slice(5).map((key) => `v:${key}`),
      )
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

// The batch request (POST {basePath}{group}, application/x-groupcache-batch)
// attacked from both sides: an outsider or a bad peer sending batches to
// our endpoint, and peers that answer batches badly or not at all.
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import {
  BATCH_CONTENT_TYPE,
  type BatchItem,
  decodeBatchAnswer,
  decodeBatchKeys,
  encodeBatchAnswer,
  encodeBatchKeys,
  MAX_BATCH_BODY_BYTES,
  MAX_BATCH_KEYS,
} from '../../src/batch.js'
import { type Group, Groupcache } from '../../src/index.js'
import { encodeGetResponse } from '../../src/wire.js'
import { deferred, keyOwnedBy } from '../helpers/local.js'
import { reservePorts, urlsFor } from '../helpers/ports.js'
import { rawRequest } from '../helpers/raw.js'

const SECRET = 'batch-secret'
const AUTH = { authorization: `Bearer ${SECRET}` }
const BATCH = { ...AUTH, 'content-type': BATCH_CONTENT_TYPE }
const MAX_KEY_BYTES = 64
const PATH = '/_groupcache/g'

function items(body: Buffer): Map<string, BatchItem> {
  return new Map(decodeBatchAnswer(body).map((item) => [item.key, item]))
}

/** until waits, a few ms at a time, for a condition (at most 10 s). */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in 10 s')
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

describe('the batch endpoint, attacked', () => {
  let gc: Groupcache
  let port: number
  let loads: string[]
  let running = 0
  let mostAtOnce = 0
  const holds = new Map<string, Promise<void>>()

  before(async () => {
    ;[port] = (await reservePorts(1)) as [number]
    const self = urlsFor([port])[0] as string
    // A second peer that owns half the keys and is never reachable: a batch
    // naming its keys must be served here, never forwarded there.
    gc = new Groupcache({ self, peers: [self, 'http://127.0.0.1:9'], secret: SECRET, maxKeyBytes: MAX_KEY_BYTES })
    gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      maxPeerLoads: 4,
      load: async (key) => {
        loads.push(key)
        running++
        mostAtOnce = Math.max(mostAtOnce, running)
        try {
          await (holds.get(key) ?? new Promise((resolve) => setTimeout(resolve, 5)))
        } finally {
          running--
        }
        if (key.startsWith('fail')) throw new Error(`cannot load ${key}`)
        return `v:${key}`
      },
    })
    await gc.listen({ port, host: '127.0.0.1' })
  })

  after(() => gc.close())

  const reset = (): void => {
    loads = []
    mostAtOnce = 0
  }
  const post = (body: Uint8Array, headers: Record<string, string> = BATCH, path = PATH) =>
    rawRequest(port, path, { method: 'POST', headers, body })

  test('a batch without the secret, or with a wrong one, gets 401 and loads nothing', async () => {
    reset()
    const body = encodeBatchKeys(['a1', 'a2'])
    for (const authorization of [undefined, 'Bearer wrong', `Bearer ${SECRET}x`]) {
      const headers: Record<string, string> = { 'content-type': BATCH_CONTENT_TYPE }
      if (authorization !== undefined) headers.authorization = authorization
      const res = await post(body, headers)
      assert.equal(res.status, 401, String(authorization))
    }
    assert.deepEqual(loads, [])
  })

  test('answers each key with its value or its verdict, with the loader run once per key', async () => {
    reset()
    const res = await post(encodeBatchKeys(['b1', 'fail-b2', 'b1', '']))
    assert.equal(res.status, 200)
    assert.equal(res.headers['content-type'], BATCH_CONTENT_TYPE)
    assert.equal(res.headers['x-groupcache-protocol'], '1')
    const got = items(res.body)
    // Each value carries the key's rate: b1 was asked for twice.
    assert.deepEqual(got.get('b1'), { key: 'b1', value: new Uint8Array(Buffer.from('v:b1')), expire: 0, generation: 0, minuteQps: 2 / 60 })
    assert.deepEqual(got.get(''), { key: '', value: new Uint8Array(Buffer.from('v:')), expire: 0, generation: 0, minuteQps: 1 / 60 })
    const failed = got.get('fail-b2')
    assert.ok(failed !== undefined && 'error' in failed)
    assert.equal(failed.error, 'ERR_GROUPCACHE_LOAD_FAILED')
    assert.match(failed.message, /cannot load fail-b2/)
    assert.deepEqual(loads.sort(), ['', 'b1', 'fail-b2'])
  })

  test('refuses oversized batches before loading anything: too many keys (400), too many bytes (413), a key too long (400)', async () => {
    reset()
    const many = Array.from({ length: MAX_BATCH_KEYS + 1 }, (_, i) => `m${i}`)
    const tooMany = await post(encodeBatchKeys(many))
    assert.equal(tooMany.status, 400)
    assert.match(tooMany.body.toString(), /more than 1000 keys/)
    const big = await post(new Uint8Array(MAX_BATCH_BODY_BYTES + 1))
    assert.equal(big.status, 413)
    const longKey = await post(encodeBatchKeys(['ok', 'k'.repeat(MAX_KEY_BYTES + 1)]))
    assert.equal(longKey.status, 400)
    assert.match(longKey.body.toString(), /key longer than 64 bytes/)
    assert.deepEqual(loads, [])
  })

  test('a body that streams past the bound without a declared length is cut off with 413', async () => {
    reset()
    const answer = await new Promise<{ status: number }>((resolve, reject) => {
      import('node:http').then(({ request }) => {
        const req = request(
          { host: '127.0.0.1', port, path: PATH, method: 'POST', headers: { ...BATCH, 'transfer-encoding': 'chunked' }, agent: false },
          (res) => {
            res.resume()
            resolve({ status: res.statusCode ?? 0 })
          },
        )
        req.on('error', reject)
        const chunk = Buffer.alloc(64 * 1024, 1)
        let sent = 0
        const pump = (): void => {
          while (sent <= MAX_BATCH_BODY_BYTES) {
            sent += chunk.length
            if (!req.write(chunk)) {
              req.once('drain', pump)
              return
            }
          }
          req.end()
        }
        pump()
      }, reject)
    })
    assert.equal(answer.status, 413)
    assert.deepEqual(loads, [])
  })

  test('malformed bodies get 400 and load nothing', async () => {
    reset()
    const cases: Array<[string, Uint8Array]> = [
      ['a frame longer than the body', Buffer.from([0x05, 0x61])],
      ['a varint cut short', Buffer.from([0x80])],
      ['a varint of eleven bytes', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])],
      ['bytes that are not UTF-8', Buffer.from([0x02, 0xc3, 0x28])],
      ['a UTF-16 surrogate', Buffer.from([0x03, 0xed, 0xa0, 0x80])],
    ]
    for (const [what, body] of cases) {
      const res = await post(body)
      assert.equal(res.status, 400, what)
      assert.match(res.body.toString(), /^bad request: malformed batch/, what)
    }
    assert.deepEqual(loads, [])
  })

  test('an unknown group gets 404; a POST of a key, or of another content type, gets 405 as before', async () => {
    reset()
    const body = encodeBatchKeys(['c1'])
    assert.equal((await post(body, BATCH, '/_groupcache/nope')).status, 404)
    const ofKey = await post(body, BATCH, `${PATH}/c1`)
    assert.equal(ofKey.status, 405)
    assert.equal(ofKey.headers.allow, 'GET, PUT, DELETE')
    assert.equal((await post(body, { ...AUTH, 'content-type': 'application/json' })).status, 405)
    assert.equal((await post(body, AUTH)).status, 405)
    assert.equal((await post(body, BATCH, '/_groupcache/%zz')).status, 400)
    assert.deepEqual(loads, [])
  })

  test('a batch runs at most maxPeerLoads loads at once, waiting for slots rather than refusing, each key once', async () => {
    reset()
    const keys = Array.from({ length: 40 }, (_, i) => `d${i}`)
    const res = await post(encodeBatchKeys(keys))
    assert.equal(res.status, 200)
    const got = items(res.body)
    for (const key of keys)
      assert.deepEqual(got.get(key), { key, value: new Uint8Array(Buffer.from(`v:${key}`)), expire: 0, generation: 0, minuteQps: 1 / 60 })
    assert.equal(loads.length, 40)
    assert.ok(mostAtOnce <= 4, `${mostAtOnce} loads ran at once`)
  })

  test('a flood of batches keeps to maxPeerLoads: batches that find no free slot have their new loads refused, not queued', async () => {
    reset()
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, b) => post(encodeBatchKeys(Array.from({ length: 25 }, (_, i) => `e${b}-${i}`)))),
    )
    let values = 0
    let refused = 0
    for (const res of answers) {
      assert.equal(res.status, 200)
      for (const item of decodeBatchAnswer(res.body)) {
        if ('value' in item) values++
        else if (item.error === 'ERR_GROUPCACHE_OVERLOADED') refused++
        else assert.fail(`unexpected verdict ${item.error}`)
      }
    }
    assert.equal(values + refused, 200)
    assert.equal(loads.length, values, 'every value loaded once, no refused key loaded')
    assert.equal(new Set(loads).size, loads.length)
    assert.ok(mostAtOnce <= 4, `${mostAtOnce} loads ran at once`)
  })

  test('a batch that finds every slot taken still answers hits and joins loads in flight', async () => {
    reset()
    await post(encodeBatchKeys(['f-cached']))
    const gates = [0, 1, 2, 3].map(() => deferred<void>())
    gates.forEach((gate, i) => holds.set(`f-held-${i}`, gate.promise))
    const holding = post(encodeBatchKeys(['f-held-0', 'f-held-1', 'f-held-2', 'f-held-3']))
    await until(() => running === 4)
    const served = (): number => gc.getGroup('g')?.stats.serverRequests ?? 0
    const before = served()
    const res = post(encodeBatchKeys(['f-cached', 'f-new', 'f-held-2']))
    // Once the batch was looked at, release the loads: f-held-2 was joined,
    // so its answer waits for its load.
    await until(() => served() === before + 3)
    gates.forEach((gate) => gate.resolve())
    const got = items((await res).body)
    await holding
    assert.ok('value' in (got.get('f-cached') as BatchItem))
    assert.ok('value' in (got.get('f-held-2') as BatchItem))
    assert.deepEqual(got.get('f-new'), {
      key: 'f-new',
      error: 'ERR_GROUPCACHE_OVERLOADED',
      message: 'group g is already running 4 loads for peers',
    })
    assert.deepEqual(
      loads.filter((k) => k === 'f-new' || k === 'f-held-2'),
      ['f-held-2'],
    )
  })

  test('a batch is never forwarded: keys owned by another peer are loaded here', async () => {
    reset()
    const key = keyOwnedBy(gc, 'http://127.0.0.1:9', 'g-')
    const res = await post(encodeBatchKeys([key]))
    assert.ok('value' in (items(res.body).get(key) as BatchItem))
    assert.deepEqual(loads, [key])
    assert.equal(gc.getGroup('g')?.stats.peerLoads, 0)
  })
})

describe('the batch endpoint with loadMany', () => {
  test('a whole batch is one loader call, taking one of the maxPeerLoads slots', async () => {
    const [port] = (await reservePorts(1)) as [number]
    const self = urlsFor([port])[0] as string
    const gc = new Groupcache({ self, peers: [self] })
    const calls: number[] = []
    gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      maxPeerLoads: 1,
      loadMany: (keys) => (calls.push(keys.length), new Map(keys.map((key) => [key, key]))),
    })
    await gc.listen({ port, host: '127.0.0.1' })
    try {
      const keys = Array.from({ length: MAX_BATCH_KEYS }, (_, i) => `h${i}`)
      const res = await rawRequest(port, PATH, {
        method: 'POST',
        headers: { 'content-type': BATCH_CONTENT_TYPE },
        body: encodeBatchKeys(keys),
      })
      assert.equal(decodeBatchAnswer(res.body).filter((item) => 'value' in item).length, MAX_BATCH_KEYS)
      assert.deepEqual(calls, [MAX_BATCH_KEYS])
    } finally {
      await gc.close()
    }
  })
})

/** FakePeer is an HTTP server playing a peer, recording what it was asked. */
interface FakePeer {
  url: string
  requests: string[]
  close(): Promise<void>
}

async function fakePeer(handle: (req: IncomingMessage, body: Buffer, res: ServerResponse) => void): Promise<FakePeer> {
  const requests: string[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}`)
      handle(req, Buffer.concat(chunks), res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** asker is a node (not listening: it only asks) whose peers are itself and `peer`, with `peerTimeoutMs` if given. */
async function asker(
  peer: string,
  promote = false,
  peerTimeoutMs?: number,
): Promise<{ gc: Groupcache; group: Group<string>; loaded: string[] }> {
  const [port] = (await reservePorts(1)) as [number]
  const self = urlsFor([port])[0] as string
  const gc = new Groupcache({
    self,
    peers: [self, peer],
    breaker: { failures: 1000 },
    ...(peerTimeoutMs === undefined ? {} : { peerTimeoutMs }),
  })
  const loaded: string[] = []
  const group = gc.newGroup<string>({
    name: 'g',
    maxBytes: 1 << 20,
    codec: 'string',
    promote,
    load: (key) => (loaded.push(key), `local:${key}`),
  })
  return { gc, group, loaded }
}

/** keysOwnedBy finds `n` keys that `peer` owns on `gc`'s ring. */
function keysOwnedBy(gc: Groupcache, peer: string, n: number): string[] {
  const keys: string[] = []
  for (let i = 0; keys.length < n; i++) if (gc.ownerOf(`k${i}`) === peer) keys.push(`k${i}`)
  return keys
}

const getResponse = (res: ServerResponse, key: string, marker: boolean): void => {
  res.writeHead(200, { 'content-type': 'application/x-protobuf', ...(marker ? { 'x-groupcache-protocol': '1' } : {}) })
  res.end(encodeGetResponse({ value: Buffer.from(`peer:${decodeURIComponent(key)}`) }))
}

describe('peers that cannot or will not answer a batch', () => {
  test('a peer without our marker (a Go node) gets one GET per key and never a POST', async () => {
    // Answers as Go's server does: the probe path with 400, a key with its value.
    const go = await fakePeer((req, _body, res) => {
      const rest = (req.url ?? '').slice('/_groupcache/'.length)
      if (!rest.includes('/')) {
        res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('bad request\n')
        return
      }
      getResponse(res, rest.slice(rest.indexOf('/') + 1), false)
    })
    const { gc, group, loaded } = await asker(go.url)
    try {
      const keys = keysOwnedBy(gc, go.url, 20)
      const got = await group.getMany(keys)
      assert.deepEqual(
        [...got.values()],
        keys.map((key) => `peer:${key}`),
      )
      assert.deepEqual(loaded, [])
      assert.deepEqual(
        go.requests.filter((r) => !r.startsWith('GET ')),
        [],
      )
      assert.equal(go.requests.length, 21, 'one probe and one GET per key')
    } finally {
      await Promise.all([gc.close(), go.close()])
    }
  })

  test('an older peer of ours that answers a batch with 405 gets one GET per key, and no more batches for a while', async () => {
    const old = await fakePeer((req, _body, res) => {
      const rest = (req.url ?? '').slice('/_groupcache/'.length)
      if (req.method === 'POST') {
        res.writeHead(405, { allow: 'GET, PUT, DELETE', 'x-groupcache-protocol': '1' }).end('method not allowed\n')
        return
      }
      if (!rest.includes('/')) {
        res.writeHead(400, { 'x-groupcache-protocol': '1' }).end('bad request\n')
        return
      }
      getResponse(res, rest.slice(rest.indexOf('/') + 1), true)
    })
    const { gc, group, loaded } = await asker(old.url)
    try {
      const keys = keysOwnedBy(gc, old.url, 10)
      assert.deepEqual(
        [...(await group.getMany(keys.slice(0, 5))).values()],
        keys.slice(0, 5).map((key) => `peer:${key}`),
      )
      assert.deepEqual(
        [...(await group.getMany(keys.slice(5))).values()],
        keys.slice(5).map((key) => `peer:${key}`),
      )
      assert.deepEqual(loaded, [])
      assert.equal(old.requests.filter((r) => r.startsWith('POST')).length, 1, 'after one 405, no more batches')
      assert.equal(old.requests.filter((r) => r.startsWith('GET /_groupcache/g/')).length, 10)
    } finally {
      await Promise.all([gc.close(), old.close()])
    }
  })

  test('a peer whose batch answer is garbage: its keys load here, counted as peer errors', async () => {
    const bad = await fakePeer((req, _body, res) => {
      res.writeHead(req.method === 'POST' ? 200 : 400, { 'content-type': BATCH_CONTENT_TYPE, 'x-groupcache-protocol': '1' })
      res.end(Buffer.from([0x7f, 0x01, 0x02]))
    })
    const { gc, group, loaded } = await asker(bad.url)
    try {
      const keys = keysOwnedBy(gc, bad.url, 3)
      assert.deepEqual(
        [...(await group.getMany(keys)).values()],
        keys.map((key) => `local:${key}`),
      )
      assert.deepEqual(loaded.sort(), [...keys].sort())
      assert.equal(group.stats.peerErrors, 3)
      assert.equal(gc.peerHealth()[0]?.failures, 1, 'the breaker heard it')
    } finally {
      await Promise.all([gc.close(), bad.close()])
    }
  })

  test('a peer whose batch answer holds more items than keys were asked for (a flood of tiny ones) sent a malformed answer: its keys load here', async () => {
    // An answer may be 64 MiB: of items of a few bytes, 13 million, which
    // took seconds of the event loop and a gigabyte of heap to decode.
    // Here a megabyte of them after a value for every key asked for.
    const tiny = encodeBatchAnswer([{ key: '', error: 'E', message: '' }])
    const flood = Buffer.alloc(tiny.length * Math.floor((1024 * 1024) / tiny.length), tiny)
    const flooding = await fakePeer((req, body, res) => {
      if (req.method !== 'POST') {
        res.writeHead(400, { 'x-groupcache-protocol': '1' }).end('bad request\n')
        return
      }
      const asked = decodeBatchKeys(body, MAX_BATCH_KEYS)
      const answer = encodeBatchAnswer(asked.map((key) => ({ key, value: Buffer.from(`batch:${key}`), expire: 0, generation: 0 })))
      res.writeHead(200, { 'content-type': BATCH_CONTENT_TYPE, 'x-groupcache-protocol': '1' }).end(Buffer.concat([answer, flood]))
    })
    const { gc, group, loaded } = await asker(flooding.url)
    try {
      const keys = keysOwnedBy(gc, flooding.url, 3)
      assert.deepEqual(
        [...(await group.getMany(keys)).values()],
        keys.map((key) => `local:${key}`),
      )
      assert.deepEqual(loaded.sort(), [...keys].sort())
      assert.equal(group.stats.peerErrors, 3)
      assert.match(gc.peerHealth()[0]?.lastError ?? '', /malformed batch answer/)
    } finally {
      await Promise.all([gc.close(), flooding.close()])
    }
  })

  test('keys an answer leaves out are fetched by GET; keys it was not asked for are ignored', async () => {
    const partial = await fakePeer((req, body, res) => {
      const rest = (req.url ?? '').slice('/_groupcache/'.length)
      if (req.method === 'POST') {
        const asked = new TextDecoder().decode(body)
        const first = asked.slice(1, 1 + (body[0] ?? 0))
        const answer: BatchItem[] = [
          { key: first, value: Buffer.from(`batch:${first}`), expire: 0, generation: 0 },
          { key: 'never-asked', value: Buffer.from('poison'), expire: 0, generation: 0 },
        ]
        res.writeHead(200, { 'content-type': BATCH_CONTENT_TYPE, 'x-groupcache-protocol': '1' }).end(encodeBatchAnswer(answer))
        return
      }
      if (!rest.includes('/')) {
        res.writeHead(400, { 'x-groupcache-protocol': '1' }).end('bad request\n')
        return
      }
      getResponse(res, rest.slice(rest.indexOf('/') + 1), true)
    })
    const { gc, group, loaded } = await asker(partial.url, true)
    try {
      const keys = keysOwnedBy(gc, partial.url, 3)
      const got = await group.getMany(keys)
      assert.deepEqual([...got.values()], [`batch:${keys[0]}`, `peer:${keys[1]}`, `peer:${keys[2]}`])
      assert.deepEqual(loaded, [])
      // Every fetched value is kept as a hot copy (promote: true): the three asked for, not the poison.
      assert.equal(group.cacheStats('hot').items, 3)
      assert.equal(partial.requests.filter((r) => r.startsWith('GET /_groupcache/g/')).length, 2)
    } finally {
      await Promise.all([gc.close(), partial.close()])
    }
  })

  test('keys refused for overload, by item or by a whole 503, are asked for again after Retry-After, not loaded here', async () => {
    for (const whole of [false, true]) {
      let posts = 0
      const busy = await fakePeer((req, body, res) => {
        if (req.method !== 'POST') {
          res.writeHead(400, { 'x-groupcache-protocol': '1' }).end('bad request\n')
          return
        }
        const keys = decodeBatchKeys(body, MAX_BATCH_KEYS)
        // The first batch: the first key answered, the others refused; then the rest answered.
        const first = posts++ === 0
        if (first && whole) {
          res
            .writeHead(503, { 'x-groupcache-protocol': '1', 'x-groupcache-error': 'ERR_GROUPCACHE_OVERLOADED', 'retry-after': '0' })
            .end('busy\n')
          return
        }
        const answer = keys.map(
          (key, i): BatchItem =>
            first && i > 0
              ? { key, error: 'ERR_GROUPCACHE_OVERLOADED', message: 'busy' }
              : { key, value: Buffer.from(`peer:${key}`), expire: 0, generation: 0 },
        )
        res.writeHead(200, { 'content-type': BATCH_CONTENT_TYPE, 'x-groupcache-protocol': '1' }).end(encodeBatchAnswer(answer))
      })
      const { gc, group, loaded } = await asker(busy.url)
      try {
        const keys = keysOwnedBy(gc, busy.url, 3)
        assert.deepEqual(
          [...(await group.getMany(keys)).values()],
          keys.map((key) => `peer:${key}`),
        )
        assert.deepEqual(loaded, [])
        assert.equal(group.stats.peerErrors, 0)
        assert.equal(posts, 2, 'one batch, and one for the keys refused')
        assert.equal(gc.peerHealth()[0]?.failures, 0, 'a refusal is no failure of the peer')
      } finally {
        await Promise.all([gc.close(), busy.close()])
      }
    }
  })

  test('a key refused for overload for longer than peerTimeoutMs is loaded here, a peer error', async () => {
    const busy = await fakePeer((req, body, res) => {
      if (req.method !== 'POST') {
        res.writeHead(400, { 'x-groupcache-protocol': '1' }).end('bad request\n')
        return
      }
      const key = new TextDecoder().decode(body.subarray(1))
      // Retry-After 0: the asker's least pause, asking again until its deadline.
      res.writeHead(200, { 'content-type': BATCH_CONTENT_TYPE, 'x-groupcache-protocol': '1', 'retry-after': '0' })
      res.end(encodeBatchAnswer([{ key, error: 'ERR_GROUPCACHE_OVERLOADED', message: 'busy' }]))
    })
    const { gc, group, loaded } = await asker(busy.url, false, 500)
    try {
      const [key] = keysOwnedBy(gc, busy.url, 1) as [string]
      assert.deepEqual([...(await group.getMany([key])).values()], [`local:${key}`])
      assert.deepEqual(loaded, [key])
      assert.equal(group.stats.peerErrors, 1)
    } finally {
      await Promise.all([gc.close(), busy.close()])
    }
  })
})

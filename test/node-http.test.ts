import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import { Entry } from '../src/cache.js'
import type { ServedGroup, ServedValue } from '../src/group.js'
import { createPeerHandler } from '../src/handler.js'
import { Groupcache, type PeerHandler, servePeerRequest, toPeerRequest } from '../src/index.js'
import { decodeGetResponse, encodeGetResponse } from '../src/wire.js'
import { rawRequest } from './helpers/raw.js'
import { deferred, waitFor } from './helpers/wait.js'

const SELF = 'http://127.0.0.1:1'
const SECRET = 'node-http-secret'
const AUTH = { authorization: `Bearer ${SECRET}` }

/** serve starts a node:http server on 127.0.0.1 that hands every request to `listener`. */
async function serve(listener: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer(listener)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

describe('servePeerRequest', () => {
  const closers: Array<() => Promise<void>> = []
  after(async () => {
    for (const close of closers) await close()
  })

  test('writes a cached value before it returns: the GetResponse with its expiry, and the generation and protocol headers', async () => {
    const clock = 1_764_000_000_000
    const gc = new Groupcache({ self: SELF, peers: [SELF], secret: SECRET, now: () => clock })
    closers.push(() => gc.close())
    const group = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', ttlMs: 60_000, load: (key) => `v:${key}` })
    await group.clear() // so that answers carry a generation
    for (const key of ['small', 'x'.repeat(3000)]) await group.get(key)
    const written: boolean[] = []
    const { port, close } = await serve((req, res) => {
      const pending = servePeerRequest(gc.handler, req, res)
      written.push(pending === undefined && res.writableEnded)
    })
    closers.push(close)
    for (const key of ['small', 'x'.repeat(3000)]) {
      const res = await rawRequest(port, `/_groupcache/g/${key}`, { headers: AUTH })
      assert.equal(res.status, 200)
      // The frame, then the key's rate (minute_qps): one peer request so far.
      assert.deepEqual(
        res.body,
        Buffer.from(encodeGetResponse({ value: Buffer.from(`v:${key}`), expire: clock + 60_000, minuteQps: 1 / 60 })),
      )
      assert.equal(res.headers['content-type'], 'application/x-protobuf')
      assert.equal(res.headers['content-length'], String(res.body.length))
      assert.equal(res.headers['x-groupcache-generation'], String(group.generation))
      assert.equal(res.headers['x-groupcache-protocol'], '1')
    }
    assert.deepEqual(written, [true, true], 'both hits were written before servePeerRequest returned')
  })

  test('answers a miss when its load ends, and its promise says when', async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    closers.push(() => gc.close())
    const release = deferred<void>()
    gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: async (key) => {
        await release.promise
        return `v:${key}`
      },
    })
    const states: Array<Promise<boolean>> = []
    const { port, close } = await serve((req, res) => {
      const pending = servePeerRequest(gc.handler, req, res)
      assert.ok(pending instanceof Promise)
      assert.equal(res.writableEnded, false)
      states.push(pending.then(() => res.writableEnded))
    })
    closers.push(close)
    const answer = rawRequest(port, '/_groupcache/g/slow')
    await waitFor('the request to arrive', () => states.length === 1)
    release.resolve()
    const res = await answer
    assert.equal(res.status, 200)
    assert.equal(Buffer.from(decodeGetResponse(res.body).value).toString(), 'v:slow')
    assert.equal(await states[0], true, 'the answer was written once the promise resolved')
  })

  test('serves any PeerHandler, one of its own making too', async () => {
    const handler: PeerHandler = async (req) => ({
      status: 418,
      headers: { 'content-type': 'text/plain', 'x-seen': `${req.method} ${req.url}` },
      body: Buffer.from('teapot'),
    })
    const { port, close } = await serve((req, res) => void servePeerRequest(handler, req, res))
    closers.push(close)
    const res = await rawRequest(port, '/_groupcache/g/k?x=1')
    assert.equal(res.status, 418)
    assert.equal(res.headers['x-seen'], 'GET /_groupcache/g/k?x=1')
    assert.equal(res.headers['content-length'], '6')
    assert.equal(res.body.toString(), 'teapot')
  })

  test('sends a per-answer minute_qps after the cached frame, through servePeerRequest and the handler alike', async () => {
    const values = new Map<string, ServedValue>()
    for (const [key, size] of [
      ['small', 10],
      ['large', 5000],
    ] as const) {
      const entry = new Entry(Buffer.alloc(size, 7), 1_764_000_000_000, 0, 'load')
      values.set(key, { bytes: entry.bytes, frame: entry.frame, expire: entry.expire, staleUntil: 0, generation: 0, minuteQps: 12.5 })
    }
    const group: ServedGroup = {
      maxEntryBytes: 1 << 20,
      serve: (key) => values.get(key) as ServedValue,
      serveMany: async () => [],
      removeLocally: () => {},
      setLocally: () => {},
      clearLocally: () => {},
      peekLocally: () => undefined,
      receive: () => 0,
    }
    const handler = createPeerHandler({
      basePath: '/_groupcache/',
      secrets: [],
      maxKeyBytes: 100,
      lookup: (name) => (name === 'g' ? group : undefined),
      isClosed: () => false,
      stats: () => ({}),
    })
    const { port, close } = await serve((req, res) => void servePeerRequest(handler, req, res))
    closers.push(close)
    for (const [key, size] of [
      ['small', 10],
      ['large', 5000],
    ] as const) {
      const expected = { value: Buffer.alloc(size, 7), minuteQps: 12.5, expire: 1_764_000_000_000 }
      const res = await rawRequest(port, `/_groupcache/g/${key}`)
      assert.equal(res.status, 200)
      assert.deepEqual({ ...decodeGetResponse(res.body), value: Buffer.from(decodeGetResponse(res.body).value) }, expected, key)
      const answer = await handler({ method: 'GET', url: `/_groupcache/g/${key}`, headers: {} })
      assert.deepEqual({ ...decodeGetResponse(answer.body), value: Buffer.from(decodeGetResponse(answer.body).value) }, expected, key)
      assert.equal(answer.headers['x-groupcache-protocol'], '1')
    }
  })

  test("the handler's answer for a value is a copy: writing to it changes nothing cached", async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    closers.push(() => gc.close())
    const group = gc.newGroup<Uint8Array>({ name: 'g', maxBytes: 1 << 20, codec: 'bytes', load: () => Buffer.alloc(5000, 1) })
    await group.get('k')
    const first = await gc.handler({ method: 'GET', url: '/_groupcache/g/k', headers: {} })
    first.body.fill(0)
    const second = await gc.handler({ method: 'GET', url: '/_groupcache/g/k', headers: {} })
    assert.deepEqual(Buffer.from(decodeGetResponse(second.body).value), Buffer.alloc(5000, 1))
    assert.deepEqual(await group.get('k'), Buffer.alloc(5000, 1))
  })
})

describe('toPeerRequest', () => {
  test("aborts a peer's load when the peer hangs up before the answer", async () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF] })
    const started = deferred<AbortSignal>()
    gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (_key, ctx) => {
        started.resolve(ctx.signal)
        return new Promise<string>((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('stopped'))))
      },
    })
    const { port, close } = await serve((req, res) => void servePeerRequest(gc.handler, req, res))
    try {
      const req = request({ host: '127.0.0.1', port, path: '/_groupcache/g/k', agent: false })
      req.on('error', () => {})
      req.end()
      const signal = await started.promise
      assert.equal(signal.aborted, false)
      req.destroy()
      await waitFor('the load to be aborted', () => signal.aborted)
    } finally {
      await close()
      await gc.close()
    }
  })

  test('gives an aborted signal for a request whose client left before it was asked for', async () => {
    const signals: AbortSignal[] = []
    let arrived = false
    const { port, close } = await serve((req, res) => {
      arrived = true
      res.once('close', () => signals.push(toPeerRequest(req, res).signal as AbortSignal))
    })
    try {
      const req = request({ host: '127.0.0.1', port, path: '/', agent: false })
      req.on('error', () => {})
      req.end()
      await waitFor('the request to arrive', () => arrived)
      req.destroy()
      await waitFor('the server to see the client leave', () => signals.length === 1)
      assert.equal(signals[0]?.aborted, true)
    } finally {
      await close()
    }
  })
})

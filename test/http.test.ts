import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { DEFAULT_MAX_RESPONSE_BYTES, HttpTransport } from '../src/http.js'
import { AbortedError, Groupcache, NotFoundError, PeerError, REFRESH_HEADER } from '../src/index.js'
import { decodeGetResponse, encodeGetResponse } from '../src/wire.js'
import { rawRequest } from './helpers/raw.js'
import { waitFor } from './helpers/wait.js'

describe('the peer endpoint served by gc.listen()', () => {
  let gc: Groupcache
  let port: number
  let loads = 0
  const secret = 's3cret-token'
  const auth = { authorization: `Bearer ${secret}` }

  before(async () => {
    gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'], secret, maxKeyBytes: 64 })
    gc.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (key) => {
        loads++
        if (key === 'fail') throw new Error('database is down')
        if (key === 'missing') throw new NotFoundError('no row for missing')
        return `v:${key}`
      },
    })
    ;({ port } = await gc.listen({ host: '127.0.0.1', port: 0 }))
  })
  after(async () => {
    await gc.close()
  })

  test('answers 200 with a protobuf GetResponse holding the value', async () => {
    const res = await rawRequest(port, '/_groupcache/g/hello', { headers: auth })
    assert.equal(res.status, 200)
    assert.equal(res.headers['content-type'], 'application/x-protobuf')
    assert.equal(Buffer.from(decodeGetResponse(res.body).value).toString(), 'v:hello')
  })

  test('decodes each path part once: an escaped slash belongs to the key', async () => {
    const res = await rawRequest(port, '/_groupcache/g/a%2Fb+c%2B', { headers: auth })
    assert.equal(res.status, 200)
    assert.equal(Buffer.from(decodeGetResponse(res.body).value).toString(), 'v:a/b c+')
    const raw = await rawRequest(port, '/_groupcache/g/x/y//z', { headers: auth })
    assert.equal(Buffer.from(decodeGetResponse(raw.body).value).toString(), 'v:x/y//z')
  })

  const statuses: Array<[string, string, Record<string, string> | undefined, number, RegExp]> = [
    ['a missing secret', '/_groupcache/g/k', {}, 401, /unauthorized/],
    ['a wrong secret', '/_groupcache/g/k', { authorization: 'Bearer nope' }, 401, /unauthorized/],
    ['a secret without the Bearer scheme', '/_groupcache/g/k', { authorization: secret }, 401, /unauthorized/],
    ['an unknown group', '/_groupcache/nope/k', auth, 404, /no such group: nope/],
    ['a path without a key part', '/_groupcache/g', auth, 400, /bad request/],
    ['a bare % escape', '/_groupcache/g/100%', auth, 400, /malformed escape/],
    ['an escape that is not UTF-8', '/_groupcache/g/%FF%FE', auth, 400, /malformed escape/],
    ['a key over maxKeyBytes', `/_groupcache/g/${'k'.repeat(65)}`, auth, 400, /longer than 64 bytes/],
    ['a path outside basePath', '/other/g/k', auth, 404, /not found/],
  ]
  for (const [what, path, headers, status, body] of statuses) {
    test(`answers ${status} to ${what}, in plain text`, async () => {
      const before = loads
      const res = await rawRequest(port, path, { headers })
      assert.equal(res.status, status)
      assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8')
      assert.match(res.body.toString(), body)
      assert.equal(loads, before, 'no loader ran')
    })
  }

  test('checks the secret before the method or the group', async () => {
    const res = await rawRequest(port, '/_groupcache/nope/k', { method: 'POST' })
    assert.equal(res.status, 401)
  })

  test('answers 405 to methods other than GET, PUT and DELETE', async () => {
    for (const method of ['POST', 'PATCH', 'HEAD', 'OPTIONS']) {
      const res = await rawRequest(port, '/_groupcache/g/k', { method, headers: auth })
      assert.equal(res.status, 405, method)
      assert.equal(res.headers.allow, 'GET, PUT, DELETE')
    }
  })

  test('answers 500 with the error marker and the message when the loader fails', async () => {
    const res = await rawRequest(port, '/_groupcache/g/fail', { headers: auth })
    assert.equal(res.status, 500)
    assert.equal(res.headers['x-groupcache-error'], 'ERR_GROUPCACHE_LOAD_FAILED')
    assert.match(res.body.toString(), /database is down/)
  })

  test('answers 404 with the error marker when the loader says not found', async () => {
    const res = await rawRequest(port, '/_groupcache/g/missing', { headers: auth })
    assert.equal(res.status, 404)
    assert.equal(res.headers['x-groupcache-error'], 'ERR_GROUPCACHE_NOT_FOUND')
    assert.match(res.body.toString(), /no row for missing/)
  })

  test('keeps serving after every malformed request', async () => {
    for (const path of ['/_groupcache/g/%', '/_groupcache/%E0%A4%A/x', '/_groupcache/', '/_groupcache//', '/_groupcache/g/%00']) {
      const res = await rawRequest(port, path, { headers: auth })
      assert.ok(res.status >= 200 && res.status < 500, `${path} → ${res.status}`)
    }
    const res = await rawRequest(port, '/_groupcache/g/still-alive', { headers: auth })
    assert.equal(res.status, 200)
  })

  test('counts serverRequests for requests that reach a group', async () => {
    const group = gc.getGroup('g')!
    const before = group.stats.serverRequests
    await rawRequest(port, '/_groupcache/g/counted', { headers: auth })
    await rawRequest(port, '/_groupcache/g/counted', {})
    assert.equal(group.stats.serverRequests, before + 1)
  })
})

describe('HttpTransport', () => {
  test('a refresh fetch says so, with half its deadline as the longest wait; a plain fetch does not; stale_until is read', async () => {
    const seen: IncomingHttpHeaders[] = []
    const server = createServer((req, res) => {
      seen.push(req.headers)
      res.writeHead(200, { 'content-type': 'application/x-protobuf' })
      res.end(encodeGetResponse({ value: Buffer.from('v'), expire: 1_000, staleUntil: 21_000 }))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const peer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const transport = new HttpTransport({ basePath: '/_groupcache/', timeoutMs: 3_000 })
    transport.setPeers([peer])
    try {
      const signal = new AbortController().signal
      const refreshed = await transport.fetch(peer, 'g', 'k', signal, 0, undefined, true)
      const plain = await transport.fetch(peer, 'g', 'k', signal, 0)
      assert.deepEqual(
        seen.map((h) => h[REFRESH_HEADER]),
        ['1500', undefined],
      )
      for (const answer of [refreshed, plain]) {
        assert.deepEqual([answer.expire, answer.staleUntil], [1_000, 21_000])
        assert.equal(Buffer.from(answer.value).toString(), 'v')
      }
    } finally {
      await transport.close()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  /**
   * withPeer runs `body` against a transport whose one peer answers with
   * `handler`, and closes both, whatever happened.
   */
  async function withPeer(
    handler: (req: IncomingMessage, res: ServerResponse) => void,
    body: (transport: HttpTransport, peer: string) => Promise<void>,
    timeoutMs = 60_000,
  ): Promise<void> {
    const server = createServer(handler)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const peer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const transport = new HttpTransport({ basePath: '/_groupcache/', timeoutMs })
    transport.setPeers([peer])
    try {
      await body(transport, peer)
    } finally {
      await transport.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }

  test('reads an answer that comes in many pieces, with or without its length, whole', async () => {
    const value = Buffer.alloc(300_000)
    for (let i = 0; i < value.length; i++) value[i] = i % 251
    const frame = encodeGetResponse({ value, expire: 7 })
    for (const declared of [true, false]) {
      await withPeer(
        (_req, res) => {
          res.writeHead(200, { 'content-type': 'application/x-protobuf', ...(declared ? { 'content-length': String(frame.length) } : {}) })
          for (let at = 0; at < frame.length; at += 40_000) res.write(frame.subarray(at, at + 40_000))
          res.end()
        },
        async (transport, peer) => {
          const answer = await transport.fetch(peer, 'g', 'k', new AbortController().signal)
          assert.ok(Buffer.from(answer.value).equals(value), `declared: ${declared}`)
          assert.equal(answer.expire, 7)
        },
      )
    }
  })

  test('refuses an answer that declares more than DEFAULT_MAX_RESPONSE_BYTES before reading it: a failure of the peer', async () => {
    await withPeer(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': String(DEFAULT_MAX_RESPONSE_BYTES + 1) })
        res.write(Buffer.alloc(10)) // and nothing more: only the declared length can end this
      },
      async (transport, peer) => {
        await assert.rejects(transport.fetch(peer, 'g', 'k', new AbortController().signal), (err: unknown) => {
          assert.ok(err instanceof PeerError)
          assert.match(err.message, /over the limit/)
          return true
        })
        assert.equal(transport.health()[0]?.failures, 1)
      },
    )
  })

  test("a caller's abort ends the exchange at once and does not count against the peer", async () => {
    let asked = 0
    await withPeer(
      () => {
        asked++ // and never answer
      },
      async (transport, peer) => {
        const controller = new AbortController()
        const fetching = transport.fetch(peer, 'g', 'k', controller.signal)
        await waitFor('the peer to be asked', () => asked === 1)
        const reason = new Error('the user went away')
        controller.abort(reason)
        await assert.rejects(fetching, (err: unknown) => err instanceof AbortedError && err.cause === reason)
        assert.equal(transport.health()[0]?.failures, 0)
      },
    )
  })

  test('a silent peer fails once its deadline passes, counted once against it, and the next exchange gets a deadline of its own', async () => {
    await withPeer(
      () => {}, // never answer
      async (transport, peer) => {
        for (const expected of [1, 2]) {
          await assert.rejects(transport.fetch(peer, 'g', 'k', new AbortController().signal), (err: unknown) => {
            assert.ok(err instanceof PeerError)
            assert.match(err.message, /timed out after 50 ms/)
            return true
          })
          assert.equal(transport.health()[0]?.failures, expected)
        }
      },
      50,
    )
  })
})

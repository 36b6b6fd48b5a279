import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { DEFAULT_MAX_RESPONSE_BYTES, HttpTransport } from '../src/http.js'
import { AbortedError, type Group, Groupcache, NotFoundError, PeerError, REFRESH_HEADER, servePeerRequest } from '../src/index.js'
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

describe('the peer client on kept-alive connections', () => {
  /** Asked is one request the owner's front server received. */
  interface Asked {
    /** connection numbers the connections in the order they opened, from 1. */
    connection: number
    /** nth counts the requests on that connection, from 1. */
    nth: number
    method: string
    key: string
  }
  /**
   * Verdict is what the front does with a request: serve it, reset its
   * connection without an answer (the peer closing a kept-alive connection
   * just as the request arrives), or hold it until the test releases it.
   */
  type Verdict = 'serve' | 'reset' | 'hold'

  /**
   * withFrontedOwner runs `body` with a caller node whose one peer, owner of
   * the keys `ownedKeys` gives, is a real node behind a front server that
   * asks `policy` what to do with each request. Everything is closed afterwards.
   */
  async function withFrontedOwner(
    policy: (asked: Asked, all: readonly Asked[]) => Verdict,
    body: (cluster: {
      caller: Groupcache
      g: Group<string>
      asked: Asked[]
      callerLoads: string[]
      ownerLoads: string[]
      ownedKeys: (n: number) => string[]
      release: (asked: Asked, verdict: 'serve' | 'reset') => void
    }) => Promise<void>,
    peerTimeoutMs = 60_000,
  ): Promise<void> {
    const secret = 'kept-alive'
    const callerLoads: string[] = []
    const ownerLoads: string[] = []
    const owner = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'], secret, handoffMs: 0 })
    owner.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (key) => {
        ownerLoads.push(key)
        return `owner:${key}`
      },
    })
    const asked: Asked[] = []
    const held = new Map<Asked, { req: IncomingMessage; res: ServerResponse }>()
    const counts = new WeakMap<Socket, { connection: number; nth: number }>()
    let connections = 0
    const answer = (req: IncomingMessage, res: ServerResponse, verdict: 'serve' | 'reset'): void => {
      if (verdict === 'serve') void servePeerRequest(owner.handler, req, res)
      else req.socket.destroy()
    }
    const front = createServer((req, res) => {
      let seen = counts.get(req.socket)
      if (seen === undefined) {
        seen = { connection: ++connections, nth: 0 }
        counts.set(req.socket, seen)
      }
      seen.nth++
      const key = decodeURIComponent(req.url?.split('/')[3] ?? '')
      const one: Asked = { connection: seen.connection, nth: seen.nth, method: req.method ?? '', key }
      asked.push(one)
      const verdict = policy(one, asked)
      if (verdict === 'hold') held.set(one, { req, res })
      else answer(req, res, verdict)
    })
    // Far longer than the test: the front never closes an idle connection itself.
    front.keepAliveTimeout = 600_000
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
    const peer = `http://127.0.0.1:${(front.address() as AddressInfo).port}`
    const self = 'http://127.0.0.1:2'
    // No hand-off: no probe or peek shares the connections the test counts.
    const caller = new Groupcache({ self, peers: [self, peer], secret, handoffMs: 0, peerTimeoutMs })
    const g = caller.newGroup<string>({
      name: 'g',
      maxBytes: 1 << 20,
      codec: 'string',
      load: (key) => {
        callerLoads.push(key)
        return `local:${key}`
      },
    })
    const ownedKeys = (n: number): string[] => {
      const keys: string[] = []
      for (let i = 0; keys.length < n; i++) if (caller.ownerOf(`k${i}`) === peer) keys.push(`k${i}`)
      return keys
    }
    const release = (one: Asked, verdict: 'serve' | 'reset'): void => {
      const exchange = held.get(one)
      assert.ok(exchange, `${one.key} is held`)
      held.delete(one)
      answer(exchange.req, exchange.res, verdict)
    }
    try {
      await body({ caller, g, asked, callerLoads, ownerLoads, ownedKeys, release })
    } finally {
      await caller.close()
      for (const { res } of held.values()) res.destroy()
      front.closeAllConnections()
      await new Promise((resolve) => front.close(resolve))
      await owner.close()
    }
  }

  /**
   * nextTurn lets the event loop turn once: only then does the pool take a
   * connection back after its answer (a request before that opens another).
   */
  const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

  /**
   * getUntil gets keys one after the other, each once the pool has taken the
   * last connection back, until `done` holds; it returns the keys it got.
   */
  async function getUntil(g: Group<string>, keys: readonly string[], done: () => boolean): Promise<string[]> {
    const got: string[] = []
    for (const key of keys) {
      await nextTurn()
      await g.get(key)
      got.push(key)
      if (done()) return got
    }
    throw new Error(`no request went out on a kept-alive connection in ${keys.length} gets`)
  }

  const onKeptAlive = (a: Asked): boolean => a.nth > 1

  test('a GET whose kept-alive connection the owner closes as it arrives is asked again on a new one: the owner loads the key once, the caller never, and no peer error', async () => {
    await withFrontedOwner(
      (asked) => (onKeptAlive(asked) ? 'reset' : 'serve'),
      async ({ caller, g, asked, callerLoads, ownerLoads, ownedKeys }) => {
        const keys = await getUntil(g, ownedKeys(20), () => asked.some(onKeptAlive))
        for (const key of keys) assert.equal(await g.get(key), `owner:${key}`)
        assert.deepEqual(callerLoads, [])
        assert.deepEqual(ownerLoads, keys)
        assert.equal(g.stats.peerErrors, 0)
        assert.deepEqual(
          caller.peerHealth().map((h) => h.failures),
          [0],
        )
        // Reset before any answer, then asked once more, on a connection of its own.
        const lost = asked.find(onKeptAlive)?.key
        assert.deepEqual(
          asked.filter((a) => a.key === lost).map((a) => a.nth),
          [2, 1],
        )
        assert.equal(asked.length, keys.length + 1)
      },
    )
  })

  test('a peer that resets every connection: a GET is asked again after losing a kept-alive connection, never after a fresh one failed', async () => {
    await withFrontedOwner(
      // Once a kept-alive connection was reset, every request is.
      (_asked, all) => (all.some(onKeptAlive) ? 'reset' : 'serve'),
      async ({ caller, g, asked, callerLoads, ownedKeys }) => {
        const keys = await getUntil(g, ownedKeys(20), () => asked.some(onKeptAlive))
        const lost = keys.at(-1) as string
        assert.deepEqual(
          asked.filter((a) => a.key === lost).map((a) => a.nth),
          [2, 1],
        )
        const next = ownedKeys(keys.length + 1).at(-1) as string
        await nextTurn()
        assert.equal(await g.get(next), `local:${next}`)
        assert.deepEqual(
          asked.filter((a) => a.key === next).map((a) => a.nth),
          [1],
        )
        assert.deepEqual(callerLoads, [lost, next])
        assert.equal(g.stats.peerErrors, 2)
        const [health] = caller.peerHealth()
        assert.equal(health?.failures, 2)
        assert.match(health?.lastError ?? '', /other side closed|ECONNRESET|EPIPE|closed/)
      },
    )
  })

  test('a GET asked again on another kept-alive connection and lost there too is not asked a third time', async () => {
    let hold = ''
    let lose = ''
    await withFrontedOwner(
      (asked, all) => {
        if (asked.key === hold) return 'hold'
        if (asked.key === lose) return all.filter((a) => a.key === lose).length === 1 ? 'hold' : 'reset'
        return 'serve'
      },
      async ({ caller, g, asked, callerLoads, ownedKeys, release }) => {
        const [a, b, h, k] = ownedKeys(4) as [string, string, string, string]
        hold = h
        lose = k
        // Two connections, both kept alive.
        await Promise.all([g.get(a), g.get(b)])
        await nextTurn()
        // The first carries h (held), so k goes out on the second.
        const gettingH = g.get(h)
        await waitFor('the owner to be asked for h', () => asked.some((x) => x.key === h))
        const gettingK = g.get(k)
        await waitFor('the owner to be asked for k', () => asked.some((x) => x.key === k))
        const askedH = asked.find((x) => x.key === h) as Asked
        const askedK = asked.find((x) => x.key === k) as Asked
        assert.deepEqual([askedH.nth, askedK.nth], [2, 2])
        assert.notEqual(askedH.connection, askedK.connection)
        // h is answered, and its connection taken back: the one k is asked again on.
        release(askedH, 'serve')
        assert.equal(await gettingH, `owner:${h}`)
        await nextTurn()
        release(askedK, 'reset')
        assert.equal(await gettingK, `local:${k}`)
        assert.deepEqual(
          asked.filter((x) => x.key === k).map((x) => [x.connection, x.nth]),
          [
            [askedK.connection, 2],
            [askedH.connection, 3],
          ],
        )
        assert.deepEqual(callerLoads, [k])
        assert.equal(g.stats.peerErrors, 1)
        assert.equal(caller.peerHealth()[0]?.failures, 1)
      },
    )
  })

  test('a batch whose kept-alive connection the owner closes as it arrives is sent again: a batch only reads', async () => {
    await withFrontedOwner(
      (asked) => (onKeptAlive(asked) ? 'reset' : 'serve'),
      async ({ g, asked, callerLoads, ownerLoads, ownedKeys }) => {
        const keys = ownedKeys(40)
        const got: string[] = []
        for (let i = 0; i < keys.length && !asked.some(onKeptAlive); i += 2) {
          await nextTurn()
          const pair = keys.slice(i, i + 2)
          const values = await g.getMany(pair)
          for (const key of pair) assert.equal(values.get(key), `owner:${key}`)
          got.push(...pair)
        }
        const reset = asked.find(onKeptAlive)
        assert.equal(reset?.method, 'POST')
        assert.deepEqual(
          asked.slice(asked.indexOf(reset)).map((a) => [a.method, a.nth]),
          [
            ['POST', 2],
            ['POST', 1],
          ],
        )
        assert.deepEqual(callerLoads, [])
        assert.deepEqual([...ownerLoads].sort(), [...got].sort())
        assert.equal(g.stats.peerErrors, 0)
      },
    )
  })

  test('a GET that times out on a kept-alive connection is not asked again', async () => {
    await withFrontedOwner(
      (asked) => (onKeptAlive(asked) ? 'hold' : 'serve'),
      async ({ caller, g, asked, callerLoads, ownedKeys }) => {
        const keys = await getUntil(g, ownedKeys(20), () => asked.some(onKeptAlive))
        const held = keys.at(-1) as string
        assert.deepEqual(
          asked.filter((a) => a.key === held).map((a) => a.nth),
          [2],
        )
        assert.ok(callerLoads.includes(held))
        assert.match(caller.peerHealth()[0]?.lastError ?? '', /timed out/)
      },
      1_500,
    )
  })

  test('a DELETE lost on a kept-alive connection is not sent again: a change is never replayed', async () => {
    await withFrontedOwner(
      (asked) => (onKeptAlive(asked) ? 'reset' : 'serve'),
      async ({ g, asked, ownedKeys }) => {
        let failed: unknown
        for (const key of ownedKeys(20)) {
          await nextTurn()
          await g.remove(key).catch((err: unknown) => {
            failed = err
          })
          if (asked.some(onKeptAlive)) break
        }
        const reset = asked.find(onKeptAlive)
        assert.equal(reset?.method, 'DELETE')
        assert.deepEqual(
          asked.filter((a) => a.method === 'DELETE' && a.key === reset.key).map((a) => a.nth),
          [2],
        )
        assert.ok(failed instanceof Error)
      },
    )
  })
})

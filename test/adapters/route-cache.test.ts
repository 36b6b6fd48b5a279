// One suite for cached routes, run on each framework: three replicas of the
// same app (test/helpers/route-app.ts) in child processes on 127.0.0.1.
// Nothing here depends on how fast the machine is: the replicas share a
// clock only the test moves (so entries expire when the test says, and not
// in the middle of a test), and concurrent requests are made to overlap by
// holding the handler until every one of them has reached the cache.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { Packr } from 'msgpackr'
import { type Decision, normalizeUrl, RouteCaches, SOURCE_HEADER } from '../../adapters/route-cache.js'
import { encodeHandoff, HANDOFF_TYPE } from '../../src/handoff.js'
import { DEFAULT_REFRESH_RETRY_MS, Groupcache, InvalidOptionError } from '../../src/index.js'
import { encodeGetResponse } from '../../src/wire.js'
import { type CachedApp, ROUTE_FRAMEWORKS, startCachedApp } from '../helpers/cached-apps.js'
import { ROOT } from '../helpers/child.js'
import { fetchFresh } from '../helpers/fetch.js'
import { keyOwnedBy } from '../helpers/local.js'
import { rawRequest } from '../helpers/raw.js'
import { type ExampleFramework, type Replica, startReplicas, stopReplicas } from '../helpers/replicas.js'
import { waitFor } from '../helpers/wait.js'

const ENTRY = 'test/helpers/route-app.ts'
const TTL_MS = 60_000
// The stale route of route-app.ts: rendered in 300 ms, fresh for 1 s, then stale for 20 s.
const SLOW_TTL_MS = 1_000

interface Answer {
  status: number
  headers: Headers
  body: string
}

async function ask(replica: Replica, path: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await fetchFresh(`http://127.0.0.1:${replica.port}${path}`, init)
  return { status: res.status, headers: res.headers, body: await res.text() }
}

async function counts(replicas: Replica[]): Promise<Record<string, number>> {
  const total: Record<string, number> = {}
  for (const r of replicas) {
    for (const [path, n] of Object.entries(JSON.parse((await ask(r, '/counts')).body) as Record<string, number>)) {
      total[path] = (total[path] ?? 0) + n
    }
  }
  return total
}

/** control sends one of route-app's /test/* requests to every replica. */
async function control(replicas: Replica[], op: string, query = ''): Promise<unknown[]> {
  return Promise.all(replicas.map(async (r) => JSON.parse((await ask(r, `/test/${op}${query}`, { method: 'POST' })).body) as unknown))
}

/** requestsSeen sums the route group's gets and peer requests over the replicas. */
async function requestsSeen(replicas: Replica[]): Promise<{ gets: number; serverRequests: number }> {
  const stats = (await control(replicas, 'stats')) as Array<{ gets: number; serverRequests: number }>
  return {
    gets: stats.reduce((n, s) => n + s.gets, 0),
    serverRequests: stats.reduce((n, s) => n + s.serverRequests, 0),
  }
}

/**
 * overlapping sends `requests` at once with the handler of `route` held on
 * every replica, and lets it go only when each request has reached the
 * cache: a get per request on the replica asked, plus a get per peer
 * request, of which each non-owner makes one per key (`peerRequests`). So
 * however slowly the requests arrive, they all wait on the same render.
 */
async function overlapping<T>(replicas: Replica[], route: string, peerRequests: number, requests: () => Array<Promise<T>>): Promise<T[]> {
  const before = await requestsSeen(replicas)
  await control(replicas, 'hold', `?path=${route}`)
  const sent = requests()
  try {
    await waitFor(`${sent.length} requests and ${peerRequests} peer requests to reach the cache`, async () => {
      const seen = await requestsSeen(replicas)
      const serverRequests = seen.serverRequests - before.serverRequests
      return serverRequests >= peerRequests && seen.gets - before.gets >= sent.length + serverRequests
    })
  } finally {
    await control(replicas, 'release', `?path=${route}`)
  }
  return Promise.all(sent)
}

test('normalizeUrl sorts query parameters by name and keeps repeated names in order', () => {
  assert.equal(normalizeUrl('/r?b=2&a=1&b=1'), '/r?a=1&b=2&b=1')
  assert.equal(normalizeUrl('/r'), '/r')
  assert.equal(normalizeUrl('/r?'), '/r')
})

test('cacheRoute refuses a stale window that is negative or not a number, naming the option', async () => {
  const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
  const routes = new RouteCaches(gc)
  for (const staleMs of [-1, Number.NaN, '5' as unknown as number]) {
    assert.throws(
      () => routes.route({ staleMs }),
      (err: unknown) => err instanceof InvalidOptionError && /options\.staleMs/.test(err.message),
    )
  }
  routes.route({ staleMs: Infinity })
  await gc.close()
})

test("a route given a group of its own keeps a flood of random URLs from evicting other routes' responses", async () => {
  const self = 'http://127.0.0.1:1'
  /** flood asks for 20 pages, then 3,000 random search URLs, then the 20 pages again, and says where those came from. */
  async function flood(searchGroup: string): Promise<string[]> {
    const gc = new Groupcache({ self, peers: [self] })
    const caches = new RouteCaches(gc)
    const pages = caches.route({ ttlMs: 3_600_000, group: 'shared', maxBytes: 256 * 1024 })
    const search = caches.route({ ttlMs: 3_600_000, group: searchGroup, maxBytes: 256 * 1024 })
    caches.setRenderer(async (url, headers) => {
      await (url.startsWith('/search') ? search : pages)({ method: 'GET', url, headers })
      return { status: 200, headers: { 'content-type': 'text/plain' }, body: Buffer.from(`page ${url}`) }
    })
    const source = (d: Decision): string => (d.action === 'reply' ? (d.headers[SOURCE_HEADER] as string) : 'next')
    for (let i = 0; i < 20; i++) await pages({ method: 'GET', url: `/page/${i}`, headers: {} })
    for (let i = 0; i < 3_000; i++) await search({ method: 'GET', url: `/search?q=${(i * 7919).toString(36)}`, headers: {} })
    const again: string[] = []
    for (let i = 0; i < 20; i++) again.push(source(await pages({ method: 'GET', url: `/page/${i}`, headers: {} })))
    const searchStats = gc.getGroup(searchGroup)?.cacheStats('main')
    assert.ok(
      searchStats !== undefined && searchStats.bytes <= 256 * 1024 && searchStats.evictions > 0,
      'the search responses were bounded by their budget',
    )
    await gc.close()
    return again
  }
  // In a group of its own, the flood evicts only its own responses.
  assert.deepEqual(await flood('search'), Array(20).fill('hit'))
  // Sharing the group, the same flood pushes the pages out.
  assert.deepEqual(await flood('shared'), Array(20).fill('miss'))
})

test('on Express, a cached route whose request another middleware answered while it waited (a timeout) leaves the process running', () => {
  // The route's decision comes in a promise callback; writing it on a
  // response already answered throws ERR_HTTP_HEADERS_SENT, and a throw
  // there is an unhandled rejection, which ends the process. Both kinds of
  // decision are tried: a cached answer (a render) and a bypass (a cookie).
  const script = `
    import { once } from 'node:events'
    import express from 'express'
    import { groupcache } from './adapters/express.ts'
    const app = express()
    const gc = groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
    app.use(gc)
    // As connect-timeout does once a request is slow, but at once: answer, and let the route go on.
    app.use((req, res, next) => {
      if (req.headers['x-timed-out'] !== undefined) res.status(503).end('timed out')
      next()
    })
    app.get('/r', gc.cacheRoute({ ttlMs: 60000 }), (req, res) => {
      if (!res.headersSent) res.send('rendered')
    })
    const server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const url = 'http://127.0.0.1:' + server.address().port + '/r'
    const seen = []
    for (const headers of [{ 'x-timed-out': '1' }, { 'x-timed-out': '1', cookie: 'a=1' }, {}]) {
      const res = await fetch(url, { headers })
      seen.push([res.status, await res.text()])
    }
    // The last request joined or hit the first one's render, so the first one's decision has come by now.
    await new Promise((resolve) => setImmediate(resolve))
    console.log(JSON.stringify(seen))
    server.closeAllConnections()
    server.close()
  `
  const child = spawnSync(process.execPath, ['--no-warnings', '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  })
  assert.equal(child.status, 0, child.stderr)
  assert.deepEqual(JSON.parse(child.stdout), [
    [503, 'timed out'],
    [503, 'timed out'],
    [200, 'rendered'],
  ])
})

/**
 * FakeOwner stands for the owner of the keys it is given: it answers every
 * peer GET with a GetResponse whose value is `entry`, bytes a test crafts as
 * a bad (or older, or Go) peer would.
 */
class FakeOwner {
  entry: Uint8Array = new Uint8Array()
  requests = 0
  readonly #server: Server
  readonly #sockets = new Set<Socket>()

  constructor() {
    this.#server = createServer((_req, res) => {
      this.requests++
      res.writeHead(200, { 'content-type': 'application/x-protobuf' })
      res.end(encodeGetResponse({ value: this.entry }))
    })
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket)
      socket.on('close', () => this.#sockets.delete(socket))
    })
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy()
    await new Promise((resolve) => this.#server.close(resolve))
  }
}

// As the route cache's codec packs entries: [0] (not cacheable), or
// [1, status, headers, body, etag, expires, rendered].
const packr = new Packr({ useRecords: false, moreTypes: false })
const FAR = Date.now() + 3_600_000
const BODY = Buffer.from('from the owner')

/** Malformed route entries a peer could send, each of which old code served, answered 500 with, or kept. */
const MALFORMED: Array<[string, unknown]> = [
  ['a header value with CR LF in it', [1, 200, { 'content-type': 'text/plain\r\nset-cookie: evil=1' }, BODY, '"e"', FAR, 1]],
  ['a header name with a space', [1, 200, { 'content type': 'text/plain' }, BODY, '"e"', FAR, 1]],
  ['a content-length that disagrees with the body', [1, 200, { 'content-length': '1000' }, BODY, '"e"', FAR, 1]],
  ['a header the owner never keeps', [1, 200, { 'set-cookie': 'session=evil' }, BODY, '"e"', FAR, 1]],
  ['headers that are an array', [1, 200, ['text/plain'], BODY, '"e"', FAR, 1]],
  ['a huge status', [1, 1_000_000, {}, BODY, '"e"', FAR, 1]],
  ['an informational status', [1, 101, {}, BODY, '"e"', FAR, 1]],
  ['a status that is a string', [1, '200', {}, BODY, '"e"', FAR, 1]],
  ['a map shaped like an entry, not an array', { 0: 1, 1: 200, 2: {}, 3: BODY, 4: '"e"', 5: FAR, 6: 1 }],
  ['a bypass marker with extra items', [0, 'and more']],
  ['an extra item', [1, 200, {}, BODY, '"e"', FAR, 1, 'extra']],
  ['a body that is a map, not bytes', [1, 200, {}, { buffer: 'from the owner' }, '"e"', FAR, 1]],
  ['an etag that is a number', [1, 200, {}, BODY, 42, FAR, 1]],
  ['an etag with a line feed in it', [1, 200, {}, BODY, '"e"\nx-evil: 1', FAR, 1]],
  ['an expiry that is NaN', [1, 200, {}, BODY, '"e"', Number.NaN, 1]],
  ['a render time that is a string', [1, 200, {}, BODY, '"e"', FAR, 'yesterday']],
]

for (const framework of ROUTE_FRAMEWORKS) {
  describe(`a cached route on ${framework} whose owner answers a malformed entry`, () => {
    const SELF = 'http://127.0.0.1:1'
    const owner = new FakeOwner()
    let ownerUrl: string
    let app: CachedApp
    const peerErrors = (): number => app.groupcache.getGroup('_routes')?.stats.peerErrors ?? -1

    before(async () => {
      ownerUrl = await owner.listen()
      // A breaker that never opens: each request must reach the owner.
      app = await startCachedApp(framework, { self: SELF, peers: [SELF, ownerUrl], breaker: { failures: 1_000_000 } }, [
        {
          path: '/r/:id',
          cache: { ttlMs: TTL_MS },
          handler: (req) => ({ headers: { 'content-type': 'text/plain' }, body: `rendered here: ${req.url}` }),
        },
      ])
    })
    after(async () => {
      await app.close()
      await app.groupcache.close({ graceMs: 100 })
      await owner.close()
    })

    test("a well-formed entry, older nodes' six-item one and a ttlMs: Infinity one included, is served as the owner's", async () => {
      for (const [i, entry] of [
        [1, 201, { 'content-type': 'text/x-owner' }, BODY, '"e"', FAR, Date.now()],
        [1, 201, { 'content-type': 'text/x-owner' }, BODY, '"e"', FAR],
        [1, 201, { 'content-type': 'text/x-owner' }, BODY, '"e"', Number.POSITIVE_INFINITY, Date.now()],
      ].entries()) {
        const path = keyOwnedBy(app.groupcache, ownerUrl, `/r/well-formed-${i}-`)
        owner.entry = packr.pack(entry)
        const res = await rawRequest(app.port, path)
        assert.equal(res.status, 201, path)
        assert.equal(res.body.toString(), BODY.toString())
        assert.equal(res.headers['content-type'], 'text/x-owner')
        assert.equal(res.headers[SOURCE_HEADER], 'peer')
      }
      assert.equal(app.runs['/r/:id'] ?? 0, 0, 'the handler never ran here')
    })

    for (const [i, [what, entry]] of MALFORMED.entries()) {
      test(`${what}: the route renders here, and nothing of the answer is served or kept`, async () => {
        const path = keyOwnedBy(app.groupcache, ownerUrl, `/r/malformed-${i}-`)
        owner.entry = packr.pack(entry)
        const runs = app.runs['/r/:id'] ?? 0
        const asked = owner.requests
        const errors = peerErrors()
        const first = await rawRequest(app.port, path)
        assert.equal(first.status, 200)
        assert.equal(first.body.toString(), `rendered here: ${path}`)
        assert.equal(first.headers[SOURCE_HEADER], 'miss')
        assert.equal(first.headers['set-cookie'], undefined)
        assert.equal(first.headers['x-evil'], undefined)
        assert.equal(owner.requests, asked + 1, 'the owner was asked')
        assert.equal(peerErrors(), errors + 1, 'its answer counted as a peer error')
        assert.equal((app.runs['/r/:id'] ?? 0) - runs, 1, 'the handler ran here')
        // The local render is what is kept: the next request hits it, and never sees the owner's answer.
        const second = await rawRequest(app.port, path)
        assert.equal(second.status, 200)
        assert.equal(second.body.toString(), `rendered here: ${path}`)
        assert.equal(second.headers[SOURCE_HEADER], 'hit')
        assert.equal((app.runs['/r/:id'] ?? 0) - runs, 1)
        assert.equal(owner.requests, asked + 1)
      })
    }
  })
}

describe('a cached route given a malformed entry by a peer that holds the secret', () => {
  const SELF = 'http://127.0.0.1:1'
  const SECRET = 'route-shape-secret'
  let app: CachedApp
  const bad = packr.pack([1, 200, { 'content-type': 'text/plain\r\nset-cookie: evil=1' }, BODY, '"e"', FAR, 1])

  before(async () => {
    app = await startCachedApp('express', { self: SELF, peers: [SELF], secret: SECRET }, [
      { path: '/r/:id', cache: { ttlMs: TTL_MS }, handler: (req) => ({ body: `rendered here: ${req.url}` }) },
    ])
  })
  after(async () => {
    await app.close()
    await app.groupcache.close({ graceMs: 100 })
  })

  const renders = async (path: string): Promise<void> => {
    const runs = app.runs['/r/:id'] ?? 0
    for (const source of ['miss', 'hit']) {
      const res = await rawRequest(app.port, path)
      assert.equal(res.status, 200)
      assert.equal(res.body.toString(), `rendered here: ${path}`)
      assert.equal(res.headers[SOURCE_HEADER], source)
    }
    assert.equal((app.runs['/r/:id'] ?? 0) - runs, 1)
  }

  test('a PUT of it is refused with 400 and the route renders as if it never came', async () => {
    const res = await rawRequest(app.port, `/_groupcache/_routes/${encodeURIComponent('/r/put-1')}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${SECRET}` },
      body: encodeGetResponse({ value: bad }),
    })
    assert.equal(res.status, 400)
    assert.equal(res.body.toString(), "bad request: a value the group's codec cannot read\n")
    await renders('/r/put-1')
  })

  test('a hand-off of it is taken without that entry and the route renders as if it never came', async () => {
    const res = await rawRequest(app.port, '/_groupcache/_routes', {
      method: 'PUT',
      headers: { authorization: `Bearer ${SECRET}`, 'content-type': HANDOFF_TYPE },
      body: encodeHandoff([{ key: '/r/handoff-1', value: bad, expire: 0 }]),
    })
    assert.equal(res.status, 204)
    assert.equal(app.groupcache.getGroup('_routes')?.stats.handoffsReceived, 0)
    await renders('/r/handoff-1')
  })
})

for (const framework of ['express', 'fastify', 'koa'] as ExampleFramework[]) {
  describe(`cached routes on ${framework}`, () => {
    let replicas: Replica[] = []
    const delta = async (path: string, action: () => Promise<unknown>): Promise<number> => {
      const before = (await counts(replicas))[path] ?? 0
      await action()
      return ((await counts(replicas))[path] ?? 0) - before
    }

    /** renders counts the runs of the stale route's handler on every replica. */
    const renders = async (): Promise<number> => (await counts(replicas))['/slow/:id'] ?? 0
    /** loads counts the route group's finished loads (renders) on every replica. */
    const loads = async (): Promise<number> =>
      ((await control(replicas, 'stats')) as Array<{ localLoads: number }>).reduce((n, s) => n + s.localLoads, 0)
    /**
     * hammer sends `GET path` to every replica every 10 ms until stopped,
     * each request on its own (a slow one does not hold up the next).
     */
    const hammer = (path: string): { stop(): void; done: Promise<{ answers: Answer[]; failures: string[] }> } => {
      const answers: Answer[] = []
      const failures: string[] = []
      let running = true
      const done = (async () => {
        const pending: Array<Promise<unknown>> = []
        while (running) {
          for (const r of replicas)
            pending.push(
              ask(r, path).then(
                (a) => answers.push(a),
                (err: unknown) => failures.push(String(err)),
              ),
            )
          await new Promise((resolve) => setTimeout(resolve, 10))
        }
        await Promise.all(pending)
        return { answers, failures }
      })()
      return { stop: () => void (running = false), done }
    }

    before(async () => {
      // NODE_ENV=test keeps Express's and Koa's default error logging quiet.
      const env = { ROUTE_TTL_MS: String(TTL_MS), CLOCK_MS: String(Date.now()), NODE_ENV: 'test' }
      replicas = await startReplicas([framework, framework, framework], env, ENTRY)
    })
    after(async () => {
      await stopReplicas(replicas)
    })

    test('200 concurrent requests over 10 URLs across 3 replicas run the handler exactly 10 times; every client gets the same answer', async () => {
      const urls = Array.from({ length: 10 }, (_, i) => `/report/${i}?b=2&a=${i}`)
      // Each URL is asked of all three replicas: its two non-owners ask its owner once each.
      const answers = await overlapping(replicas, '/report/:id', 2 * urls.length, () =>
        Array.from({ length: 200 }, (_, i) => ask(replicas[i % 3]!, urls[i % 10]!).then((a) => ({ url: urls[i % 10]!, a }))),
      )
      const bodies = new Map<string, string>()
      const sources = new Set<string>()
      for (const { url, a } of answers) {
        assert.equal(a.status, 200, url)
        sources.add(a.headers.get('x-groupcache') ?? '')
        const seen = bodies.get(url)
        if (seen === undefined) bodies.set(url, a.body)
        else assert.equal(a.body, seen, `${url} answered two different bodies`)
      }
      assert.equal((await counts(replicas))['/report/:id'], 10)
      assert.deepEqual(
        [...sources].filter((s) => !['hit', 'miss', 'peer'].includes(s)),
        [],
      )
      assert.ok(sources.has('miss') && sources.has('peer'), `sources seen: ${[...sources]}`)
      // The same URL with its query in another order is the same entry.
      assert.equal(await delta('/report/:id', () => ask(replicas[0]!, '/report/3?a=3&b=2')), 0)
    })

    test('a cached response carries a strong ETag and answers If-None-Match with 304', async () => {
      const first = await ask(replicas[1]!, '/report/etag-1')
      const etag = first.headers.get('etag')!
      assert.match(etag, /^"[A-Za-z0-9_-]{27}"$/)
      for (const r of replicas) {
        const again = await ask(r, '/report/etag-1', { headers: { 'if-none-match': etag } })
        assert.equal(again.status, 304)
        assert.equal(again.body, '')
        assert.equal(again.headers.get('etag'), etag)
      }
      assert.equal((await ask(replicas[0]!, '/etag')).headers.get('etag'), '"mine"', "the handler's own ETag stands")
    })

    test('HEAD shares the GET entry and gets its headers without a body', async () => {
      const runs = await delta('/report/:id', async () => {
        const get = await ask(replicas[0]!, '/report/head-1')
        const head = await ask(replicas[2]!, '/report/head-1', { method: 'HEAD' })
        assert.equal(head.status, 200)
        assert.equal(head.body, '')
        assert.equal(head.headers.get('etag'), get.headers.get('etag'))
        assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(get.body)))
      })
      assert.equal(runs, 1)
    })

    test('vary headers become part of the key', async () => {
      const en = await ask(replicas[0]!, '/vary', { headers: { 'accept-language': 'en' } })
      const fr = await ask(replicas[1]!, '/vary', { headers: { 'accept-language': 'fr' } })
      const en2 = await ask(replicas[2]!, '/vary', { headers: { 'accept-language': 'en' } })
      assert.deepEqual([en.body, fr.body, en2.body], ['lang=en', 'lang=fr', 'lang=en'])
      assert.equal((await counts(replicas))['/vary'], 2)
    })

    test('requests with Authorization or Cookie, and other methods, bypass the cache', async () => {
      for (const headers of [{ authorization: 'Bearer x' }, { cookie: 'a=b' }] as Array<Record<string, string>>) {
        const runs = await delta('/report/:id', async () => {
          const a = await ask(replicas[0]!, '/report/bypass-1', { headers })
          assert.equal(a.headers.get('x-groupcache'), 'bypass')
        })
        assert.equal(runs, 1, JSON.stringify(headers))
      }
      const post = await delta('POST /report/:id', async () => {
        const a = await ask(replicas[1]!, '/report/bypass-1', { method: 'POST' })
        assert.equal(a.body, 'posted')
        assert.equal(a.headers.get('x-groupcache'), 'bypass')
      })
      assert.equal(post, 1)
    })

    test('responses with Set-Cookie, no-store or an oversized body are not cached and pass through untouched', async () => {
      for (const [path, check] of [
        ['/cookie', (a: Answer) => assert.match(a.headers.get('set-cookie') ?? '', /session=abc/)],
        ['/nostore', (a: Answer) => assert.equal(a.headers.get('cache-control'), 'no-store')],
        ['/big', (a: Answer) => assert.equal(a.body.length, 1000)],
      ] as const) {
        const a = await ask(replicas[0]!, path)
        assert.equal(a.status, 200, path)
        assert.equal(a.headers.get('x-groupcache'), 'bypass', path)
        check(a)
        const b = await ask(replicas[0]!, path)
        assert.equal(b.headers.get('x-groupcache'), 'bypass', path)
      }
    })

    test('a forged render marker from a client neither bypasses nor poisons the cache', async () => {
      const runs = await delta('/report/:id', async () => {
        await ask(replicas[0]!, '/report/forged-1')
        const forged = await ask(replicas[1]!, '/report/forged-1', {
          headers: { 'x-groupcache-render': '0123456789abcdef0123456789abcdef' },
        })
        assert.notEqual(forged.headers.get('x-groupcache'), 'bypass')
        assert.match(forged.headers.get('x-groupcache') ?? '', /^(hit|peer)$/)
      })
      assert.equal(runs, 1)
    })

    test('a handler that throws gives every waiting client the same 5xx, caches nothing, and renders again next time', async () => {
      const runs = await delta('/boom', async () => {
        const answers = await overlapping(replicas, '/boom', 2, () => replicas.flatMap((r) => [ask(r, '/boom'), ask(r, '/boom')]))
        for (const a of answers) assert.equal(a.status, 500)
        assert.equal(new Set(answers.map((a) => a.body)).size, 1)
      })
      assert.equal(runs, 1)
      assert.equal(await delta('/boom', () => ask(replicas[0]!, '/boom')), 1)
    })

    test('private: true caches per user key, with the vary headers replayed', async () => {
      const a = await ask(replicas[0]!, '/private', { headers: { authorization: 'alice' } })
      const b = await ask(replicas[1]!, '/private', { headers: { authorization: 'bob' } })
      const a2 = await ask(replicas[2]!, '/private', { headers: { authorization: 'alice' } })
      assert.deepEqual([a.body, b.body, a2.body], ['for alice', 'for bob', 'for alice'])
      assert.equal((await counts(replicas))['/private'], 2)
    })

    test('an entry expires after ttlMs everywhere, and then renders again once', async () => {
      const askAll = (): Promise<unknown> => Promise.all(replicas.flatMap((r) => [ask(r, '/report/ttl-1'), ask(r, '/report/ttl-1')]))
      await Promise.all(replicas.map((r) => ask(r, '/report/ttl-1')))
      const before = (await counts(replicas))['/report/:id'] ?? 0
      await control(replicas, 'advance', `?ms=${TTL_MS - 1}`)
      await askAll()
      assert.equal((await counts(replicas))['/report/:id'], before, 'fresh everywhere 1 ms before ttlMs')
      await control(replicas, 'advance', '?ms=1')
      await askAll()
      assert.equal((await counts(replicas))['/report/:id'], before + 1)
    })

    test('requests every 10 ms across three expiries: stale responses at once, exactly one render per expiry cluster-wide, no error', async (t) => {
      const path = '/slow/steady'
      assert.equal((await ask(replicas[0]!, path)).status, 200)
      const rendersBefore = await renders()
      const loadsBefore = await loads()
      const requests = hammer(path)
      try {
        for (let i = 1; i <= 3; i++) {
          await control(replicas, 'advance', `?ms=${SLOW_TTL_MS}`)
          await waitFor(`the render after expiry ${i}`, async () => (await loads()) - loadsBefore === i)
        }
      } finally {
        requests.stop()
      }
      const { answers, failures } = await requests.done
      const sources = new Set(answers.map((a) => a.headers.get(SOURCE_HEADER)))
      t.diagnostic(`${answers.length} answers; sources ${[...sources].join(', ')}`)
      assert.deepEqual(failures, [])
      assert.deepEqual([...new Set(answers.map((a) => a.status))], [200])
      assert.equal((await renders()) - rendersBefore, 3, 'one render per expiry, for the whole cluster')
      assert.ok(sources.has('stale'), 'stale responses were served')
      assert.deepEqual(
        [...sources].filter((s) => !['hit', 'peer', 'stale'].includes(s ?? '')),
        [],
      )
      for (const a of answers) assert.match(a.headers.get('age') ?? '', /^\d+$/)
      assert.equal(answers[0]!.headers.get('cache-control'), 'public, max-age=1, stale-while-revalidate=20, stale-if-error=20')
    })

    test('with the render of a stale response held, every replica goes on answering the stale response at once', async () => {
      const path = '/slow/held'
      const first = await ask(replicas[1]!, path)
      await control(replicas, 'hold', '?path=/slow/:id')
      try {
        await control(replicas, 'advance', `?ms=${SLOW_TTL_MS}`)
        // Were any of these to wait for the held render, they would not settle before the release below.
        const answers = await Promise.all(replicas.flatMap((r) => [ask(r, path), ask(r, path), ask(r, path)]))
        for (const a of answers) {
          assert.equal(a.status, 200)
          assert.equal(a.body, first.body)
          assert.equal(a.headers.get(SOURCE_HEADER), 'stale')
        }
      } finally {
        await control(replicas, 'release', '?path=/slow/:id')
      }
      await waitFor('the refreshed response', async () => (await ask(replicas[1]!, path)).body !== first.body)
    })

    test('a handler that fails while the response is stale keeps the stale response; renders back off from refreshRetryMs, doubling', async () => {
      const path = '/slow/failing'
      const first = await ask(replicas[2]!, path)
      const rendersBefore = await renders()
      const loadsBefore = await loads()
      /** burst asks every replica three times; each must answer the stale response. */
      const burst = async (): Promise<void> => {
        for (const a of await Promise.all(replicas.flatMap((r) => [ask(r, path), ask(r, path), ask(r, path)]))) {
          assert.equal(a.status, 200)
          assert.equal(a.body, first.body)
        }
      }
      /** attempt moves the clock on by `ms`, asks, and waits for the render attempt that is then due. */
      const attempt = async (ms: number, n: number): Promise<void> => {
        await control(replicas, 'advance', `?ms=${ms}`)
        await burst()
        await waitFor(`render attempt ${n}`, async () => (await renders()) - rendersBefore === n && (await loads()) - loadsBefore === n)
      }
      await control(replicas, 'failing', '?on=1')
      try {
        await attempt(SLOW_TTL_MS, 1)
        for (const [n, retryMs] of [
          [2, DEFAULT_REFRESH_RETRY_MS],
          [3, 2 * DEFAULT_REFRESH_RETRY_MS],
        ] as const) {
          await control(replicas, 'advance', `?ms=${retryMs - 1}`)
          await burst()
          assert.equal((await renders()) - rendersBefore, n - 1, `no render ${retryMs - 1} ms after a failed one`)
          await attempt(1, n)
        }
      } finally {
        await control(replicas, 'failing', '?on=0')
      }
      await control(replicas, 'advance', `?ms=${4 * DEFAULT_REFRESH_RETRY_MS}`)
      await waitFor('a fresh response once the handler works again', async () => (await ask(replicas[0]!, path)).body !== first.body)
    })
  })
}

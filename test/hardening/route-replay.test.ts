// A cached route's owner renders by replaying the request into its own app
// in-process. The replay must reach exactly the route the client's request
// matched: URL parsing in the replay (WHATWG rules resolve `\`, `..` and
// `%2e%2e`, which the routers do not) once turned `GET /r/..\admin\run`,
// cached as `/r/:id`, into a loopback GET of `/admin/run` on every framework.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { replaysAsIs } from '../../adapters/route-cache.js'
import { escapePathPart } from '../../src/protocol.js'
import { type CachedApp, ROUTE_FRAMEWORKS, startCachedApp } from '../helpers/cached-apps.js'
import { mulberry32 } from '../helpers/prng.js'
import { rawRequest } from '../helpers/raw.js'

const SELF = 'http://127.0.0.1:1'

// Each matches `/r/:id` (no `/` in it), and each becomes `/admin/run` under
// WHATWG URL parsing.
const TRAVERSALS = ['/r/..\\admin\\run', '/r/.%2e\\admin\\run', '/r/%2e%2e\\admin\\run', '/r/%2E.\\admin\\run', '/r/..\\..\\admin\\run']

test('replaysAsIs accepts what URL parsing leaves alone and refuses what it would change', () => {
  for (const url of ['/r/1', '/r/a%2Fb', '/r/..%5Cadmin', '/r/x?a=1&b=2', '/', '//double/slash']) assert.equal(replaysAsIs(url), true, url)
  for (const url of [...TRAVERSALS, '/r/./x', '/r/../x', '/r/é', '/r/a b', '/r/x#frag', '/r/"q"', 'r/1', '/r/x?a=<b>', '/r/x?']) {
    assert.equal(replaysAsIs(url), false, url)
  }
})

test('replaysAsIs agrees with URL parsing on every URL, whether or not it parses it', () => {
  // The replay's own rule: what URL parsing gives back for the path and query.
  const parsedAsIs = (url: string): boolean => {
    if (!url.startsWith('/')) return false
    try {
      const parsed = url.startsWith('//') ? new URL(`http://localhost${url}`) : new URL(url, 'http://localhost')
      return parsed.pathname + parsed.search === url
    } catch {
      return false
    }
  }
  const random = mulberry32(17)
  const pieces = [
    '/',
    '.',
    '..',
    '%2e',
    '%2E',
    '%',
    '%41',
    '?',
    '#',
    '\\',
    'a',
    'Z',
    '0',
    '-',
    '_',
    '~',
    ' ',
    "'",
    '"',
    '<',
    '>',
    '^',
    '`',
    '{',
    '}',
    '|',
    '[',
    ']',
    '!',
    '$',
    '&',
    '(',
    ')',
    '*',
    '+',
    ',',
    ';',
    '=',
    ':',
    '@',
    'é',
    '\t',
    '\n',
    '\u0000',
    '\u007f',
  ]
  let plain = 0
  for (let i = 0; i < 20_000; i++) {
    let url = random() < 0.9 ? '/' : ''
    const length = Math.floor(random() * 8)
    for (let j = 0; j < length; j++) url += pieces[Math.floor(random() * pieces.length)]
    const expected = parsedAsIs(url)
    if (expected) plain++
    assert.equal(replaysAsIs(url), expected, JSON.stringify(url))
  }
  assert.ok(plain > 1000, `${plain} URLs were left alone`)
})

for (const framework of ROUTE_FRAMEWORKS) {
  describe(`the owner's replay on ${framework}`, () => {
    let app: CachedApp
    before(async () => {
      app = await startCachedApp(framework, { self: SELF, peers: [SELF] }, [
        { path: '/admin/run', handler: () => ({ body: 'admin ran' }) },
        { path: '/r/:id', cache: {}, handler: (req) => ({ body: `r ${req.params.id}` }) },
        { path: '/v/:id', cache: { vary: ['accept-language'] }, handler: (req) => ({ body: `v ${String(req.headers['x-evil'])}` }) },
      ])
    })
    after(async () => {
      await app.close()
    })

    test('a cached route never renders another route: URLs the replay would resolve differently bypass the cache', async () => {
      for (const path of TRAVERSALS) {
        const res = await rawRequest(app.port, path)
        assert.equal(res.status, 200, path)
        assert.equal(res.headers['x-groupcache'], 'bypass', path)
        assert.match(res.body.toString(), /^r /, path)
      }
      assert.equal(app.runs['/admin/run'], undefined, 'the admin route never ran')
      // An ordinary URL is still cached.
      assert.equal((await rawRequest(app.port, '/r/1')).headers['x-groupcache'], 'miss')
      assert.equal((await rawRequest(app.port, '/r/1')).headers['x-groupcache'], 'hit')
    })

    test('a peer request for a route key that the replay would resolve differently renders nothing', async () => {
      const before = app.runs['/r/:id'] ?? 0
      for (const key of TRAVERSALS) {
        const res = await rawRequest(app.port, `/_groupcache/_routes/${escapePathPart(key)}`)
        assert.equal(res.status, 200, key)
      }
      assert.equal(app.runs['/admin/run'], undefined, 'the admin route never ran')
      assert.equal(app.runs['/r/:id'] ?? 0, before, 'nor did the cached one')
    })

    test('a peer request cannot smuggle headers the route does not vary on into a render', async () => {
      const key = JSON.stringify(['/v/1', { 'accept-language': 'en', 'x-evil': 'injected' }])
      const res = await rawRequest(app.port, `/_groupcache/_routes/${escapePathPart(key)}`)
      assert.equal(res.status, 200)
      assert.equal(app.runs['/v/:id'], undefined, 'the handler never saw the injected header')
      const fair = JSON.stringify(['/v/1', { 'accept-language': 'en' }])
      assert.equal((await rawRequest(app.port, `/_groupcache/_routes/${escapePathPart(fair)}`)).status, 200)
      assert.equal(app.runs['/v/:id'], 1)
    })
  })
}

test('on Fastify, a peer request for an uncached URL is refused before any handler runs', async () => {
  const app = await startCachedApp('fastify', { self: SELF, peers: [SELF] }, [
    { path: '/admin/run', handler: () => ({ body: 'admin ran' }) },
    { path: '/r/:id', cache: {}, handler: (req) => ({ body: `r ${req.params.id}` }) },
  ])
  try {
    const res = await rawRequest(app.port, `/_groupcache/_routes/${escapePathPart('/admin/run')}`)
    assert.equal(res.status, 200)
    assert.equal(app.runs['/admin/run'], undefined)
  } finally {
    await app.close()
  }
})

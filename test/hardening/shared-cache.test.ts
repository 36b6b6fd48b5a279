// The route cache as seen by a shared cache (a CDN, a proxy) in front of
// the app: what it may store, for how long, for which requests, and when a
// client's copy is still good. RFC 9110/9111 semantics, on every framework.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type CachedApp, ROUTE_FRAMEWORKS, startCachedApp } from '../helpers/cached-apps.js'
import { rawRequest } from '../helpers/raw.js'

const SELF = 'http://127.0.0.1:1'
const YEAR_S = 365 * 24 * 60 * 60

function varyOf(header: string | string[] | undefined): string[] {
  return String(header ?? '')
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v !== '')
}

for (const framework of ROUTE_FRAMEWORKS) {
  describe(`cached routes on ${framework}, behind a shared cache`, () => {
    let app: CachedApp
    before(async () => {
      app = await startCachedApp(framework, { self: SELF, peers: [SELF] }, [
        {
          path: '/lang',
          cache: { vary: ['accept-language'], cacheControl: true },
          handler: (req) => ({ body: `lang=${String(req.headers['accept-language'])}` }),
        },
        {
          path: '/lang-plain',
          cache: { vary: ['accept-language'] },
          handler: (req) => ({ body: `lang=${String(req.headers['accept-language'])}` }),
        },
        {
          path: '/own-vary',
          cache: { vary: ['accept-language'] },
          handler: () => ({ headers: { vary: 'Accept-Encoding' }, body: 'varies on its own too' }),
        },
        { path: '/forever', cache: { ttlMs: Infinity, cacheControl: true }, handler: () => ({ body: 'forever' }) },
        { path: '/plain', cache: {}, handler: () => ({ body: 'plain' }) },
        {
          path: '/me',
          cache: {
            private: true,
            key: (req) => `/me?user=${String(req.headers.authorization)}`,
            vary: ['authorization'],
            cacheControl: true,
          },
          handler: (req) => ({ body: `for ${String(req.headers.authorization)}` }),
        },
      ])
    })
    after(async () => {
      await app.close()
    })

    test('a response that varies on request headers says so in Vary, whether or not it sets Cache-Control', async () => {
      for (const path of ['/lang', '/lang-plain']) {
        for (const lang of ['fr', 'en', 'fr']) {
          const res = await rawRequest(app.port, path, { headers: { 'accept-language': lang } })
          assert.equal(res.body.toString(), `lang=${lang}`)
          assert.deepEqual(varyOf(res.headers.vary), ['accept-language'], `${path} (${String(res.headers['x-groupcache'])})`)
        }
      }
      assert.match(String((await rawRequest(app.port, '/lang')).headers['cache-control']), /^public, max-age=\d+$/)
    })

    test("the route's vary headers join the handler's own Vary", async () => {
      for (let i = 0; i < 2; i++) {
        const res = await rawRequest(app.port, '/own-vary', { headers: { 'accept-language': 'de' } })
        assert.deepEqual(varyOf(res.headers.vary).sort(), ['accept-encoding', 'accept-language'])
      }
    })

    test('a weak If-None-Match matches (RFC 9110 weak comparison) and gets 304', async () => {
      const first = await rawRequest(app.port, '/plain')
      const etag = String(first.headers.etag)
      for (const match of [`W/${etag}`, `"other", W/${etag}`, etag]) {
        const res = await rawRequest(app.port, '/plain', { headers: { 'if-none-match': match } })
        assert.equal(res.status, 304, match)
        assert.equal(res.body.length, 0)
      }
      assert.equal((await rawRequest(app.port, '/plain', { headers: { 'if-none-match': 'W/"other"' } })).status, 200)
      // fetch() adds Cache-Control: no-cache to every conditional request.
      const refetch = await rawRequest(app.port, '/plain', { headers: { 'if-none-match': etag, 'cache-control': 'no-cache' } })
      assert.equal(refetch.status, 304)
    })

    test('a per-user entry is private to shared caches, and says what it varies on', async () => {
      for (const user of ['alice', 'alice']) {
        const res = await rawRequest(app.port, '/me', { headers: { authorization: user } })
        assert.equal(res.body.toString(), `for ${user}`)
        assert.match(String(res.headers['cache-control']), /^private, max-age=\d+$/)
        assert.deepEqual(varyOf(res.headers.vary), ['authorization'])
      }
    })

    test('ttlMs: Infinity sends a finite max-age', async () => {
      for (let i = 0; i < 2; i++) {
        const res = await rawRequest(app.port, '/forever')
        const match = /^public, max-age=(\d+)$/.exec(String(res.headers['cache-control']))
        assert.ok(match, `cache-control: ${String(res.headers['cache-control'])}`)
        assert.ok(Number(match[1]) <= YEAR_S && Number(match[1]) > 0)
      }
    })
  })
}

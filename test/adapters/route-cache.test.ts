// One suite for cached routes, run on each framework: three replicas of the
// same app (test/helpers/route-app.ts) in child processes on 127.0.0.1.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { normalizeUrl } from '../../adapters/route-cache.js'
import { startReplicas, stopReplicas, type ExampleFramework, type Replica } from '../helpers/replicas.js'

const ENTRY = 'test/helpers/route-app.ts'
// TTL_MS is the TTL of /fleeting/:id only: the other routes keep entries for
// 60 s, so that a slow machine cannot expire them in the middle of a test.
const TTL_MS = 1_500

interface Answer {
  status: number
  headers: Headers
  body: string
}

async function ask(replica: Replica, path: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await fetch(`http://127.0.0.1:${replica.port}${path}`, { ...init, signal: AbortSignal.timeout(15_000) })
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

test('normalizeUrl sorts query parameters by name and keeps repeated names in order', () => {
  assert.equal(normalizeUrl('/r?b=2&a=1&b=1'), '/r?a=1&b=2&b=1')
  assert.equal(normalizeUrl('/r'), '/r')
  assert.equal(normalizeUrl('/r?'), '/r')
})

for (const framework of ['express', 'fastify', 'koa'] as ExampleFramework[]) {
  describe(`cached routes on ${framework}`, () => {
    let replicas: Replica[] = []
    const delta = async (path: string, action: () => Promise<unknown>): Promise<number> => {
      const before = (await counts(replicas))[path] ?? 0
      await action()
      return ((await counts(replicas))[path] ?? 0) - before
    }

    before(async () => {
      // NODE_ENV=test keeps Express's and Koa's default error logging quiet.
      replicas = await startReplicas([framework, framework, framework], { ROUTE_TTL_MS: String(TTL_MS), NODE_ENV: 'test' }, ENTRY)
    })
    after(async () => {
      await stopReplicas(replicas)
    })

    test('200 concurrent requests over 10 URLs across 3 replicas run the handler exactly 10 times; every client gets the same answer', async () => {
      const urls = Array.from({ length: 10 }, (_, i) => `/report/${i}?b=2&a=${i}`)
      const answers = await Promise.all(
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
      assert.deepEqual([...sources].filter((s) => !['hit', 'miss', 'peer'].includes(s)), [])
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
        const forged = await ask(replicas[1]!, '/report/forged-1', { headers: { 'x-groupcache-render': '0123456789abcdef0123456789abcdef' } })
        assert.notEqual(forged.headers.get('x-groupcache'), 'bypass')
        assert.match(forged.headers.get('x-groupcache') ?? '', /^(hit|peer)$/)
      })
      assert.equal(runs, 1)
    })

    test('a handler that throws gives every waiting client the same 5xx, caches nothing, and renders again next time', async () => {
      const runs = await delta('/boom', async () => {
        const answers = await Promise.all(replicas.flatMap((r) => [ask(r, '/boom'), ask(r, '/boom')]))
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
      await Promise.all(replicas.map((r) => ask(r, '/fleeting/ttl-1')))
      const before = (await counts(replicas))['/fleeting/:id'] ?? 0
      await new Promise((resolve) => setTimeout(resolve, TTL_MS + 100))
      await Promise.all(replicas.flatMap((r) => [ask(r, '/fleeting/ttl-1'), ask(r, '/fleeting/ttl-1')]))
      assert.equal((await counts(replicas))['/fleeting/:id'], before + 1)
    })
  })
}

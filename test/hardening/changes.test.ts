// Secure by default: without a secret, the peer endpoint serves GETs (as
// Go's does) but refuses every change: PUT, DELETE, and generations riding
// on requests. Generations are validated wherever they come from, so no
// request, however forged, can wedge `clear()`.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type Group, Groupcache, InvalidOptionError, MAX_GENERATION_LEAD_MS } from '../../src/index.js'
import { encodeGetResponse } from '../../src/wire.js'
import { startApp } from '../helpers/apps.js'
import { startLocalNodes } from '../helpers/local.js'
import { rawRequest } from '../helpers/raw.js'

const SECRET = 'changes-secret'
const AUTH = { authorization: `Bearer ${SECRET}` }
const HUGE = String(Number.MAX_SAFE_INTEGER)

function portOf(url: string): number {
  return Number(new URL(url).port)
}

function stringGroup(gc: Groupcache, loads: string[]): Group<string> {
  return gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', promote: true, load: (key) => (loads.push(key), `v:${key}`) })
}

describe('without a secret', () => {
  test('PUT, DELETE and clears are refused with 403 and change nothing', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(1)
    try {
      const loads: string[] = []
      const group = stringGroup(nodes[0]!, loads)
      await group.get('kept')
      const port = portOf(urls[0]!)
      const put = await fetchRaw(port, '/_groupcache/g/kept', 'PUT', encodeGetResponse({ value: Buffer.from('<script>alert(1)</script>') }))
      assert.equal(put.status, 403)
      assert.match(put.body.toString(), /secret/)
      assert.equal((await rawRequest(port, '/_groupcache/g/kept', { method: 'DELETE' })).status, 403)
      assert.equal(
        (await rawRequest(port, '/_groupcache/g', { method: 'DELETE', headers: { 'x-groupcache-generation': '5' } })).status,
        403,
      )
      assert.equal(await group.get('kept'), 'v:kept')
      assert.deepEqual(loads, ['kept'], 'nothing was dropped or replaced')
      assert.equal(group.generation, 0)
    } finally {
      await closeAll()
    }
  })

  test('a generation on a GET is ignored: one forged request neither clears a node nor wedges clear()', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ dangerouslyAllowUnauthenticatedChanges: false }))
    try {
      const loads: string[] = []
      const [a, b] = [stringGroup(nodes[0]!, loads), stringGroup(nodes[1]!, loads)]
      await a.get('x')
      const res = await rawRequest(portOf(urls[0]!), '/_groupcache/g/y', { headers: { 'x-groupcache-generation': HUGE } })
      assert.equal(res.status, 200)
      assert.equal(res.headers['x-groupcache-generation'], undefined)
      assert.equal(a.generation, 0)
      await a.get('x')
      assert.equal(loads.filter((k) => k === 'x').length, 1, 'x was not cleared')
      await b.get('y')
      assert.equal(b.generation, 0, 'nothing spread to the other node')
    } finally {
      await closeAll()
    }
  })

  test('remove, set and clear across peers fail at once, naming the option', async () => {
    const { nodes, closeAll } = await startLocalNodes(2)
    try {
      const group = stringGroup(nodes[0]!, [])
      await assert.rejects(group.remove('k'), (err: unknown) => err instanceof InvalidOptionError && /options\.secret/.test(err.message))
      await assert.rejects(group.set('k', 'v'), InvalidOptionError)
      await assert.rejects(group.clear(), InvalidOptionError)
    } finally {
      await closeAll()
    }
  })

  test('a single node changes its own caches without a secret', async () => {
    const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
    try {
      const loads: string[] = []
      const group = stringGroup(gc, loads)
      await group.get('k')
      await group.clear()
      await group.get('k')
      assert.equal(loads.length, 2)
    } finally {
      await gc.close()
    }
  })

  test('dangerouslyAllowUnauthenticatedChanges: true opts back in', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ dangerouslyAllowUnauthenticatedChanges: true }))
    try {
      const loads: string[] = []
      const [a] = [stringGroup(nodes[0]!, loads), stringGroup(nodes[1]!, loads)]
      await a.remove('k')
      await a.clear()
      assert.ok(a.generation > 0)
      assert.equal((await rawRequest(portOf(urls[1]!), '/_groupcache/g/k', { method: 'DELETE' })).status, 204)
    } finally {
      await closeAll()
    }
  })

  test('every adapter warns at start-up, on loopback too', async () => {
    const warnings: string[] = []
    const onWarning = (w: Error & { code?: string }): void => {
      if (w.code === 'GROUPCACHE_OPEN_ENDPOINT') warnings.push(w.message)
    }
    process.on('warning', onWarning)
    const self = 'http://127.0.0.1:1'
    try {
      for (const framework of ['express', 'koa'] as const) {
        const app = await startApp(framework, { self, peers: [self] }, () => {})
        await app.close()
      }
      const withSecret = await startApp('express', { self, peers: [self], secret: SECRET }, () => {})
      await withSecret.close()
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(warnings.length, 2)
      assert.match(warnings[0]!, /no secret/)
    } finally {
      process.off('warning', onWarning)
    }
  })
})

describe('generations', () => {
  for (const [what, options] of [
    ['with a secret', { secret: SECRET }],
    ['with the opt-out', { dangerouslyAllowUnauthenticatedChanges: true }],
  ] as const) {
    test(`${what}, one far beyond the clock is refused, and clear() keeps working`, async () => {
      const { nodes, urls, closeAll } = await startLocalNodes(2, () => options)
      try {
        const [a, b] = [stringGroup(nodes[0]!, []), stringGroup(nodes[1]!, [])]
        const headers = 'secret' in options ? AUTH : {}
        for (const forged of [HUGE, String(Date.now() + 2 * MAX_GENERATION_LEAD_MS)]) {
          const get = await rawRequest(portOf(urls[0]!), '/_groupcache/g/y', { headers: { ...headers, 'x-groupcache-generation': forged } })
          assert.equal(get.status, 200)
          assert.equal(a.generation, 0)
          const clear = await rawRequest(portOf(urls[1]!), '/_groupcache/g', {
            method: 'DELETE',
            headers: { ...headers, 'x-groupcache-generation': forged },
          })
          assert.equal(clear.status, 400)
          assert.equal(b.generation, 0)
        }
        // The most a forged generation can do: move a node to the limit.
        const limit = String(Date.now() + MAX_GENERATION_LEAD_MS - 1000)
        const pushed = await rawRequest(portOf(urls[0]!), '/_groupcache/g', {
          method: 'DELETE',
          headers: { ...headers, 'x-groupcache-generation': limit },
        })
        assert.equal(pushed.status, 204)
        assert.equal(a.generation, Number(limit))
        // clear() from either node still reaches every node, many times over.
        for (let i = 0; i < 3; i++) {
          await a.clear()
          await b.clear()
        }
        assert.equal(a.generation, b.generation)
        assert.ok(Number.isSafeInteger(a.generation + 1))
      } finally {
        await closeAll()
      }
    })
  }
})

/** fetchRaw sends a request with a body to 127.0.0.1. */
async function fetchRaw(port: number, path: string, method: string, body: Uint8Array): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    body,
    headers: { 'content-type': 'application/x-protobuf' },
    signal: AbortSignal.timeout(10_000),
  })
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) }
}

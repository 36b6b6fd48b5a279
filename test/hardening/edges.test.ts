// Edges the fuzz test (fuzz.test.ts) ran into, each pinned by the smallest
// request that shows it.
import assert from 'node:assert/strict'
import { METHODS } from 'node:http'
import { test } from 'node:test'
import { Groupcache, InvalidOptionError } from '../../src/index.js'
import { startApp } from '../helpers/apps.js'
import { keyOwnedBy, startLocalNodes } from '../helpers/local.js'
import { rawRequest } from '../helpers/raw.js'

const SELF = 'http://127.0.0.1:1'
const SECRET = 'edges-secret'
const AUTH = { authorization: `Bearer ${SECRET}` }

test('the 404 for an unknown group stays short, whatever the characters of the name it echoes', async () => {
  const gc = new Groupcache({ self: SELF, peers: [SELF] })
  try {
    for (const name of ['x'.repeat(300), 'é'.repeat(300), '中'.repeat(300), '😀'.repeat(300)]) {
      const res = await gc.handler({ method: 'GET', url: `/_groupcache/${encodeURIComponent(name)}/k`, headers: {} })
      assert.equal(res.status, 404)
      // The handler means to echo at most 200 characters of the name; in
      // UTF-8 that is up to 600 bytes.
      assert.ok(res.body.length <= 256, `a 404 of ${res.body.length} bytes for a group name of ${name.length} × ${JSON.stringify(name[0])}`)
    }
  } finally {
    await gc.close()
  }
})

test('every method that reaches the app gets the endpoint’s own answer, on Fastify as on gc.listen()', async () => {
  const setup = (gc: Groupcache): void => {
    gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => key })
  }
  const listen = await startApp('listen', { self: SELF, peers: [SELF], secret: SECRET }, setup)
  const fastify = await startApp('fastify', { self: SELF, peers: [SELF], secret: SECRET }, setup)
  try {
    // Every method Node's parser accepts, but CONNECT (a 'connect' event,
    // not a request) and the three the endpoint serves.
    const refused = METHODS.filter((m) => !['CONNECT', 'GET', 'PUT', 'DELETE'].includes(m))
    // With a content type: Fastify refuses a QUERY without one (RFC 10008)
    // before any route runs, rightly.
    const headers = { ...AUTH, 'content-type': 'application/octet-stream' }
    const differ: string[] = []
    for (const method of refused) {
      const want = await rawRequest(listen.port, '/_groupcache/g/k', { method, headers })
      const got = await rawRequest(fastify.port, '/_groupcache/g/k', { method, headers })
      assert.equal(want.status, 405, `gc.listen() refuses ${method}`)
      if (got.status !== want.status || got.body.toString() !== want.body.toString()) {
        differ.push(`${method} → ${got.status} ${got.body.toString().slice(0, 60)}`)
      }
    }
    assert.deepEqual(differ, [], `Fastify answers ${differ.length} of ${refused.length} methods unlike gc.listen():\n${differ.join('\n')}`)
  } finally {
    await Promise.all([listen.close(), fastify.close()])
  }
})

test('a secret that cannot travel in an HTTP header is refused at construction, or works between peers', async () => {
  // Not Latin-1: undici refuses such an Authorization value on every request.
  const secret = 'пароль-密码'
  let cluster: Awaited<ReturnType<typeof startLocalNodes>>
  try {
    cluster = await startLocalNodes(2, () => ({ secret }))
  } catch (err) {
    assert.ok(err instanceof InvalidOptionError, `refused with ${String(err)}`)
    return
  }
  const { nodes, urls, closeAll } = cluster
  try {
    const loads = [0, 0]
    const groups = nodes.map((gc, i) =>
      gc.newGroup<string>({
        name: 'g',
        maxBytes: 1 << 20,
        codec: 'string',
        load: (key) => {
          loads[i] = (loads[i] ?? 0) + 1
          return `v:${key}`
        },
      }),
    )
    const key = keyOwnedBy(nodes[0]!, urls[1]!)
    assert.equal(await groups[0]!.get(key), `v:${key}`)
    assert.deepEqual(
      { peerLoads: groups[0]!.stats.peerLoads, peerErrors: groups[0]!.stats.peerErrors, loads },
      { peerLoads: 1, peerErrors: 0, loads: [0, 1] },
      `the owner loaded the key for its peer (peer health: ${JSON.stringify(nodes[0]!.peerHealth())})`,
    )
  } finally {
    await closeAll()
  }
})

// gc.servePeersFirst(server): the peer endpoint in front of a node:http
// server's own request listeners, as the adapters use it.
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttp2Server } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import { Groupcache, servePeerRequest } from '../src/index.js'
import { rawRequest } from './helpers/raw.js'
import { waitFor } from './helpers/wait.js'

const SELF = 'http://127.0.0.1:1'
const SECRET = 'front-secret'
const AUTH = { authorization: `Bearer ${SECRET}` }

function node(): Groupcache {
  const gc = new Groupcache({ self: SELF, peers: [SELF], secret: SECRET })
  gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (key) => `v:${key}` })
  return gc
}

/**
 * App stands for a framework: one request listener that records every
 * request it gets and, like an adapter at the app's root, serves requests
 * under basePath with the endpoint and answers everything else itself.
 */
interface App {
  server: Server
  port: number
  seen: string[]
  listener: (req: IncomingMessage, res: ServerResponse) => void
  close(): Promise<void>
}

async function startApp(gc: Groupcache): Promise<App> {
  const seen: string[] = []
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    seen.push(req.url ?? '')
    if (req.url?.startsWith(gc.basePath)) {
      void servePeerRequest(gc.handler, req, res)
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('app')
  }
  const server = createServer(listener)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    server,
    port: (server.address() as AddressInfo).port,
    seen,
    listener,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

describe('gc.servePeersFirst', () => {
  test('answers requests under basePath from the request event and hands every other request to the app', async () => {
    const gc = node()
    const app = await startApp(gc)
    try {
      assert.equal(gc.servePeersFirst(app.server), true)
      const peer = await rawRequest(app.port, '/_groupcache/g/k', { headers: AUTH })
      assert.equal(peer.status, 200)
      assert.match(peer.body.toString('latin1'), /v:k/)
      assert.deepEqual(app.seen, [], 'the app never saw the peer request')
      const other = await rawRequest(app.port, '/users/1')
      assert.equal(other.status, 404)
      assert.equal(other.body.toString(), 'app')
      assert.deepEqual(app.seen, ['/users/1'])
    } finally {
      await gc.close()
      await app.close()
    }
  })

  test('is idempotent per server: a second call changes nothing and each request is answered once', async () => {
    const gc = node()
    const app = await startApp(gc)
    try {
      assert.equal(gc.servePeersFirst(app.server), true)
      const front = app.server.rawListeners('request')
      assert.equal(gc.servePeersFirst(app.server), true)
      assert.deepEqual(app.server.rawListeners('request'), front)
      assert.equal(front.length, 1)
      assert.equal((await rawRequest(app.port, '/_groupcache/g/k', { headers: AUTH })).status, 200)
      assert.equal((await rawRequest(app.port, '/x')).status, 404)
      assert.deepEqual(app.seen, ['/x'])
    } finally {
      await gc.close()
      await app.close()
    }
  })

  test('calls several listeners in their order with the server as this, and a once listener once', async () => {
    const gc = node()
    const calls: string[] = []
    const server = createServer()
    server.on('request', function (this: unknown, req: IncomingMessage) {
      calls.push(`first ${req.url} ${this === server}`)
    })
    server.once('request', function (this: unknown, req: IncomingMessage) {
      calls.push(`once ${req.url} ${this === server}`)
    })
    server.on('request', (_req: IncomingMessage, res: ServerResponse) => res.end('last'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as AddressInfo).port
    try {
      assert.equal(gc.servePeersFirst(server), true)
      assert.equal((await rawRequest(port, '/a')).body.toString(), 'last')
      assert.equal((await rawRequest(port, '/_groupcache/g/k', { headers: AUTH })).status, 200)
      assert.equal((await rawRequest(port, '/b')).body.toString(), 'last')
      assert.deepEqual(calls, ['first /a true', 'once /a true', 'first /b true'])
    } finally {
      await gc.close()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    }
  })

  test('a wrong or missing secret gets 401 at the front, and the app never sees it', async () => {
    const gc = node()
    const app = await startApp(gc)
    try {
      gc.servePeersFirst(app.server)
      const missing = await rawRequest(app.port, '/_groupcache/g/k')
      const wrong = await rawRequest(app.port, '/_groupcache/g/k', { headers: { authorization: 'Bearer wrong' } })
      const changes = await rawRequest(app.port, '/_groupcache/g/k', { method: 'DELETE' })
      assert.deepEqual([missing.status, wrong.status, changes.status], [401, 401, 401])
      assert.deepEqual(app.seen, [])
      assert.equal(gc.stats().groups.g?.stats.loads, 0)
    } finally {
      await gc.close()
      await app.close()
    }
  })

  test('odd targets reach the app or the endpoint exactly as the app itself would route them', async () => {
    const gc = node()
    const app = await startApp(gc)
    const reference = node()
    const plain = await startApp(reference)
    try {
      gc.servePeersFirst(app.server)
      // Absolute-form, a doubled slash, no trailing slash, a different case,
      // an escaped base path: none starts with basePath, all go to the app.
      const toApp = [
        '/_groupcache',
        '//_groupcache/g/k',
        'http://h/_groupcache/g/k',
        '/_GROUPCACHE/g/k',
        '/%5Fgroupcache/g/k',
        '/_groupcache%2Fg%2Fk',
      ]
      // Dot segments and a bad escape start with basePath: the endpoint answers them, as the app would have.
      const toEndpoint = ['/_groupcache/../x', '/_groupcache/g/../../x', '/_groupcache/g/100%', '/_groupcache/_stats']
      for (const path of [...toApp, ...toEndpoint]) {
        const front = await rawRequest(app.port, path, { headers: AUTH })
        const direct = await rawRequest(plain.port, path, { headers: AUTH })
        assert.equal(front.status, direct.status, path)
        if (path !== '/_groupcache/_stats') assert.deepEqual(front.body, direct.body, path)
        assert.equal(front.headers['content-type'], direct.headers['content-type'], path)
      }
      assert.deepEqual(app.seen, toApp)
    } finally {
      await Promise.all([gc.close(), reference.close()])
      await Promise.all([app.close(), plain.close()])
    }
  })

  test('close() puts the original listeners back in its place, keeps listeners added since, and the app answers peers 503', async () => {
    const gc = node()
    const app = await startApp(gc)
    try {
      const before = app.server.rawListeners('request')
      gc.servePeersFirst(app.server)
      const later = (): void => {}
      app.server.on('request', later)
      assert.notDeepEqual(app.server.rawListeners('request'), [...before, later])
      await gc.close()
      assert.deepEqual(app.server.rawListeners('request'), [...before, later])
      app.server.off('request', later)
      const res = await rawRequest(app.port, '/_groupcache/g/k', { headers: AUTH })
      assert.equal(res.status, 503)
      assert.deepEqual(app.seen, ['/_groupcache/g/k'], 'the app answered it, as without the front')
      assert.equal(gc.servePeersFirst(app.server), false, 'a closed node stands in front of nothing')
      assert.deepEqual(app.server.rawListeners('request'), before)
    } finally {
      await app.close()
    }
  })

  test('a server that closes gets its own listeners back', async () => {
    const gc = node()
    const app = await startApp(gc)
    try {
      gc.servePeersFirst(app.server)
      assert.notDeepEqual(app.server.rawListeners('request'), [app.listener])
      await app.close()
      await waitFor('the listeners to be restored', () => app.server.rawListeners('request')[0] === app.listener)
      assert.deepEqual(app.server.rawListeners('request'), [app.listener])
      assert.deepEqual(app.server.rawListeners('close'), [])
    } finally {
      await gc.close()
    }
  })

  test('steps aside while the server is not listening: the app answers what still arrives', async () => {
    const gc = node()
    const seen: string[] = []
    const server = createServer((req) => void seen.push(req.url ?? ''))
    try {
      assert.equal(gc.servePeersFirst(server), true)
      server.emit('request', { url: '/_groupcache/g/k', headers: AUTH }, {})
      assert.deepEqual(seen, ['/_groupcache/g/k'])
    } finally {
      await gc.close()
    }
  })

  test('leaves an HTTP/2 server, and anything not a node:http or node:https server, alone', async () => {
    const gc = node()
    try {
      const h2 = createHttp2Server(() => {})
      const listeners = h2.rawListeners('request')
      assert.equal(gc.servePeersFirst(h2 as unknown as Server), false)
      assert.deepEqual(h2.rawListeners('request'), listeners)
      assert.equal(gc.servePeersFirst({} as Server), false)
    } finally {
      await gc.close()
    }
  })

  test('if something else took the front off, close() leaves the listeners as they are', async () => {
    const gc = node()
    const app = await startApp(gc)
    try {
      gc.servePeersFirst(app.server)
      app.server.removeAllListeners('request')
      const own = (_req: IncomingMessage, res: ServerResponse): void => void res.end('own')
      app.server.on('request', own)
      await gc.close()
      assert.deepEqual(app.server.rawListeners('request'), [own])
    } finally {
      await app.close()
    }
  })
})

// Errors a framework can map: a route handler that lets group.get's error
// reach the framework's own error handler must answer with the error's
// status (404 for not found, 400 for a bad key), not a blanket 500, and
// show the message only when it is safe to (`expose`).
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  AbortedError,
  ClosedError,
  CodecError,
  type Groupcache,
  type GroupcacheError,
  InvalidKeyError,
  InvalidOptionError,
  LoadError,
  NotFoundError,
  OverloadedError,
  PeerError,
  TooLargeError,
  UnreachablePeersError,
} from '../../src/index.js'
import { type RunningApp, startApp } from '../helpers/apps.js'
import { rawRequest } from '../helpers/raw.js'

const SELF = 'http://127.0.0.1:1'

function setup(gc: Groupcache): void {
  gc.newGroup<string>({
    name: 'items',
    maxBytes: 1 << 20,
    codec: 'string',
    load: (key) => {
      if (key.startsWith('missing')) throw new NotFoundError(`no row for ${key}`)
      if (key.startsWith('fail')) throw new Error('password=hunter2 at db-7')
      return `v:${key}`
    },
  })
}

test('every error class carries the status and expose flag a framework reads', () => {
  const cases: Array<[GroupcacheError, number, boolean]> = [
    [new NotFoundError(), 404, true],
    [new InvalidKeyError('too long'), 400, true],
    [new TooLargeError('too large'), 413, true],
    [new LoadError('failed'), 500, false],
    [new CodecError('bad bytes'), 500, false],
    [new InvalidOptionError('bad option'), 500, false],
    [new OverloadedError('busy'), 503, false],
    [new ClosedError(), 503, false],
    [new AbortedError('gone'), 503, false],
    [new PeerError('http://p', 'down', { status: 404 }), 502, false],
    [new UnreachablePeersError('clearing', [{ peer: 'http://p', error: new Error('down') }]), 502, false],
  ]
  for (const [err, status, expose] of cases) {
    assert.equal(err.status, status, err.name)
    assert.equal(err.statusCode, status, err.name)
    assert.equal(err.expose, expose, err.name)
  }
  assert.equal(new PeerError('http://p', 'down', { status: 404 }).peerStatus, 404, "the peer's own answer is kept apart")
})

for (const framework of ['express', 'fastify', 'koa'] as const) {
  describe(`${framework}'s own error handler`, () => {
    let app: RunningApp
    before(async () => {
      // Fastify's router refuses parameters over 100 characters itself (414).
      app = await startApp(framework, { self: SELF, peers: [SELF], maxKeyBytes: 64 }, setup)
    })
    after(async () => {
      await app.close()
    })

    test('answers a NotFoundError from group.get with 404, and shows its message', async () => {
      const res = await rawRequest(app.port, '/item/missing-1')
      assert.equal(res.status, 404)
      if (framework !== 'express') assert.match(res.body.toString(), /no row for missing-1/)
    })

    test('answers a key over maxKeyBytes with 400', async () => {
      const res = await rawRequest(app.port, `/item/${'k'.repeat(80)}`)
      assert.equal(res.status, 400)
    })

    test("answers a failed load with 500, and Koa keeps the loader's message to itself", async () => {
      const res = await rawRequest(app.port, '/item/fail-1')
      assert.equal(res.status, 500)
      if (framework === 'koa') assert.doesNotMatch(res.body.toString(), /hunter2/)
    })
  })
}

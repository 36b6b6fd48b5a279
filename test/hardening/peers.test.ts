// Slow and dead peers: a caller gets its value (by loading it locally)
// once peerTimeoutMs runs out, or at once from a peer whose answer is bad,
// and a peer that keeps failing is skipped by a circuit breaker until a
// probe finds it working again. What ended each peer request is read from
// the peer's health (its last error), never from a stopwatch.
import assert from 'node:assert/strict'
import { createServer as createHttpServer, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { type Group, Groupcache, type PeerHealth } from '../../src/index.js'
import { encodeGetResponse } from '../../src/wire.js'
import { keyOwnedBy } from '../helpers/local.js'

const SELF = 'http://127.0.0.1:1'
/**
 * TIMEOUT_MS is the peer timeout: the silent and slow peers cost this much
 * per request, and the working peer must always answer within it, so it is
 * far longer than a loopback request takes even on a busy machine.
 */
const TIMEOUT_MS = 2_000
const TIMED_OUT = new RegExp(`timed out after ${TIMEOUT_MS} ms`)

type Mode = 'silent' | 'slow' | 'garbage' | 'cut' | 'good'

/** FakePeer is one HTTP port whose behaviour the test switches. */
class FakePeer {
  mode: Mode = 'good'
  requests = 0
  readonly server: Server
  readonly #sockets = new Set<Socket>()

  constructor() {
    this.server = createHttpServer((req, res) => {
      this.requests++
      switch (this.mode) {
        case 'silent':
          return // accept, read, never answer
        case 'slow':
          setTimeout(() => res.end(encodeGetResponse({ value: Buffer.from('slow') })), TIMEOUT_MS * 4).unref()
          return
        case 'garbage':
          res.writeHead(200, { 'content-type': 'application/x-protobuf' })
          res.end(Buffer.from([0xff, 0xff, 0xff, 0x07]))
          return
        case 'cut':
          res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': '100' })
          res.write(Buffer.alloc(10))
          setImmediate(() => req.socket.destroy())
          return
        case 'good':
          res.writeHead(200, { 'content-type': 'application/x-protobuf', 'x-groupcache-protocol': '1' })
          res.end(encodeGetResponse({ value: Buffer.from(`remote:${decodeURIComponent(req.url!.split('/').pop()!)}`) }))
      }
    })
    this.server.on('connection', (socket) => {
      this.#sockets.add(socket)
      socket.on('close', () => this.#sockets.delete(socket))
    })
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy()
    await new Promise((resolve) => this.server.close(resolve))
  }
}

describe('a caller whose key is owned by a failing peer', () => {
  const peer = new FakePeer()
  let url: string
  let now = 1_000_000
  let gc: Groupcache
  let group: Group<string>
  let n = 0
  const key = (): string => keyOwnedBy(gc, url, `k${n++}-`)
  const health = (): PeerHealth | undefined => gc.peerHealth().find((h) => h.peer === url)

  before(async () => {
    url = await peer.listen()
    gc = new Groupcache({
      self: SELF,
      peers: [SELF, url],
      peerTimeoutMs: TIMEOUT_MS,
      now: () => now,
      breaker: { failures: 3, backoffMs: 10_000 },
    })
    group = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', promote: false, load: (k) => `local:${k}` })
  })
  after(async () => {
    await gc.close({ graceMs: 100 })
    await peer.close()
  })

  for (const mode of ['silent', 'slow', 'garbage', 'cut'] as const) {
    test(`gets its value by loading locally, within peerTimeoutMs, from a peer that is ${mode}`, async () => {
      peer.mode = mode
      const errors = group.stats.peerErrors
      const k = key()
      assert.equal(await group.get(k), `local:${k}`)
      assert.equal(group.stats.peerErrors, errors + 1)
      // A peer that never answers in time is cut off by the timeout; a bad
      // answer is refused as soon as it is read, without waiting for it.
      if (mode === 'silent' || mode === 'slow') assert.match(health()?.lastError ?? '', TIMED_OUT)
      else assert.doesNotMatch(health()?.lastError ?? '', TIMED_OUT)
      // One failure does not open the circuit: the peer, working again, is used.
      peer.mode = 'good'
      const next = key()
      assert.equal(await group.get(next), `remote:${next}`)
    })
  }

  test('after repeated failures the peer is skipped at once, then used again once a probe finds it working', async () => {
    peer.mode = 'silent'
    for (let i = 0; i < 3; i++) await group.get(key())
    assert.equal(health()?.state, 'open')
    assert.match(health()?.lastError ?? '', TIMED_OUT)
    const before = peer.requests
    // Skipped at once: no request goes out, so none can wait for the timeout.
    assert.match(await group.get(key()), /^local:/)
    assert.equal(peer.requests, before, 'no request reached the skipped peer')
    peer.mode = 'good'
    assert.match(await group.get(key()), /^local:/, 'still skipped before the back-off ends')
    now += 10_000
    const probe = key()
    assert.equal(await group.get(probe), `remote:${probe}`)
    assert.equal(gc.peerHealth().find((h) => h.peer === url)?.state, 'closed')
    assert.equal(peer.requests, before + 1)
  })
})

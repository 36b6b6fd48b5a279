// One bad peer must not make callers fail. An answer counts as a success
// only once it was fully read and decoded, value included: a peer that sends
// garbage, or a well-framed answer whose value this node's codec cannot
// read, is a failing peer (peerErrors, a local load, the breaker counts it).
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { type Group, Groupcache } from '../../src/index.js'
import { encodeGetResponse } from '../../src/wire.js'
import { keyOwnedBy } from '../helpers/local.js'

const SELF = 'http://127.0.0.1:1'

type Answer = 'truncated-msgpack' | 'garbage-protobuf'

/** BadPeer answers every GET with a 200 this node cannot use. */
class BadPeer {
  answer: Answer = 'truncated-msgpack'
  requests = 0
  readonly #server: Server
  readonly #sockets = new Set<Socket>()

  constructor() {
    this.#server = createServer((_req, res) => {
      this.requests++
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'x-groupcache-protocol': '1' })
      // A msgpack array header promising two items, then one: well-framed
      // protobuf, a value no msgpack decoder can finish.
      if (this.answer === 'truncated-msgpack') res.end(encodeGetResponse({ value: Buffer.from([0x92, 0x01]) }))
      else res.end(Buffer.from([0xff, 0xff, 0xff, 0x07]))
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

for (const answer of ['truncated-msgpack', 'garbage-protobuf'] as const) {
  describe(`a peer that answers 200 with ${answer === 'truncated-msgpack' ? 'a value the codec cannot decode' : 'bytes that are no GetResponse'}`, () => {
    const peer = new BadPeer()
    let url: string
    let gc: Groupcache
    let group: Group<{ key: string }>
    let loads = 0

    before(async () => {
      peer.answer = answer
      url = await peer.listen()
      gc = new Groupcache({ self: SELF, peers: [SELF, url], breaker: { failures: 3, backoffMs: 60_000 } })
      group = gc.newGroup<{ key: string }>({ name: 'g', maxBytes: 1 << 20, promote: true, load: (key) => (loads++, { key }) })
    })
    after(async () => {
      await gc.close({ graceMs: 100 })
      await peer.close()
    })

    test('costs no caller its value: each is loaded locally and counted as a peer error', async () => {
      for (let i = 0; i < 3; i++) {
        const key = keyOwnedBy(gc, url, `k${i}-`)
        assert.deepEqual(await group.get(key), { key })
      }
      assert.equal(group.stats.peerErrors, 3)
      assert.equal(loads, 3)
      assert.equal(group.cacheStats('hot').items, 0, 'nothing it sent was kept')
    })

    test('opens the breaker after repeated answers, so the peer is skipped', async () => {
      const health = gc.peerHealth().find((h) => h.peer === url)
      assert.equal(health?.state, 'open')
      assert.match(health?.lastError ?? '', answer === 'truncated-msgpack' ? /cannot decode/ : /malformed/)
      const before = peer.requests
      const key = keyOwnedBy(gc, url, 'later-')
      assert.deepEqual(await group.get(key), { key })
      assert.equal(peer.requests, before, 'no request reached the skipped peer')
    })
  })
}

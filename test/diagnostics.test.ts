import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createServer } from 'node:net'
import { describe, test } from 'node:test'
import { Groupcache, NotFoundError, type LoadEvent, type PeerEvent } from '../src/index.js'
import { keyOwnedBy, startLocalNodes } from './helpers/local.js'
import { rawRequest } from './helpers/raw.js'

/** listenOn collects what a diagnostics channel publishes while `fn` runs. */
async function listenOn<T>(name: string, fn: () => Promise<unknown>): Promise<T[]> {
  const seen: T[] = []
  const onMessage = (message: unknown): void => {
    seen.push(message as T)
  }
  subscribe(name, onMessage)
  try {
    await fn()
  } finally {
    unsubscribe(name, onMessage)
  }
  return seen
}

describe('diagnostics channels', () => {
  test('groupcache:load reports each load run here, with its duration and any error', async () => {
    const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => { if (k === 'bad') throw new Error('no'); return k } })
    const events = await listenOn<LoadEvent>('groupcache:load', async () => {
      await g.get('a')
      await g.get('a')
      await assert.rejects(g.get('bad'))
    })
    assert.deepEqual(events.map((e) => [e.group, e.key, e.error === undefined]), [['g', 'a', true], ['g', 'bad', false]])
    assert.ok(events.every((e) => e.durationMs >= 0))
    await gc.close()
  })

  test('groupcache:peer reports each fetch from an owner: ok, verdict or error', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2)
    try {
      const groups = nodes.map((gc) => gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', promote: false, load: (k) => { if (k.startsWith('nf')) throw new NotFoundError('nope'); return k } }))
      const ok = keyOwnedBy(nodes[0]!, urls[1]!, 'ok')
      const nf = keyOwnedBy(nodes[0]!, urls[1]!, 'nf')
      const events = await listenOn<PeerEvent>('groupcache:peer', async () => {
        await groups[0]!.get(ok)
        await assert.rejects(groups[0]!.get(nf))
        await nodes[1]!.close()
        await groups[0]!.get(keyOwnedBy(nodes[0]!, urls[1]!, 'down'))
      })
      assert.deepEqual(events.map((e) => [e.peer, e.outcome]), [[urls[1], 'ok'], [urls[1], 'verdict'], [urls[1], 'error']])
    } finally {
      await closeAll()
    }
  })
})

describe('GET {basePath}_stats', () => {
  test("answers this node's view as JSON, behind the same secret", async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ secret: 's' }))
    try {
      const g = nodes[0]!.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => k })
      nodes[1]!.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => k })
      await g.get(keyOwnedBy(nodes[0]!, urls[0]!))
      const port = Number(new URL(urls[0]!).port)
      assert.equal((await rawRequest(port, '/_groupcache/_stats')).status, 401)
      const res = await rawRequest(port, '/_groupcache/_stats', { headers: { authorization: 'Bearer s' } })
      assert.equal(res.status, 200)
      assert.match(String(res.headers['content-type']), /^application\/json/)
      const body = JSON.parse(res.body.toString()) as ReturnType<Groupcache['stats']>
      assert.equal(body.self, urls[0])
      assert.deepEqual(body.peers.map((p) => [p.peer, p.self, p.state]), [[urls[0], true, 'closed'], [urls[1], false, 'closed']])
      assert.equal(body.groups.g?.stats.localLoads, 1)
      assert.equal(body.groups.g?.main.items, 1)
      assert.deepEqual(body, nodes[0]!.stats())
    } finally {
      await closeAll()
    }
  })
})

describe('the logger', () => {
  test('hears a failing peer once when it is skipped and once when it answers again', async () => {
    const lines: Array<[string, object, string | undefined]> = []
    const logger = {
      warn: (obj: object, msg?: string) => void lines.push(['warn', obj, msg]),
      info: (obj: object, msg?: string) => void lines.push(['info', obj, msg]),
    }
    // A port that refuses connections until the test starts a server there.
    const probe = createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const port = (probe.address() as { port: number }).port
    await new Promise((resolve) => probe.close(resolve))
    const peer = `http://127.0.0.1:${port}`
    let now = 1_000
    const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1', peer], logger, now: () => now, breaker: { failures: 2, backoffMs: 100 } })
    const g = gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', promote: false, load: (k) => k })
    for (let i = 0; i < 6; i++) await g.get(keyOwnedBy(gc, peer, `k${i}-`))
    assert.deepEqual(lines.map(([level, , msg]) => [level, msg]), [['warn', 'groupcache: peer skipped after repeated failures']])
    assert.equal((lines[0]![1] as { peer: string }).peer, peer)
    const { Groupcache: Owner } = await import('../src/index.js')
    const owner = new Owner({ self: peer, peers: ['http://127.0.0.1:1', peer] })
    owner.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => `owner:${k}` })
    await owner.listen({ host: '127.0.0.1', port })
    try {
      now += 100
      const key = keyOwnedBy(gc, peer, 'back-')
      assert.equal(await g.get(key), `owner:${key}`)
      assert.deepEqual(lines.map(([level]) => level), ['warn', 'info'])
    } finally {
      await owner.close()
      await gc.close()
    }
  })
})

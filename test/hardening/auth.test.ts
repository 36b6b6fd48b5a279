// With a secret, nothing reaches a group without the right token, and the
// token never shows up in logs or error messages. Secrets rotate through a
// list: every listed secret is accepted, the first is sent.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Fastify from 'fastify'
import fastifyGroupcache from '../../adapters/fastify.js'
import { Groupcache, InvalidOptionError } from '../../src/index.js'
import { keyOwnedBy, startLocalNodes } from '../helpers/local.js'
import { rawRequest } from '../helpers/raw.js'

const SECRET = 'a-very-secret-token-4711'

describe('the secret', () => {
  test('no GET, PUT or DELETE without the right token reaches a group', async () => {
    const { nodes, urls, closeAll } = await startLocalNodes(1, () => ({ secret: SECRET }))
    try {
      let loads = 0
      const group = nodes[0]!.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => (loads++, k) })
      await group.get('kept')
      const port = Number(new URL(urls[0]!).port)
      const tokens = [
        undefined,
        '',
        'Bearer',
        `Bearer ${SECRET}x`,
        `Bearer ${SECRET}${SECRET}`, // starts with the right token
        `Bearer ${SECRET.slice(0, -1)}`,
        `Bearer ${SECRET.slice(0, -1)}2`, // the right length, the last character wrong
        `Bearer ${SECRET.slice(1)}x`, // the right length, the first character of the secret wrong
        SECRET,
        `bearer ${SECRET}`,
        `Basic ${SECRET}`,
      ]
      for (const token of tokens) {
        const headers: Record<string, string> = token === undefined ? {} : { authorization: token }
        for (const [method, path] of [
          ['GET', '/_groupcache/g/new'],
          ['DELETE', '/_groupcache/g/kept'],
          ['PUT', '/_groupcache/g/kept'],
          ['DELETE', '/_groupcache/g'],
        ]) {
          const res = await rawRequest(port, path!, { method, headers: { ...headers, 'x-groupcache-generation': '5' } })
          assert.equal(res.status, 401, `${method} ${path} with ${JSON.stringify(token)}`)
          assert.doesNotMatch(res.body.toString(), new RegExp(SECRET))
        }
      }
      assert.equal(loads, 1)
      assert.equal(group.cacheStats('main').items, 1, 'nothing was removed')
      assert.equal(group.generation, 0, 'nothing was cleared')
    } finally {
      await closeAll()
    }
  })

  test('rotates without a failed request: add the new secret second, then first, then drop the old one', async () => {
    const phases: Array<string | string[]> = ['old', ['old', 'new'], ['new', 'old'], 'new']
    for (const secret of phases) {
      const { nodes, urls, closeAll } = await startLocalNodes(2, () => ({ secret }))
      try {
        const groups = nodes.map((gc, i) =>
          gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => `${i}:${k}` }),
        )
        const k0 = keyOwnedBy(nodes[0]!, urls[1]!)
        const k1 = keyOwnedBy(nodes[1]!, urls[0]!)
        assert.equal(await groups[0]!.get(k0), `1:${k0}`, JSON.stringify(secret))
        assert.equal(await groups[1]!.get(k1), `0:${k1}`, JSON.stringify(secret))
        assert.equal(groups[0]!.stats.peerErrors + groups[1]!.stats.peerErrors, 0)
      } finally {
        await closeAll()
      }
    }
    // Mid-rotation, a node that already sends the new secret reaches one that accepts both.
    const { nodes, urls, closeAll } = await startLocalNodes(2, (i) => ({ secret: i === 0 ? ['new', 'old'] : ['old', 'new'] }))
    try {
      const groups = nodes.map((gc, i) => gc.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => `${i}:${k}` }))
      const k0 = keyOwnedBy(nodes[0]!, urls[1]!)
      assert.equal(await groups[0]!.get(k0), `1:${k0}`)
      assert.equal(groups[0]!.stats.peerErrors, 0)
    } finally {
      await closeAll()
    }
  })

  test('never appears in error messages or in the logs', async () => {
    assert.throws(
      () => new Groupcache({ self: 'http://a:1', peers: ['http://a:1'], secret: [SECRET, ''] }),
      (err: unknown) => {
        assert.ok(err instanceof InvalidOptionError)
        assert.doesNotMatch(err.message, new RegExp(SECRET))
        return true
      },
    )
    const lines: string[] = []
    const app = Fastify({ logger: { level: 'trace', stream: { write: (line: string) => void lines.push(line) } } })
    await app.register(fastifyGroupcache, {
      self: 'http://127.0.0.1:1',
      peers: ['http://127.0.0.1:1', 'http://127.0.0.1:2'],
      secret: SECRET,
      peerTimeoutMs: 200,
    })
    const group = app.groupcache.newGroup<string>({ name: 'g', maxBytes: 1 << 20, codec: 'string', load: (k) => k })
    app.get('/x', async () => group.get(keyOwnedBy(app.groupcache, 'http://127.0.0.1:2')))
    await app.ready()
    const messages: string[] = []
    for (const auth of [`Bearer ${SECRET}`, 'Bearer wrong', undefined]) {
      const res = await app.inject({ method: 'GET', url: '/_groupcache/g/k', headers: auth === undefined ? {} : { authorization: auth } })
      messages.push(res.body)
    }
    messages.push((await app.inject({ method: 'GET', url: '/x' })).body)
    await app.close()
    for (const text of [...lines, ...messages]) assert.doesNotMatch(text, new RegExp(SECRET), text)
    assert.ok(lines.length > 3, 'the logger did log requests')
  })
})

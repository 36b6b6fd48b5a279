import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { ClosedError, Groupcache, type GroupcacheOptions, InvalidOptionError } from '../src/index.js'
import { Ring } from '../src/ring.js'
import { rawRequest } from './helpers/raw.js'

const A = 'http://10.0.0.1:3000'
const B = 'http://10.0.0.2:3000'
const C = 'http://10.0.0.3:3000'

describe('new Groupcache(options)', () => {
  const bad: Array<[string, Partial<GroupcacheOptions> | unknown, RegExp]> = [
    ['options missing', undefined, /expected options to be an object/],
    ['self not a URL', { self: 'nope', peers: ['nope'] }, /expected options\.self to be an http\(s\) base URL.*got "nope"/],
    ['self with a trailing slash', { self: `${A}/`, peers: [`${A}/`] }, /expected options\.self .*without a trailing/],
    ['self with another scheme', { self: 'ftp://a:1', peers: ['ftp://a:1'] }, /options\.self/],
    ['self with a query', { self: `${A}?x=1`, peers: [`${A}?x=1`] }, /options\.self/],
    ['peers empty', { self: A, peers: [] }, /expected options\.peers to be a non-empty array of peer URLs, got an array/],
    ['peers not an array', { self: A, peers: A }, /expected options\.peers to be a non-empty array/],
    ['a peer not a URL', { self: A, peers: [A, 'b:3000/x y'] }, /expected options\.peers\[1\] to be an http\(s\) base URL/],
    [
      'a peer listed twice',
      { self: A, peers: [A, B, B] },
      /expected options\.peers to list each peer once, got http:\/\/10\.0\.0\.2:3000 twice/,
    ],
    [
      'self missing from peers',
      { self: A, peers: [B, C] },
      /expected options\.peers to include options\.self \(http:\/\/10\.0\.0\.1:3000\)/,
    ],
    ['replicas negative', { self: A, peers: [A], replicas: -1 }, /expected options\.replicas to be a positive integer, got -1/],
    ['replicas fractional', { self: A, peers: [A], replicas: 1.5 }, /options\.replicas/],
    [
      'basePath without slashes',
      { self: A, peers: [A], basePath: 'cache' },
      /expected options\.basePath to be a path that starts and ends with '\/'/,
    ],
    ['secret empty', { self: A, peers: [A], secret: '' }, /expected options\.secret to be a non-empty string/],
    ['secret with a newline', { self: A, peers: [A], secret: 'a\nb' }, /options\.secret/],
    ['peerTimeoutMs zero', { self: A, peers: [A], peerTimeoutMs: 0 }, /expected options\.peerTimeoutMs to be a positive integer, got 0/],
    [
      'maxKeyBytes a string',
      { self: A, peers: [A], maxKeyBytes: '10' },
      /expected options\.maxKeyBytes to be a positive integer, got "10"/,
    ],
    ['now not a function', { self: A, peers: [A], now: 5 }, /expected options\.now to be a function, got 5/],
    ['transport without fetch', { self: A, peers: [A], transport: {} }, /expected options\.transport to be an object with a fetch method/],
  ]
  for (const [what, options, message] of bad) {
    test(`throws InvalidOptionError naming the option for ${what}`, () => {
      assert.throws(
        () => new Groupcache(options as GroupcacheOptions),
        (err: unknown) => {
          assert.ok(err instanceof InvalidOptionError)
          assert.equal(err.code, 'ERR_GROUPCACHE_INVALID_OPTION')
          assert.match(err.message, message)
          return true
        },
      )
    })
  }

  test('applies the documented defaults', async () => {
    const gc = new Groupcache({ self: A, peers: [A, B] })
    assert.equal(gc.basePath, '/_groupcache/')
    assert.equal(gc.replicas, 50)
    assert.equal(gc.maxKeyBytes, 4096)
    assert.equal(gc.peerTimeoutMs, 10_000)
    assert.deepEqual(gc.peers, [A, B])
    await gc.close()
  })
})

describe('gc.newGroup(options)', () => {
  const gc = new Groupcache({ self: A, peers: [A] })
  after(() => gc.close())
  const load = (): number => 1
  const bad: Array<[string, unknown, RegExp]> = [
    ['a missing name', { maxBytes: 1, load }, /expected options\.name to be a non-empty string, got undefined/],
    ['a negative maxBytes', { name: 'n1', maxBytes: -1, load }, /expected options\.maxBytes to be a non-negative integer, got -1/],
    ['a missing loader', { name: 'n2', maxBytes: 1 }, /expected options\.load to be a function \(or options\.loadMany\), got undefined/],
    [
      'an unknown codec',
      { name: 'n3', maxBytes: 1, load, codec: 'xml' },
      /expected options\.codec to be 'msgpack', 'json', 'string', 'bytes' or \{ encode, decode \}, got "xml"/,
    ],
    ['a bad promote', { name: 'n4', maxBytes: 1, load, promote: 0.5 }, /expected options\.promote to be a boolean or a function, got 0\.5/],
    [
      'a bad maxEntryBytes',
      { name: 'n5', maxBytes: 1, load, maxEntryBytes: 0 },
      /expected options\.maxEntryBytes to be a positive integer, got 0/,
    ],
    [
      'a zero ttlMs',
      { name: 'n6', maxBytes: 1, load, ttlMs: 0 },
      /expected options\.ttlMs to be a positive number of milliseconds \(Infinity for no expiry\), got 0/,
    ],
    [
      'a zero loadTimeoutMs',
      { name: 'lt0', maxBytes: 1, load, loadTimeoutMs: 0 },
      /expected options\.loadTimeoutMs to be a positive finite number of milliseconds, got 0$/,
    ],
    [
      'a negative loadTimeoutMs',
      { name: 'lt1', maxBytes: 1, load, loadTimeoutMs: -5 },
      /expected options\.loadTimeoutMs to be a positive finite number of milliseconds, got -5$/,
    ],
    [
      'a NaN loadTimeoutMs',
      { name: 'lt2', maxBytes: 1, load, loadTimeoutMs: Number.NaN },
      /expected options\.loadTimeoutMs to be a positive finite number of milliseconds, got NaN$/,
    ],
    [
      'an infinite loadTimeoutMs',
      { name: 'lt3', maxBytes: 1, load, loadTimeoutMs: Infinity },
      /expected options\.loadTimeoutMs to be a positive finite number of milliseconds, got Infinity$/,
    ],
    [
      'a loadTimeoutMs given as text',
      { name: 'lt4', maxBytes: 1, load, loadTimeoutMs: '50' },
      /expected options\.loadTimeoutMs to be a positive finite number of milliseconds, got "50"$/,
    ],
  ]
  for (const [what, options, message] of bad) {
    test(`throws InvalidOptionError for ${what}`, () => {
      assert.throws(
        () => gc.newGroup(options as never),
        (err: unknown) => err instanceof InvalidOptionError && message.test(err.message),
      )
    })
  }

  test('throws for a duplicate group name and keeps the first group', () => {
    const first = gc.newGroup({ name: 'dup', maxBytes: 1, load })
    assert.throws(
      () => gc.newGroup({ name: 'dup', maxBytes: 1, load }),
      /expected options\.name to be unique, but a group named "dup" exists/,
    )
    assert.equal(gc.getGroup('dup'), first)
    assert.equal(first.name, 'dup')
  })

  test('getGroup returns undefined for an unknown name', () => {
    assert.equal(gc.getGroup('nope'), undefined)
  })
})

describe('gc.ownerOf and gc.setPeers', () => {
  test("ownerOf agrees with the ring over the peer list, with this node's replicas", async () => {
    const gc = new Groupcache({ self: A, peers: [A, B, C], replicas: 7 })
    const ring = new Ring([A, B, C], 7)
    for (let i = 0; i < 500; i++) assert.equal(gc.ownerOf(`k${i}`), ring.owner(`k${i}`))
    await gc.close()
  })

  test('setPeers moves keys to their new owners and requires self', async () => {
    const gc = new Groupcache({ self: A, peers: [A] })
    assert.equal(gc.ownerOf('anything'), A)
    gc.setPeers([A, B, C])
    const ring = new Ring([A, B, C])
    const owners = new Set<string>()
    for (let i = 0; i < 300; i++) {
      owners.add(gc.ownerOf(`k${i}`))
      assert.equal(gc.ownerOf(`k${i}`), ring.owner(`k${i}`))
    }
    assert.deepEqual([...owners].sort(), [A, B, C])
    assert.throws(() => gc.setPeers([B, C]), /expected peers to include options\.self/)
    assert.deepEqual(gc.peers, [A, B, C], 'a rejected list changes nothing')
    await gc.close()
  })
})

describe('gc.listen and gc.close', () => {
  test('listen resolves to the bound address; close stops serving and is idempotent', async () => {
    const gc = new Groupcache({ self: A, peers: [A] })
    gc.newGroup({ name: 'g', maxBytes: 1 << 10, load: (k) => k })
    const address = await gc.listen({ host: '127.0.0.1', port: 0 })
    assert.equal(address.address, '127.0.0.1')
    assert.ok(address.port > 0)
    assert.equal((await rawRequest(address.port, '/_groupcache/g/x')).status, 200)
    await assert.rejects(gc.listen({ port: 0 }), InvalidOptionError)
    await gc.close()
    await gc.close()
    assert.equal(gc.closed, true)
    await assert.rejects(rawRequest(address.port, '/_groupcache/g/x'), /ECONNREFUSED/)
    assert.throws(() => gc.newGroup({ name: 'late', maxBytes: 1, load: () => 1 }), ClosedError)
  })

  test('the handler answers 503 once the instance is closed', async () => {
    const gc = new Groupcache({ self: A, peers: [A] })
    gc.newGroup({ name: 'g', maxBytes: 1 << 10, load: (k) => k })
    await gc.close()
    const res = await gc.handler({ method: 'GET', url: '/_groupcache/g/x', headers: {} })
    assert.equal(res.status, 503)
  })
})

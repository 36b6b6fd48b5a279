import assert from 'node:assert/strict'
import { promises as dns } from 'node:dns'
import { after, afterEach, before, beforeEach, describe, test } from 'node:test'
import { DEFAULT_DNS_INTERVAL_MS, type DnsPeers, type DnsPeersOptions, dnsPeers } from '../src/discovery.js'
import { DiscoveryError, Groupcache, GroupcacheError, PeerError, type PeerTransport } from '../src/index.js'
import { type DnsServer, startDnsServer } from './helpers/dns-server.js'
import { waitFor } from './helpers/wait.js'

const HOST = 'peers.groupcache.test'
const SELF = 'http://10.0.0.1:3000'
/**
 * ANSWER_TIMEOUT_MS is the resolver's timeout for the test's own server,
 * which answers at once: only a lost answer could reach it, never a slow
 * machine. The one test of a timeout uses DROP_TIMEOUT_MS.
 */
const ANSWER_TIMEOUT_MS = 10_000
const DROP_TIMEOUT_MS = 200
/**
 * QUIET_INTERVAL_MS is the interval of the tests that refresh by hand: no
 * timer refresh may land in the middle of one and change what it counts.
 */
const QUIET_INTERVAL_MS = 3_600_000

/** Resolver is what dnsPeers asks, as a test builds it. */
type Resolver = { resolve4(hostname: string): Promise<string[]>; resolve6(hostname: string): Promise<string[]> }

// No peer is ever fetched from: these nodes only have their peer lists set.
const offline: PeerTransport = {
  fetch: async (peer) => {
    throw new PeerError(peer, 'this test has no network')
  },
}

/** node is a Groupcache whose setPeers calls are recorded. */
function node(self = SELF): { gc: Groupcache; calls: string[][] } {
  const gc = new Groupcache({ self, peers: [self], transport: offline })
  const calls: string[][] = []
  const setPeers = gc.setPeers.bind(gc)
  gc.setPeers = (peers) => {
    calls.push([...peers])
    setPeers(peers)
  }
  return { gc, calls }
}

/** resolverFor asks only the test's own server, on 127.0.0.1. */
function resolverFor(server: DnsServer, timeout = ANSWER_TIMEOUT_MS): dns.Resolver {
  const resolver = new dns.Resolver({ timeout, tries: 1 })
  resolver.setServers([`127.0.0.1:${server.port}`])
  return resolver
}

/** counting wraps a resolver to count lookups: a refresh starts with one resolve4 call (family 'both' or 4). */
function counting(resolver: Resolver): { resolver: Resolver; lookups: () => number } {
  let lookups = 0
  return {
    resolver: {
      resolve4: (hostname) => (lookups++, resolver.resolve4(hostname)),
      resolve6: (hostname) => resolver.resolve6(hostname),
    },
    lookups: () => lookups,
  }
}

describe('dnsPeers', () => {
  let server: DnsServer
  const handles: DnsPeers[] = []
  const nodes: Groupcache[] = []

  /** start runs dnsPeers against the test server and keeps what to shut down. */
  function start(gc: Groupcache, options: Partial<DnsPeersOptions> = {}): DnsPeers {
    const handle = dnsPeers(gc, {
      hostname: HOST,
      port: 3000,
      resolver: resolverFor(server),
      intervalMs: QUIET_INTERVAL_MS,
      onError: () => {},
      ...options,
    })
    handles.push(handle)
    nodes.push(gc)
    return handle
  }

  /**
   * intervalsPass resolves once a witness, a discovery with an interval of
   * `ms` started now, has refreshed `n` times by its timer. By then a timer
   * of the same interval set earlier would have fired too: a positive sign
   * that it did not, where a sleep would only guess.
   */
  async function intervalsPass(ms: number, n = 3): Promise<void> {
    const witness = counting(resolverFor(server))
    const handle = start(node().gc, { intervalMs: ms, resolver: witness.resolver })
    await waitFor(`${n} refreshes by a ${ms} ms interval`, () => witness.lookups() > n)
    handle.stop()
  }

  before(async () => {
    server = await startDnsServer()
  })
  beforeEach(() => {
    server.mode = 'answer'
    server.modeFor = 'all'
    server.records.clear()
    server.records.set(HOST, { a: ['10.0.0.3', '10.0.0.1', '10.0.0.2', '10.0.0.1'], aaaa: ['fd00::1'] })
  })
  afterEach(async () => {
    for (const handle of handles.splice(0)) handle.stop()
    await Promise.all(nodes.splice(0).map((gc) => gc.close()))
  })
  after(async () => {
    await server.close()
  })

  test('the first refresh sets the peers, sorted and deduplicated, IPv6 in brackets', async () => {
    const { gc, calls } = node()
    const discovery = start(gc)
    const expected = ['http://10.0.0.1:3000', 'http://10.0.0.2:3000', 'http://10.0.0.3:3000', 'http://[fd00::1]:3000']
    assert.deepEqual(await discovery.refresh(), expected)
    assert.deepEqual(gc.peers, expected)
    assert.deepEqual(discovery.peers, expected)
    assert.deepEqual(calls, [expected], 'setPeers was called once')
    assert.ok(Object.isFrozen(discovery.peers))
  })

  test('setPeers is called when the record set changes, and only then', async () => {
    const { gc, calls } = node()
    const discovery = start(gc)
    await discovery.refresh()
    const first = gc.peers
    await discovery.refresh()
    server.records.set(HOST, { a: ['10.0.0.2', '10.0.0.1', '10.0.0.3'], aaaa: ['fd00::1'] }) // same set, new order
    await discovery.refresh()
    assert.equal(calls.length, 1, 'an unchanged set does not touch the ring')
    assert.equal(gc.peers, first)

    server.records.set(HOST, { a: ['10.0.0.1', '10.0.0.4'] })
    assert.deepEqual(await discovery.refresh(), ['http://10.0.0.1:3000', 'http://10.0.0.4:3000'])
    assert.equal(calls.length, 2)
    assert.deepEqual(calls[1], ['http://10.0.0.1:3000', 'http://10.0.0.4:3000'])
  })

  test('a name with only A records is not an error when both families are asked for', async () => {
    server.records.set(HOST, { a: ['10.0.0.2', '10.0.0.1'] })
    const errors: unknown[] = []
    const { gc } = node()
    const discovery = start(gc, { onError: (err) => errors.push(err) })
    assert.deepEqual(await discovery.refresh(), ['http://10.0.0.1:3000', 'http://10.0.0.2:3000'])
    assert.deepEqual(errors, [])
  })

  test('family 4 asks only for A records, family 6 only for AAAA', async () => {
    const v4 = start(node().gc, { family: 4 })
    assert.deepEqual(await v4.refresh(), ['http://10.0.0.1:3000', 'http://10.0.0.2:3000', 'http://10.0.0.3:3000'])
    server.records.set(HOST, { a: ['10.0.0.1'], aaaa: ['fd00::2', 'fd00::1'] })
    const v6 = start(node('http://[fd00::1]:3000').gc, { family: 6 })
    assert.deepEqual(await v6.refresh(), ['http://[fd00::1]:3000', 'http://[fd00::2]:3000'])
  })

  test('protocol and port go into every peer URL', async () => {
    const { gc } = node('https://10.0.0.2:8443')
    const discovery = start(gc, { protocol: 'https', port: 8443, family: 4 })
    assert.deepEqual(await discovery.refresh(), ['https://10.0.0.1:8443', 'https://10.0.0.2:8443', 'https://10.0.0.3:8443'])
  })

  test('an answer without this node keeps the old peers and reports self-missing', async () => {
    const errors: DiscoveryError[] = []
    const { gc, calls } = node()
    const discovery = start(gc, { onError: (err) => errors.push(err) })
    await discovery.refresh()
    const before = gc.peers
    server.records.set(HOST, { a: ['10.0.0.2', '10.0.0.3'] })
    assert.equal(await discovery.refresh(), before)
    assert.equal(gc.peers, before)
    assert.equal(calls.length, 1)
    assert.equal(errors.length, 1)
    const err = errors[0]!
    assert.ok(err instanceof DiscoveryError && err instanceof GroupcacheError)
    assert.equal(err.code, 'ERR_GROUPCACHE_DISCOVERY')
    assert.equal(err.reason, 'self-missing')
    assert.equal(err.hostname, HOST)
    assert.deepEqual(err.peers, ['http://10.0.0.2:3000', 'http://10.0.0.3:3000'])
    assert.match(err.message, /does not include this node \(http:\/\/10\.0\.0\.1:3000\)/)
  })

  test('a node whose own record is not published yet starts on its own and joins once it is', async () => {
    server.records.set(HOST, { a: ['10.0.0.2'] })
    const errors: DiscoveryError[] = []
    const { gc } = node()
    const discovery = start(gc, { intervalMs: 20, onError: (err) => errors.push(err) })
    assert.deepEqual(await discovery.refresh(), [SELF], 'refresh resolves, it does not reject')
    assert.deepEqual(discovery.peers, [])
    assert.equal(errors[0]?.reason, 'self-missing')
    server.records.set(HOST, { a: ['10.0.0.2', '10.0.0.1'] })
    await waitFor('the node to join', () => gc.peers.length === 2)
    assert.deepEqual(gc.peers, ['http://10.0.0.1:3000', 'http://10.0.0.2:3000'])
  })

  test('NXDOMAIN keeps the old peers and reports the lookup failure', async () => {
    const errors: DiscoveryError[] = []
    const { gc, calls } = node()
    const discovery = start(gc, { onError: (err) => errors.push(err) })
    await discovery.refresh()
    const before = gc.peers
    server.records.delete(HOST)
    assert.equal(await discovery.refresh(), before)
    assert.equal(calls.length, 1)
    assert.equal(errors.length, 1)
    assert.equal(errors[0]?.code, 'ERR_GROUPCACHE_DISCOVERY')
    assert.equal(errors[0]?.reason, 'resolve')
    assert.equal((errors[0]?.cause as { code?: string }).code, 'ENOTFOUND')
    assert.match(errors[0]!.message, /could not resolve peers\.groupcache\.test/)
  })

  test('a failure of one family (SERVFAIL, timeout) keeps the old peers rather than apply half an answer', async () => {
    const errors: DiscoveryError[] = []
    const { gc, calls } = node()
    // A short timeout only while the server drops queries, when the timeout is the point.
    const answering = resolverFor(server)
    let current = answering
    const resolver: Resolver = { resolve4: (h) => current.resolve4(h), resolve6: (h) => current.resolve6(h) }
    const discovery = start(gc, { resolver, onError: (err) => errors.push(err) })
    await discovery.refresh()
    const before = gc.peers
    server.mode = 'servfail'
    assert.equal(await discovery.refresh(), before)
    assert.equal((errors[0]?.cause as { code?: string }).code, 'ESERVFAIL')
    server.mode = 'drop'
    current = resolverFor(server, DROP_TIMEOUT_MS)
    assert.equal(await discovery.refresh(), before)
    assert.equal((errors[1]?.cause as { code?: string }).code, 'ETIMEOUT')
    current = answering
    server.mode = 'servfail'
    server.modeFor = 'AAAA'
    server.records.set(HOST, { a: ['10.0.0.1'], aaaa: ['fd00::1'] })
    assert.equal(await discovery.refresh(), before, 'the A records alone are not applied')
    assert.equal((errors[2]?.cause as { code?: string }).code, 'ESERVFAIL')
    assert.equal(calls.length, 1)
    assert.equal(errors.length, 3)
  })

  test('a DNS server that is down keeps the old peers and reports it', async () => {
    const down = await startDnsServer({ [HOST]: { a: ['10.0.0.1', '10.0.0.2'] } })
    const errors: DiscoveryError[] = []
    const { gc } = node()
    const discovery = start(gc, { resolver: resolverFor(down), onError: (err) => errors.push(err) })
    const before = await discovery.refresh()
    assert.equal(before.length, 2)
    await down.close()
    assert.equal(await discovery.refresh(), before)
    assert.equal(gc.peers, before)
    assert.equal(errors.length, 1)
    assert.equal(errors[0]?.reason, 'resolve')
    assert.ok(errors[0]?.cause instanceof Error)
  })

  test('the interval refreshes by itself', async () => {
    const { gc } = node()
    const discovery = start(gc, { intervalMs: 50 })
    await discovery.refresh()
    server.records.set(HOST, { a: ['10.0.0.1', '10.0.0.9'] })
    await waitFor('the interval to find the new peer', () => gc.peers.includes('http://10.0.0.9:3000'))
    assert.deepEqual(discovery.peers, ['http://10.0.0.1:3000', 'http://10.0.0.9:3000'])
  })

  test('stop() stops the interval', async () => {
    const { gc, calls } = node()
    const counted = counting(resolverFor(server))
    const discovery = start(gc, { intervalMs: 20, resolver: counted.resolver })
    await discovery.refresh()
    discovery.stop()
    const lookups = counted.lookups()
    server.records.set(HOST, { a: ['10.0.0.1', '10.0.0.9'] })
    await intervalsPass(20)
    assert.deepEqual(await discovery.refresh(), discovery.peers, 'a refresh after stop() resolves to the peers in effect')
    assert.equal(counted.lookups(), lookups, 'nothing asked DNS after stop(), by the timer or by refresh()')
    assert.equal(calls.length, 1)
    assert.equal(gc.peers.includes('http://10.0.0.9:3000'), false)
  })

  test('closing the node stops its discovery', async () => {
    const { gc, calls } = node()
    const counted = counting(resolverFor(server))
    const discovery = start(gc, { intervalMs: 20, resolver: counted.resolver })
    await discovery.refresh()
    await gc.close()
    const lookups = counted.lookups()
    server.records.set(HOST, { a: ['10.0.0.1', '10.0.0.9'] })
    await intervalsPass(20)
    assert.equal(counted.lookups(), lookups)
    assert.equal(calls.length, 1)
  })

  test('a throwing onError does not escape the timer', async () => {
    server.records.delete(HOST)
    let reported = 0
    const discovery = start(node().gc, {
      intervalMs: 10,
      onError: () => {
        reported++
        throw new Error('a careless handler')
      },
    })
    await waitFor('three reports', () => reported >= 3)
    discovery.stop()
  })

  test('without onError, failures become a process warning, repeated only when the message changes', async () => {
    server.records.delete(HOST)
    const warnings: Error[] = []
    const listener = (w: Error): void => void warnings.push(w)
    process.on('warning', listener)
    try {
      const discovery = dnsPeers(node().gc, { hostname: HOST, port: 3000, resolver: resolverFor(server), intervalMs: QUIET_INTERVAL_MS })
      handles.push(discovery)
      await discovery.refresh()
      await discovery.refresh()
      await discovery.refresh()
      await new Promise((resolve) => setImmediate(resolve)) // warnings are emitted on a next tick, all run by now
      assert.equal(warnings.length, 1)
      assert.equal((warnings[0] as Error & { code?: string }).code, 'GROUPCACHE_DNS_DISCOVERY')
      assert.match(warnings[0]!.message, /could not resolve/)
    } finally {
      process.off('warning', listener)
    }
  })

  test('bad options throw at call time, naming the option', () => {
    const gc = new Groupcache({ self: SELF, peers: [SELF], transport: offline })
    nodes.push(gc)
    const resolver = resolverFor(server)
    const cases: Array<[string, unknown, unknown, RegExp]> = [
      ['no gc', undefined, { hostname: HOST, port: 3000 }, /expected gc to be a Groupcache instance, got undefined/],
      ['no options', gc, undefined, /expected options to be an object, got undefined/],
      ['port too large', gc, { hostname: HOST, port: 70000 }, /expected options\.port to be a port number, got 70000/],
      ['port missing', gc, { hostname: HOST }, /expected options\.port to be a port number, got undefined/],
      ['port as a string', gc, { hostname: HOST, port: '3000' }, /expected options\.port to be a port number, got "3000"/],
      ['empty hostname', gc, { hostname: '', port: 3000 }, /expected options\.hostname to be a DNS name/],
      ['a URL as hostname', gc, { hostname: 'http://svc:3000', port: 3000 }, /expected options\.hostname to be a DNS name/],
      ['an IP as hostname', gc, { hostname: '10.0.0.1', port: 3000 }, /expected options\.hostname to be a DNS name/],
      ['protocol', gc, { hostname: HOST, port: 3000, protocol: 'ftp' }, /expected options\.protocol to be 'http' or 'https', got "ftp"/],
      [
        'intervalMs zero',
        gc,
        { hostname: HOST, port: 3000, intervalMs: 0 },
        /expected options\.intervalMs to be a positive integer, got 0/,
      ],
      ['family', gc, { hostname: HOST, port: 3000, family: 5 }, /expected options\.family to be 4, 6 or 'both', got 5/],
      ['resolver', gc, { hostname: HOST, port: 3000, resolver: {} }, /expected options\.resolver to be an object with resolve4/],
      ['onError', gc, { hostname: HOST, port: 3000, resolver, onError: 'log' }, /expected options\.onError to be a function/],
      [
        'self on another port',
        gc,
        { hostname: HOST, port: 3001, resolver },
        /expected gc\.self to be http:\/\/<IP address>:3001.*got "http:\/\/10\.0\.0\.1:3000"/,
      ],
      ['self with another protocol', gc, { hostname: HOST, port: 3000, protocol: 'https', resolver }, /expected gc\.self to be https:/],
      ['IPv4 self, family 6', gc, { hostname: HOST, port: 3000, family: 6, resolver }, /expected gc\.self to be an IPv6 URL/],
    ]
    for (const [name, target, options, message] of cases) {
      assert.throws(
        () => dnsPeers(target as Groupcache, options as DnsPeersOptions),
        (err: unknown) => {
          assert.ok(err instanceof GroupcacheError, name)
          assert.equal(err.code, 'ERR_GROUPCACHE_INVALID_OPTION', name)
          assert.match(err.message, message, name)
          return true
        },
        name,
      )
    }
    const named = new Groupcache({ self: 'http://my-pod:3000', peers: ['http://my-pod:3000'], transport: offline })
    nodes.push(named)
    assert.throws(() => dnsPeers(named, { hostname: HOST, port: 3000, resolver }), /expected gc\.self to be http:\/\/<IP address>:3000/)
  })

  test('the default interval is 5 s', () => {
    assert.equal(DEFAULT_DNS_INTERVAL_MS, 5_000)
  })
})

// These tests run against the built package (dist/, built by `npm test`),
// through the package's own name, as an application would load it.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const EXPORTS = [
  'AbortedError', 'BATCH_CONTENT_TYPE', 'ClosedError', 'CodecError', 'DEFAULT_BASE_PATH', 'DEFAULT_BATCH_WINDOW_MS', 'DEFAULT_BREAKER_BACKOFF_MS',
  'DEFAULT_BREAKER_FAILURES', 'DEFAULT_BREAKER_MAX_BACKOFF_MS', 'DEFAULT_CLOSE_GRACE_MS', 'DEFAULT_CODEC',
  'DEFAULT_DNS_INTERVAL_MS', 'DEFAULT_HANDOFF_MS', 'DEFAULT_HOT_PROMOTION', 'DEFAULT_MAX_ENTRY_FRACTION', 'DEFAULT_MAX_KEY_BYTES',
  'DEFAULT_MAX_PEER_LOADS', 'DEFAULT_MAX_RESPONSE_BYTES', 'DEFAULT_PEEK_TIMEOUT_MS', 'DEFAULT_PEER_CONNECTIONS',
  'DEFAULT_PEER_TIMEOUT_MS', 'DEFAULT_REFRESH_RETRY_MS', 'DEFAULT_REPLICAS', 'DiscoveryError', 'ENTRY_OVERHEAD_BYTES', 'ERROR_HEADER', 'FETCH_CHANNEL', 'GENERATION_HEADER',
  'GET_CHANNEL', 'Group', 'Groupcache', 'GroupcacheError', 'InvalidKeyError', 'InvalidOptionError', 'LOAD_CHANNEL', 'LoadError',
  'MAX_BATCH_ANSWER_BYTES', 'MAX_BATCH_BODY_BYTES', 'MAX_BATCH_KEYS', 'MAX_REFRESH_RETRY_MS', 'NotFoundError', 'OverloadedError', 'PEER_CHANNEL', 'PeerError', 'REFRESH_HEADER', 'SERVE_CHANNEL', 'STATS_PATH', 'TooLargeError', 'UnreachablePeersError',
  'dnsPeers', 'fetchTracing', 'getTracing', 'loadChannel', 'loadTracing', 'peerChannel', 'serveTracing', 'toPeerRequest', 'writePeerResponse',
]

test('the ESM entry exports exactly the public API', async () => {
  const mod = (await import('groupcache')) as Record<string, unknown>
  assert.deepEqual(Object.keys(mod).sort(), EXPORTS)
})

test("each adapter subpath exports groupcache, also as its default export, and the route cache's constants", async () => {
  for (const subpath of ['groupcache/express', 'groupcache/fastify', 'groupcache/koa']) {
    const mod = (await import(subpath)) as Record<string, unknown>
    assert.deepEqual(
      Object.keys(mod).sort(),
      ['BYPASS_TTL_MS', 'DEFAULT_MAX_BODY_BYTES', 'DEFAULT_ROUTE_CACHE_BYTES', 'DEFAULT_ROUTE_GROUP', 'DEFAULT_ROUTE_TTL_MS', 'SOURCE_HEADER', 'default', 'groupcache'],
      subpath,
    )
    assert.equal(mod.DEFAULT_ROUTE_TTL_MS, 60_000, subpath)
    assert.equal(mod.default, mod.groupcache, subpath)
    assert.equal(typeof mod.groupcache, 'function', subpath)
  }
})

test('groupcache/prometheus exports registerMetrics, also as its default export', async () => {
  const mod = (await import('groupcache/prometheus')) as Record<string, unknown>
  assert.deepEqual(Object.keys(mod).sort(), ['default', 'registerMetrics'])
  assert.equal(mod.default, mod.registerMetrics)
})

test('groupcache/otel exports instrument, also as its default export, and DEFAULT_REQUIRE_PARENT_SPAN', async () => {
  const mod = (await import('groupcache/otel')) as Record<string, unknown>
  assert.deepEqual(Object.keys(mod).sort(), ['DEFAULT_REQUIRE_PARENT_SPAN', 'default', 'instrument'])
  assert.equal(mod.default, mod.instrument)
})

test("require('groupcache') works from CommonJS (require(esm), Node >= 20.19)", () => {
  const script = `
    const { Groupcache, GroupcacheError } = require('groupcache')
    const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
    const g = gc.newGroup({ name: 'g', maxBytes: 1024, codec: 'string', load: (k) => 'v:' + k })
    g.get('x').then((v) => { console.log(JSON.stringify([v, typeof GroupcacheError])); return gc.close() })
  `
  const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 })
  assert.deepEqual(JSON.parse(out.trim()), ['v:x', 'function'])
})

test('the package map lists types first and points at built files', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    type: string
    exports: Record<string, Record<string, string> | string>
    engines: { node: string }
  }
  assert.equal(pkg.type, 'module')
  assert.equal(pkg.engines.node, '>=20.19')
  const main = pkg.exports['.'] as Record<string, string>
  assert.deepEqual(Object.keys(main), ['types', 'default'])
  const require = createRequire(import.meta.url)
  assert.equal(require.resolve('groupcache'), `${root}dist/src/index.js`)
})

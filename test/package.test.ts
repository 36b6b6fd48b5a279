// These tests run against the built package (dist/, built by `npm test`),
// through the package's own name, as an application would load it; the last
// ones against the tarball that `npm pack` makes of it, as a project that
// installs it would get it.
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { startChild } from './helpers/child.js'
import { fetchFresh } from './helpers/fetch.js'
import { reservePorts } from './helpers/ports.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const run = promisify(execFile)

interface Manifest {
  type: string
  exports: Record<string, { require: { types: string; default: string }; types: string; default: string } | string>
  engines: { node: string }
  dependencies: Record<string, string>
  peerDependencies: Record<string, string>
  peerDependenciesMeta: Record<string, { optional?: boolean }>
}
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as Manifest
/** SUBPATHS are the package's entry points, as an application names them. */
const SUBPATHS = Object.keys(pkg.exports)
  .filter((subpath) => subpath !== './package.json')
  .map((subpath) => `groupcache${subpath.slice(1)}`)
const EXPORTS = [
  'AbortedError',
  'BATCH_CONTENT_TYPE',
  'ClosedError',
  'CodecError',
  'DEFAULT_BASE_PATH',
  'DEFAULT_BATCH_WINDOW_MS',
  'DEFAULT_BREAKER_BACKOFF_MS',
  'DEFAULT_BREAKER_FAILURES',
  'DEFAULT_BREAKER_MAX_BACKOFF_MS',
  'DEFAULT_CLOSE_GRACE_MS',
  'DEFAULT_CODEC',
  'DEFAULT_DNS_INTERVAL_MS',
  'DEFAULT_HANDOFF_MS',
  'DEFAULT_HOT_PROMOTION',
  'DEFAULT_MAX_ENTRY_FRACTION',
  'DEFAULT_MAX_KEY_BYTES',
  'DEFAULT_MAX_PEER_LOADS',
  'DEFAULT_MAX_RESPONSE_BYTES',
  'DEFAULT_PEEK_TIMEOUT_MS',
  'DEFAULT_PEER_CONNECTIONS',
  'DEFAULT_PEER_TIMEOUT_MS',
  'DEFAULT_REFRESH_RETRY_MS',
  'DEFAULT_REPLICAS',
  'DiscoveryError',
  'ENTRY_OVERHEAD_BYTES',
  'ERROR_HEADER',
  'FETCH_CHANNEL',
  'FETCH_MANY_CHANNEL',
  'GENERATION_HEADER',
  'GET_CHANNEL',
  'Group',
  'Groupcache',
  'GroupcacheError',
  'HOT_SHARE',
  'InvalidKeyError',
  'InvalidOptionError',
  'LOAD_CHANNEL',
  'LoadError',
  'LoadTimeoutError',
  'MAX_BATCH_ANSWER_BYTES',
  'MAX_BATCH_BODY_BYTES',
  'MAX_BATCH_KEYS',
  'MAX_GENERATION_LEAD_MS',
  'MAX_REFRESH_RETRY_MS',
  'MIN_HOT_COPIES',
  'NotFoundError',
  'OverloadedError',
  'PEER_CHANNEL',
  'PeerError',
  'REFRESH_HEADER',
  'SERVE_CHANNEL',
  'SERVE_MANY_CHANNEL',
  'STATS_PATH',
  'TooLargeError',
  'UnreachablePeersError',
  'dnsPeers',
  'fetchManyTracing',
  'fetchTracing',
  'getTracing',
  'loadChannel',
  'loadTracing',
  'peerChannel',
  'serveManyTracing',
  'servePeerRequest',
  'serveTracing',
  'toPeerRequest',
  'writePeerResponse',
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
      [
        'BYPASS_TTL_MS',
        'DEFAULT_MAX_BODY_BYTES',
        'DEFAULT_ROUTE_CACHE_BYTES',
        'DEFAULT_ROUTE_GROUP',
        'DEFAULT_ROUTE_TTL_MS',
        'SOURCE_HEADER',
        'default',
        'groupcache',
      ],
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

test('each subpath gives require() the very values that import gets: one module instance for both', () => {
  // In a plain Node child: tsx, which runs these tests, would compile the
  // required ESM files to CommonJS copies of their own.
  const script = `
    const failures = []
    Promise.all(${JSON.stringify(SUBPATHS)}.map(async (subpath) => {
      const esm = await import(subpath)
      const cjs = require(subpath)
      const names = Object.keys(esm)
      if (JSON.stringify(Object.keys(cjs).sort()) !== JSON.stringify(names.sort())) failures.push(subpath + ': names differ')
      for (const name of names) if (cjs[name] !== esm[name]) failures.push(subpath + ': ' + name + ' differs')
      if (cjs.__esModule !== true) failures.push(subpath + ': no __esModule for TypeScript default-import interop')
      return names.length
    })).then((counts) => console.log(JSON.stringify({ failures, counts })))
  `
  const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 })
  const { failures, counts } = JSON.parse(out.trim()) as { failures: string[]; counts: number[] }
  assert.deepEqual(failures, [])
  assert.equal(counts.length, 6)
  assert.equal(counts[0], EXPORTS.length)
})

test('the package map gives require() CommonJS types and entry, and import the ESM build, types first', () => {
  assert.equal(pkg.type, 'module')
  assert.equal(pkg.engines.node, '>=20.19')
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue
    assert.deepEqual(Object.keys(target), ['require', 'types', 'default'], subpath)
    assert.deepEqual(Object.keys(target.require), ['types', 'default'], subpath)
    assert.equal(target.require.types, target.types.replace('./dist/', './dist/cjs/'), subpath)
  }
  const require = createRequire(import.meta.url)
  assert.equal(require.resolve('groupcache'), `${root}dist/cjs/src/index.js`)
})

/** packagesImported lists the packages that the .ts files under `dir` load at run time. */
function packagesImported(dir: string): Set<string> {
  const found = new Set<string>()
  const patterns = [/^import (?!type )[^']*?'([^']+)'/gm, /\b(?:import|require)\('([^']+)'\)/g]
  for (const file of readdirSync(`${root}${dir}`).filter((f) => f.endsWith('.ts'))) {
    const text = readFileSync(`${root}${dir}/${file}`, 'utf8')
    for (const pattern of patterns) {
      for (const [, specifier] of text.matchAll(pattern)) {
        if (specifier === undefined || specifier.startsWith('.') || specifier.startsWith('node:')) continue
        found.add(
          specifier
            .split('/')
            .slice(0, specifier.startsWith('@') ? 2 : 1)
            .join('/'),
        )
      }
    }
  }
  return found
}

test('a core install carries only what the core imports: adapters need nothing beyond optional peers', () => {
  const core = packagesImported('src')
  assert.deepEqual(Object.keys(pkg.dependencies).sort(), [...core].sort(), 'dependencies are exactly what src/ imports')
  for (const name of packagesImported('adapters')) {
    if (core.has(name)) continue
    assert.ok(pkg.peerDependencies[name] !== undefined, `${name}, imported by adapters/, is a peer dependency`)
    assert.equal(pkg.peerDependenciesMeta[name]?.optional, true, `${name} is an optional peer dependency`)
  }
})

describe('the tarball npm pack makes', () => {
  let dir = ''
  let tarball = ''
  let files: string[] = []
  // consumer is a project that installed the tarball (without light-my-request).
  let consumer = ''

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'groupcache-pack-'))
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, timeout: 120_000 })
    const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>
    tarball = join(dir, packed!.filename)
    files = packed!.files.map((f) => f.path)
    // The consumer's node_modules: the unpacked tarball, and links to this
    // checkout's packages (framework types, @types/node) but light-my-request.
    consumer = join(dir, 'consumer')
    const installed = join(consumer, 'node_modules', 'groupcache')
    mkdirSync(installed, { recursive: true })
    await run('tar', ['xzf', tarball, '-C', installed, '--strip-components=1'], { timeout: 60_000 })
    for (const name of readdirSync(`${root}node_modules`)) {
      if (['.bin', '.package-lock.json', 'groupcache', 'light-my-request'].includes(name)) continue
      symlinkSync(`${root}node_modules/${name}`, join(consumer, 'node_modules', name))
    }
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  })
  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  test('holds every entry point, for import and for require, with their types', () => {
    for (const target of Object.values(pkg.exports)) {
      if (typeof target === 'string') continue
      for (const path of [target.types, target.default, target.require.types, target.require.default]) {
        assert.ok(files.includes(path.slice(2)), `${path} is in the tarball`)
      }
    }
  })

  test('ships declaration maps that lead to the .ts sources in the tarball', () => {
    const declarations = files.filter((f) => f.endsWith('.d.ts'))
    assert.ok(declarations.length > 0)
    for (const declaration of declarations) {
      const mapPath = `${declaration}.map`
      assert.ok(files.includes(mapPath), `${mapPath} is in the tarball`)
      const map = JSON.parse(readFileSync(join(consumer, 'node_modules/groupcache', mapPath), 'utf8')) as { sources: string[] }
      for (const source of map.sources) {
        const target = join(dirname(mapPath), source)
        assert.ok(target.endsWith('.ts') && files.includes(target), `${mapPath} leads to ${target}, which is in the tarball`)
      }
    }
  })

  test('passes publint and arethetypeswrong (node16: CommonJS and ESM consumers get types that match)', async () => {
    const bin = (name: string): string => `${root}node_modules/.bin/${name}`
    for (const [command, args] of [
      [bin('publint'), ['run', tarball, '--strict']],
      [bin('attw'), [tarball, '--profile', 'node16', '--format', 'ascii']],
    ] as const) {
      try {
        await run(command, [...args], { cwd: root, timeout: 120_000 })
      } catch (err) {
        const { stdout, stderr } = err as { stdout?: string; stderr?: string }
        assert.fail(`${command} ${args.join(' ')} failed:\n${stdout ?? ''}${stderr ?? ''}`)
      }
    }
  })

  test('a CommonJS TypeScript project (examples/commonjs.cts) compiles under node16 and nodenext, and runs', async () => {
    copyFileSync(`${root}examples/commonjs.cts`, join(consumer, 'index.cts'))
    for (const module of ['node16', 'nodenext']) {
      writeFileSync(
        join(consumer, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            module,
            target: 'ES2022',
            strict: true,
            exactOptionalPropertyTypes: true,
            noUncheckedIndexedAccess: true,
            types: ['node'],
            outDir: 'out',
          },
          files: ['index.cts'],
        }),
      )
      try {
        await run(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', consumer], { cwd: consumer, timeout: 120_000 })
      } catch (err) {
        assert.fail(`tsc (module ${module}) failed:\n${(err as { stdout?: string }).stdout ?? String(err)}`)
      }
    }
    const [port] = await reservePorts(1)
    const app = await startChild({
      what: 'the CommonJS example',
      command: process.execPath,
      args: [join(consumer, 'out/index.cjs')],
      env: { PORT: String(port) },
      ready: { stdout: 'listening' },
    })
    try {
      for (let i = 0; i < 2; i++) {
        const res = await fetchFresh(`http://127.0.0.1:${port}/squares/12`)
        assert.deepEqual(await res.json(), { square: 144, loads: 1 })
      }
    } finally {
      await app.stop()
    }
  })

  test('without light-my-request, the Express and Koa adapters load, and cacheRoute throws an InvalidOptionError that says what to install', () => {
    const script = `
      const { InvalidOptionError } = require('groupcache')
      const self = 'http://127.0.0.1:1'
      const out = []
      for (const subpath of ['groupcache/express', 'groupcache/koa']) {
        const mw = require(subpath).groupcache({ self, peers: [self] })
        try {
          mw.cacheRoute({ ttlMs: 1000 })
          out.push('no error')
        } catch (err) {
          out.push([err instanceof InvalidOptionError, err.code, err.message])
        }
        mw.groupcache.close()
      }
      require('groupcache/fastify')
      console.log(JSON.stringify(out))
    `
    const out = execFileSync(process.execPath, ['-e', script], { cwd: consumer, encoding: 'utf8', timeout: 60_000 })
    const answers = JSON.parse(out.trim()) as Array<[boolean, string, string]>
    assert.equal(answers.length, 2)
    for (const [isInvalidOption, code, message] of answers) {
      assert.equal(isInvalidOption, true)
      assert.equal(code, 'ERR_GROUPCACHE_INVALID_OPTION')
      assert.match(message, /npm install light-my-request/)
    }
  })
})

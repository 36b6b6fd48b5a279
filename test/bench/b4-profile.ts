// Where a B4 server's time goes: profiles the app process (b4-server.ts on the
// built package) with `node --cpu-prof` while autocannon, in this process,
// keeps /plain busy, then (in a fresh process) /cached, and prints per
// request CPU time by area and by function, plain beside cached.
//
//   npm run build && node --import tsx test/bench/b4-profile.ts
//   … -- --framework fastify,koa --seconds 5 --keep /tmp/profiles
//
// Each profile is cropped to the measured window (the server's own clock,
// read through /counter before and after autocannon). Async functions show
// once per synchronous segment: `#decide` before its await and again when it
// resumes; "inclusive" adds up every segment.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { normalizeUrl, RouteCaches } from '../../dist/adapters/route-cache.js'
import { Groupcache } from '../../dist/src/index.js'
import { cannon, FRAMEWORKS, getCounter, startServer } from './b4-cached-route.js'
import type { CounterAnswer, Framework } from './b4-server.js'
import { compareNsPerOp, fmtInt, fmtNs } from './lib.js'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
  /** positionTicks: samples per source line (of the whole profile, not cropped). */
  positionTicks?: Array<{ line: number; ticks: number }>
}
interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : process.argv[i + 1]
}

const frameworks = (arg('--framework')
  ?.split(',')
  .filter((f) => f !== 'none') ?? FRAMEWORKS) as Framework[] // none: only the in-process part
const seconds = Number(arg('--seconds') ?? 5)
const keep = arg('--keep')
const top = Number(arg('--top') ?? 22)
const rounds = Number(arg('--rounds') ?? 3)
const interval = Number(arg('--interval') ?? 100) // µs between samples

/** area names where a frame's code lives. */
function area(frame: CallFrame): string {
  const { url, functionName } = frame
  if (url === '') {
    if (functionName.startsWith('(')) return functionName // (garbage collector), (program), (idle)
    return 'V8 builtins / native'
  }
  if (url.includes('/dist/adapters/route-cache.js')) return 'groupcache adapters/route-cache'
  if (url.includes('/dist/adapters/')) return `groupcache adapters/${url.slice(url.lastIndexOf('/') + 1, -3)}`
  if (url.includes('/dist/src/')) return `groupcache src/${url.slice(url.lastIndexOf('/') + 1, -3)}`
  const nm = url.lastIndexOf('/node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/')
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] as string)
  }
  if (url.startsWith('node:')) {
    const name = url.slice(url.lastIndexOf('/') + 1)
    if (/^_http|^http/.test(name)) return 'node http'
    if (/^(net|stream_base_commons|tcp_wrap)/.test(name)) return 'node net'
    if (/stream|readable|writable|end-of-stream|destroy/.test(url)) return 'node streams'
    if (/timers|task_queues|promises|async_hooks|process/.test(url)) return 'node timers/ticks/promises'
    return 'node other'
  }
  if (url.includes('/test/bench/')) return 'bench app (b4-server)'
  return url
}

function label(frame: CallFrame): string {
  const file = frame.url === '' ? '' : frame.url.slice(frame.url.lastIndexOf('/') + 1)
  return `${frame.functionName || '(anonymous)'}${file === '' ? '' : ` ${file}:${frame.lineNumber + 1}`}`
}

interface Breakdown {
  requests: number
  busyMicros: number
  windowMicros: number
  byArea: Map<string, number>
  self: Map<string, number>
  inclusive: Map<string, number>
  inclusiveArea: Map<string, number>
}

/** analyse crops a profile to [from, to] (µs, the profiled process's monotonic clock) and sums its samples. */
function analyse(profile: CpuProfile, from: number, to: number, requests: number): Breakdown {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  // Without a usable window (clocks that disagree), take the whole profile.
  if (!(from >= profile.startTime && to <= profile.endTime && to > from)) {
    console.log(`  (window ${from}–${to} outside the profile ${profile.startTime}–${profile.endTime}: whole profile used)`)
    from = profile.startTime
    to = profile.endTime
  }
  const b: Breakdown = {
    requests,
    busyMicros: 0,
    windowMicros: to - from,
    byArea: new Map(),
    self: new Map(),
    inclusive: new Map(),
    inclusiveArea: new Map(),
  }
  const add = (m: Map<string, number>, k: string, v: number): void => void m.set(k, (m.get(k) ?? 0) + v)
  let t = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0
    const dt = profile.timeDeltas[i + 1] ?? 0 // until the next sample
    if (t < from || t > to) continue
    const leaf = byId.get(profile.samples[i] as number) as ProfileNode
    const leafArea = area(leaf.callFrame)
    add(b.byArea, leafArea, dt)
    add(b.self, label(leaf.callFrame), dt)
    if (leafArea !== '(idle)') b.busyMicros += dt
    const seen = new Set<string>()
    const seenArea = new Set<string>()
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const frame = (byId.get(id) as ProfileNode).callFrame
      const name = label(frame)
      if (!seen.has(name)) {
        seen.add(name)
        add(b.inclusive, name, dt)
      }
      const a = area(frame)
      if (!seenArea.has(a)) {
        seenArea.add(a)
        add(b.inclusiveArea, a, dt)
      }
    }
  }
  return b
}

/**
 * hotLines prints the source lines of the built package (dist/) that the
 * profiler caught most often, over the whole profile (both routes and the
 * warm-up: positionTicks are not timed), as ms and as a share of the
 * profile's busy (not idle) samples.
 */
function hotLines(profile: CpuProfile): void {
  const interval = (profile.endTime - profile.startTime) / Math.max(1, profile.samples.length)
  const ticks = new Map<string, number>()
  for (const n of profile.nodes) {
    const url = n.callFrame.url
    if (!url.includes('/dist/') || url.includes('node_modules')) continue
    const file = url.slice(url.indexOf('/dist/') + '/dist/'.length)
    for (const t of n.positionTicks ?? []) {
      const k = `${file}:${t.line} ${n.callFrame.functionName || '(anonymous)'}`
      ticks.set(k, (ticks.get(k) ?? 0) + t.ticks)
    }
  }
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id))
  const busy = profile.samples.filter((id) => !idle.has(id)).length
  console.log('\nhottest lines of the built package (dist/), over the whole profile (both routes and the warm-up):\n')
  console.log('| line | ms | share of busy samples |')
  console.log('| --- | ---: | ---: |')
  for (const [k, v] of [...ticks.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
    console.log(`| ${k} | ${((v * interval) / 1000).toFixed(1)} | ${((100 * v) / Math.max(1, busy)).toFixed(2)} % |`)
  }
}

function merge(into: Breakdown | undefined, b: Breakdown): Breakdown {
  if (into === undefined) return b
  const sum = (x: Map<string, number>, y: Map<string, number>): void => {
    for (const [k, v] of y) x.set(k, (x.get(k) ?? 0) + v)
  }
  into.requests += b.requests
  into.busyMicros += b.busyMicros
  into.windowMicros += b.windowMicros
  sum(into.byArea, b.byArea)
  sum(into.self, b.self)
  sum(into.inclusive, b.inclusive)
  sum(into.inclusiveArea, b.inclusiveArea)
  return into
}

/**
 * profileFramework runs one profiled server, warms both routes, then runs
 * autocannon on /plain and /cached in interleaved windows, and returns each
 * route's samples (all its windows together).
 */
async function profileFramework(framework: Framework, dir: string): Promise<{ plain: Breakdown; cached: Breakdown }> {
  const server = await startServer(framework, ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', String(interval)])
  const windows: Array<{ path: '/plain' | '/cached'; from: number; to: number; total: number }> = []
  let last: CounterAnswer
  try {
    await fetch(`${server.url}/cached`).then((r) => r.arrayBuffer())
    await cannon(`${server.url}/plain`, 1) // warm-up, cropped away
    await cannon(`${server.url}/cached`, 1)
    for (let r = 0; r < rounds; r++) {
      for (const path of ['/plain', '/cached'] as const) {
        const before = await getCounter(server)
        const { total } = await cannon(`${server.url}${path}`, seconds)
        const after = await getCounter(server)
        windows.push({ path, from: before.monoMicros, to: after.monoMicros, total })
      }
    }
    last = await getCounter(server)
  } finally {
    await server.stop(20_000) // writing the profile takes a moment
  }
  if (last.runs.cached !== 1) console.log(`  **the /cached handler ran ${last.runs.cached} times**`)
  // One profile per thread (tsx's loader runs in a worker): the main thread's is the largest.
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
  const file = files.sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0]
  if (file === undefined) throw new Error(`no profile written for ${framework}`)
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
  hotLines(profile)
  let plain: Breakdown | undefined
  let cached: Breakdown | undefined
  for (const w of windows) {
    const b = analyse(profile, w.from, w.to, w.total)
    if (w.path === '/plain') plain = merge(plain, b)
    else cached = merge(cached, b)
  }
  return { plain: plain as Breakdown, cached: cached as Breakdown }
}

function usPerReq(b: Breakdown, micros: number | undefined): string {
  return ((micros ?? 0) / b.requests).toFixed(2)
}

function printComparison(framework: Framework, plain: Breakdown, cached: Breakdown): void {
  console.log(
    `\n### ${framework}: CPU µs per request on the server's main thread (profiled, ${rounds} interleaved windows of ${seconds} s per route)\n`,
  )
  console.log(
    `requests: plain ${fmtInt(plain.requests)} (${fmtInt(plain.requests / (plain.windowMicros / 1e6))}/s), cached ${fmtInt(cached.requests)} (${fmtInt(cached.requests / (cached.windowMicros / 1e6))}/s)`,
  )
  console.log(
    `busy (not idle): plain ${usPerReq(plain, plain.busyMicros)} µs/req (${Math.round((100 * plain.busyMicros) / plain.windowMicros)} % of the window), cached ${usPerReq(cached, cached.busyMicros)} µs/req (${Math.round((100 * cached.busyMicros) / cached.windowMicros)} %)\n`,
  )
  const areas = [...new Set([...plain.byArea.keys(), ...cached.byArea.keys()])].filter((a) => a !== '(idle)')
  areas.sort((a, b) => (cached.byArea.get(b) ?? 0) / cached.requests - (cached.byArea.get(a) ?? 0) / cached.requests)
  console.log('| area | self plain | self cached | Δ | inclusive plain | inclusive cached |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |')
  for (const a of areas) {
    const p = (plain.byArea.get(a) ?? 0) / plain.requests
    const c = (cached.byArea.get(a) ?? 0) / cached.requests
    if (p < 0.05 && c < 0.05) continue
    console.log(
      `| ${a} | ${p.toFixed(2)} | ${c.toFixed(2)} | ${(c - p >= 0 ? '+' : '') + (c - p).toFixed(2)} | ${usPerReq(plain, plain.inclusiveArea.get(a))} | ${usPerReq(cached, cached.inclusiveArea.get(a))} |`,
    )
  }
  const fnTable = (title: string, m: Map<string, number>, b: Breakdown, other: Breakdown, otherMap: Map<string, number>): void => {
    console.log(`\n${title}\n`)
    console.log('| function | µs/req | same function, other route |')
    console.log('| --- | ---: | ---: |')
    const rows = [...m.entries()]
      .filter(([name]) => !name.startsWith('(idle)') && !name.startsWith('(root)'))
      .sort((x, y) => y[1] - x[1])
      .slice(0, top)
    for (const [name, v] of rows) console.log(`| ${name} | ${(v / b.requests).toFixed(2)} | ${usPerReq(other, otherMap.get(name))} |`)
  }
  fnTable('cached route, self time, top functions (other route = plain):', cached.self, cached, plain, plain.self)
  console.log('\nself time, largest differences (cached − plain, µs/req):\n')
  console.log('| function | plain | cached | Δ |')
  console.log('| --- | ---: | ---: | ---: |')
  const names = [...new Set([...plain.self.keys(), ...cached.self.keys()])].filter((n) => !n.startsWith('(idle)'))
  const delta = (n: string): number => (cached.self.get(n) ?? 0) / cached.requests - (plain.self.get(n) ?? 0) / plain.requests
  for (const n of names.sort((x, y) => Math.abs(delta(y)) - Math.abs(delta(x))).slice(0, top)) {
    console.log(
      `| ${n} | ${usPerReq(plain, plain.self.get(n))} | ${usPerReq(cached, cached.self.get(n))} | ${(delta(n) >= 0 ? '+' : '') + delta(n).toFixed(2)} |`,
    )
  }
  fnTable('cached route, inclusive time, top functions (other route = plain):', cached.inclusive, cached, plain, plain.inclusive)
  const ours = [...cached.inclusive.entries()].filter(
    ([name]) =>
      /route-cache\.js|adapters\/|(express|fastify|koa)\.js:|group\.js|cache\.js|lru\.js|groupcache\.js|codec\.js|stats\.js/.test(name) &&
      /\.js:\d+$/.test(name),
  )
  const oursFiltered = ours.filter(([name]) => !name.includes('node_modules'))
  console.log('\ngroupcache functions on the cached route (inclusive µs/req; self µs/req):\n')
  console.log('| function | inclusive | self |')
  console.log('| --- | ---: | ---: |')
  for (const [name, v] of oursFiltered.sort((x, y) => y[1] - x[1])) {
    console.log(`| ${name} | ${(v / cached.requests).toFixed(2)} | ${usPerReq(cached, cached.self.get(name))} |`)
  }
}

/**
 * hitPath times the framework-neutral half of a cached route hit in this
 * process, without HTTP: the whole `decide()` (key, `getWithSource`, the
 * reply headers), and its parts, each awaited like the adapters do.
 */
async function hitPath(): Promise<void> {
  const gc = new Groupcache({ self: 'http://127.0.0.1:1', peers: ['http://127.0.0.1:1'] })
  try {
    const routes = new RouteCaches(gc)
    const body = Buffer.alloc(1024, 97)
    const decide = routes.route({ ttlMs: 600_000 })
    // The replay reaches the route (which sees its marker and lets it through), then the handler answers.
    routes.setRenderer(async (url, headers) => {
      await decide({ method: 'GET', url, headers })
      return { status: 200, headers: { 'content-type': 'application/json' }, body }
    })
    // What autocannon sends, as node:http parses it.
    const req = { method: 'GET', url: '/cached', headers: { host: '127.0.0.1:3000' } }
    const first = await decide(req)
    if (first.action !== 'reply' || first.headers['x-groupcache'] !== 'miss') throw new Error('the first decide() did not render')
    const group = gc.getGroup('_routes')
    if (group === undefined) throw new Error('no _routes group')
    const key = JSON.stringify([normalizeUrl(req.url), {}])
    const results = await compareNsPerOp(
      {
        'await of a resolved promise (reference)': () => Promise.resolve(),
        'decide() on a hit': () => decide(req),
        'group.getWithSource(key) on a hit': () => group.getWithSource(key),
        'key: JSON.stringify([normalizeUrl(url), vary]) + Buffer.byteLength': () =>
          Buffer.byteLength(JSON.stringify([normalizeUrl(req.url), {}])),
        'reply headers: { ...entry.headers, etag, x-groupcache, content-length }': () => ({
          ...first.headers,
          etag: '"x"',
          'x-groupcache': 'hit',
          'content-length': String(body.length),
        }),
      },
      { rounds: 3, seconds: 0.5, warmupOps: 50_000 },
    )
    console.log("\n### in-process: the route cache's share of a hit (each op awaited, median of 3 interleaved rounds)\n")
    console.log('| op | time per op |')
    console.log('| --- | ---: |')
    for (const [name, ns] of Object.entries(results)) console.log(`| ${name} | ${fmtNs(ns)} |`)
  } finally {
    await gc.close()
  }
}

await hitPath()
const root = keep ?? mkdtempSync(join(tmpdir(), 'b4-profile-'))
try {
  for (const framework of frameworks) {
    const { plain, cached } = await profileFramework(framework, join(root, framework))
    printComparison(framework, plain, cached)
  }
  if (keep !== undefined) console.log(`\nprofiles kept in ${root} (open them in Chrome DevTools)`)
} finally {
  if (keep === undefined) rmSync(root, { recursive: true, force: true })
}
process.exit(0)

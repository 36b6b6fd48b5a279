// B4: a cached route hit, per framework, over real HTTP. Each framework's app
// runs in a child process (test/bench/b4-server.ts, on the built package);
// this process is the client only: autocannon, run programmatically, keeps
// the same connections busy on `/plain` (the handler: a precomputed ~1 KB
// JSON buffer) and on `/cached` (the same handler behind the framework's
// cached route), in interleaved rounds. The target is the cached route's
// req/s against the plain route's, measured in the same run.
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { reservePorts } from '../helpers/ports.js'
import type { CounterAnswer, Framework, ServerConfig } from './b4-server.js'
import { track } from './cluster.js'
import { fmtInt, fmtMs, fmtRatio, median, printTable, quick, record, sleep, withTimeout } from './lib.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SERVER = 'test/bench/b4-server.ts'
export const FRAMEWORKS: Framework[] = ['express', 'fastify', 'koa']
/** TTL of the cached route: far longer than a run, so nothing expires while measured. */
const TTL_MS = 600_000
const CONNECTIONS = 32
const TARGET = 0.85
const START_TIMEOUT_MS = 30_000
const STOP_GRACE_MS = 3_000

/** B4Server is one running server child. */
export interface B4Server {
  framework: Framework
  url: string
  child: ChildProcess
  /** stop asks the child to exit and kills it if it has not after a grace period; never rejects. */
  stop(graceMs?: number): Promise<void>
}

/**
 * startServer spawns b4-server.ts for `framework` on a free port and resolves
 * once it is listening. `nodeArgs` go to node before the script (say
 * `--cpu-prof`). The child is tracked: it is killed if this process exits.
 */
export async function startServer(framework: Framework, nodeArgs: string[] = []): Promise<B4Server> {
  const [port] = (await reservePorts(1)) as [number]
  const config: ServerConfig = { framework, port, ttlMs: TTL_MS }
  const child = spawn(process.execPath, ['--import', 'tsx', ...nodeArgs, SERVER, JSON.stringify(config)], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  track(child)
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
  const server: B4Server = {
    framework,
    url: `http://127.0.0.1:${port}`,
    child,
    async stop(graceMs = STOP_GRACE_MS) {
      if (child.exitCode !== null || child.signalCode !== null) return
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs)
      if (child.connected) child.send({ op: 'close' }, () => {})
      else child.kill('SIGTERM')
      // Bounded even if the exit event was missed.
      await Promise.race([exited, sleep(graceMs + 2_000)])
      clearTimeout(kill)
    },
  }
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${framework} server did not start in ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS)
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`${framework} server exited with ${code ?? signal}`))
      })
      child.on('message', (msg: { ready?: boolean }) => {
        if (msg.ready) {
          clearTimeout(timer)
          resolve()
        }
      })
    })
  } catch (err) {
    await server.stop()
    throw err
  }
  return server
}

/** getCounter reads the server's `/counter`. */
export async function getCounter(server: B4Server): Promise<CounterAnswer> {
  const res = await withTimeout(fetch(`${server.url}/counter`), 10_000, 'GET /counter')
  if (res.status !== 200) throw new Error(`GET /counter answered ${res.status}`)
  return (await res.json()) as CounterAnswer
}

/** Answer is one response read whole. */
interface Answer {
  status: number
  source: string | null
  type: string | null
  body: Buffer
}

async function get(server: B4Server, path: string): Promise<Answer> {
  const res = await withTimeout(fetch(`${server.url}${path}`), 10_000, `GET ${path}`)
  return {
    status: res.status,
    source: res.headers.get('x-groupcache'),
    type: res.headers.get('content-type'),
    body: Buffer.from(await res.arrayBuffer()),
  }
}

/** Cannon is one autocannon run's outcome. */
export interface Cannon {
  rps: number
  total: number
  p50: number
  p99: number
  /** errors: connection errors, timeouts and non-2xx answers together. */
  errors: number
}

/** cannon runs autocannon against `url` with CONNECTIONS connections for `seconds`. */
export async function cannon(url: string, seconds: number): Promise<Cannon> {
  // Without a callback autocannon returns its running instance, which is also a promise.
  const running = autocannon({ url, connections: CONNECTIONS, pipelining: 1, duration: seconds }) as Promise<autocannon.Result> & {
    stop?: () => void
  }
  let result: autocannon.Result
  try {
    result = await withTimeout(running, seconds * 1000 + 30_000, `autocannon ${url}`)
  } catch (err) {
    running.stop?.()
    throw err
  }
  return {
    rps: result.requests.total / result.duration,
    total: result.requests.total,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
  }
}

/** Sample is one round of one route, with the server's own view of it. */
interface Sample extends Cannon {
  /** serverCpu: the server's CPU time over the round's wall time (1 = one core). */
  serverCpu: number
  /** clientCpu: the same for this process (autocannon). */
  clientCpu: number
  /** serverMicrosPerRequest: the server's CPU time per completed response. */
  serverMicrosPerRequest: number
  before: CounterAnswer
  after: CounterAnswer
}

async function measure(server: B4Server, path: string, seconds: number): Promise<Sample> {
  const before = await getCounter(server)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const result = await cannon(`${server.url}${path}`, seconds)
  const wallMicros = (performance.now() - t0) * 1000
  const cpu1 = process.cpuUsage(cpu0)
  const after = await getCounter(server)
  return {
    ...result,
    serverCpu: (after.cpuMicros - before.cpuMicros) / wallMicros,
    clientCpu: (cpu1.user + cpu1.system) / wallMicros,
    serverMicrosPerRequest: (after.cpuMicros - before.cpuMicros) / Math.max(1, result.total),
    before,
    after,
  }
}

/** FrameworkResult is what one framework's measurement gives. */
interface FrameworkResult {
  framework: Framework
  plain: number
  cached: number
  ratio: number
  ratios: number[]
  plainP99: number
  cachedP99: number
  serverCpu: number
  clientCpu: number
  plainMicros: number
  cachedMicros: number
  problems: string[]
  requests: number
}

async function measureFramework(framework: Framework, rounds: number, seconds: number): Promise<FrameworkResult> {
  const server = await startServer(framework)
  const problems: string[] = []
  try {
    // The first /cached request renders (the handler's only run); every later one is a hit.
    const plain = await get(server, '/plain')
    const first = await get(server, '/cached')
    if (plain.status !== 200 || !(plain.type ?? '').startsWith('application/json') || plain.body.length < 1000) {
      problems.push(`/plain answered ${plain.status} ${plain.type} with ${plain.body.length} bytes`)
    }
    if (first.status !== 200 || first.source !== 'miss' || first.type !== plain.type || !first.body.equals(plain.body)) {
      problems.push(
        `first /cached: ${first.status}, x-groupcache ${first.source}, ${first.type}, ${first.body.equals(plain.body) ? 'same' : 'another'} body`,
      )
    }
    // JIT warm-up of both routes, not counted.
    const warm = quick ? 0.5 : 1
    await cannon(`${server.url}/plain`, warm)
    await cannon(`${server.url}/cached`, warm)
    const samples = { plain: [] as Sample[], cached: [] as Sample[] }
    for (let r = 0; r < rounds; r++) {
      samples.plain.push(await measure(server, '/plain', seconds))
      const cached = await measure(server, '/cached', seconds)
      samples.cached.push(cached)
      // Every /cached request of the round was a hit on this node's cache:
      // the route group saw as many hits as gets, at least one per completed
      // response (a few more may have been in flight when autocannon stopped).
      const gets = (cached.after.routes?.gets ?? 0) - (cached.before.routes?.gets ?? 0)
      const hits = (cached.after.routes?.cacheHits ?? 0) - (cached.before.routes?.cacheHits ?? 0)
      if (gets !== hits || hits < cached.total || hits > cached.total + CONNECTIONS) {
        problems.push(`round ${r + 1}: ${cached.total} responses, ${gets} gets, ${hits} hits`)
      }
      for (let i = 0; i < 3; i++) {
        const answer = await get(server, '/cached')
        if (answer.status !== 200 || answer.source !== 'hit' || !answer.body.equals(plain.body)) {
          problems.push(`round ${r + 1}: /cached answered ${answer.status}, x-groupcache ${answer.source}`)
        }
      }
    }
    for (const s of [...samples.plain, ...samples.cached]) if (s.errors > 0) problems.push(`${s.errors} errors or non-2xx answers`)
    const last = await getCounter(server)
    if (last.runs.cached !== 1) problems.push(`the /cached handler ran ${last.runs.cached} times (expected once)`)
    const ratios = samples.cached.map((c, i) => c.rps / (samples.plain[i] as Sample).rps)
    const all = [...samples.plain, ...samples.cached]
    return {
      framework,
      plain: median(samples.plain.map((s) => s.rps)),
      cached: median(samples.cached.map((s) => s.rps)),
      ratio: median(ratios),
      ratios,
      plainP99: median(samples.plain.map((s) => s.p99)),
      cachedP99: median(samples.cached.map((s) => s.p99)),
      serverCpu: median(all.map((s) => s.serverCpu)),
      clientCpu: median(all.map((s) => s.clientCpu)),
      plainMicros: median(samples.plain.map((s) => s.serverMicrosPerRequest)),
      cachedMicros: median(samples.cached.map((s) => s.serverMicrosPerRequest)),
      problems,
      requests: last.routes?.cacheHits ?? 0,
    }
  } finally {
    await server.stop()
  }
}

/** run measures B4 and prints its table. */
export async function run(): Promise<void> {
  const rounds = quick ? 3 : 5
  const seconds = quick ? 1 : 5
  const results: FrameworkResult[] = []
  for (const framework of FRAMEWORKS) results.push(await measureFramework(framework, rounds, seconds))
  const name = { express: 'Express', fastify: 'Fastify', koa: 'Koa' }
  const rows = results.map((r) => [
    name[r.framework],
    fmtInt(r.plain),
    fmtInt(r.cached),
    fmtRatio(r.ratio),
    r.ratios.map((x) => x.toFixed(2)).join(' '),
    `${fmtMs(r.plainP99)} / ${fmtMs(r.cachedP99)}`,
    `${r.plainMicros.toFixed(1)} / ${r.cachedMicros.toFixed(1)} µs`,
    `${Math.round(r.serverCpu * 100)} % / ${Math.round(r.clientCpu * 100)} %`,
    record('B4', `${name[r.framework]} cached route ≥ ${TARGET}× plain`, r.ratio >= TARGET && r.problems.length === 0),
  ])
  const problems = results.flatMap((r) => r.problems.map((p) => `${name[r.framework]}: ${p}`))
  printTable(
    'B4 — cached route hit vs the same framework serving a precomputed buffer, req/s (autocannon, separate process)',
    [
      'framework',
      'baseline: plain route',
      'cached route (hit)',
      'ratio (median)',
      'ratio per round',
      'p99 plain / cached',
      'server CPU per request, plain / cached',
      'CPU use, server / client',
      'target',
    ],
    rows,
    [
      `${rounds} interleaved round${rounds > 1 ? 's' : ''} (plain, cached, plain, cached…) of ${seconds} s each per route, after ${quick ? 0.5 : 1} s of warm-up each; autocannon ${CONNECTIONS} connections, no pipelining, in this process; the app in a child process (\`node --import tsx test/bench/b4-server.ts\`, importing the built \`groupcache/express\` etc.) on 127.0.0.1. The ratio is the median of the per-round ratios.`,
      "Both routes run one handler that sends a precomputed ~1 KB JSON buffer the framework's ordinary way (Express `res.type().send()`, which also computes a weak ETag; Fastify `reply.type().send()`; Koa `ctx.body`). `/cached` wraps it: Express `gc.cacheRoute({ ttlMs: 600000 })`, Koa `gc.cacheRoute(…)` on @koa/router, Fastify `config: { groupcache: { ttlMs: 600000 } }`; a single-node cluster (peers = [self]), warmed by one request, so every measured request is a local hit.",
      "Server CPU per request: the app process's CPU time (user + system, all threads) over the responses of a round, median of the rounds; unlike req/s it does not depend on who saturates first. CPU use: each process's CPU time over the round's wall time (100 % = one core), median over all rounds; a server near 100 % is the bottleneck, as it should be (the client, on the other core, is not far behind).",
      ...(results.some((r) => r.ratio < TARGET)
        ? [
            "Below target: `npm run build && node --import tsx test/bench/b4-profile.ts --framework <name>` profiles the app (`node --cpu-prof`) under the same load and prints where each route's time goes.",
          ]
        : []),
      problems.length === 0
        ? `checked: /cached rendered once (its handler ran exactly once in the whole run, ${fmtInt(results.reduce((n, r) => n + r.requests, 0))} hits served); in every round the route group counted one hit per get and at least one per response; sampled /cached answers carry \`x-groupcache: hit\` and the same bytes as /plain; no errors or non-2xx answers.`
        : `**check failed**: ${problems.join('; ')}`,
    ],
  )
}

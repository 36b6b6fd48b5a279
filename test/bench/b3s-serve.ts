// B3s: the server side of a peer fetch. An owner answering peers' GETs for a
// value it holds, through gc.listen() and through each adapter, against a
// bare node:http server answering the same bytes. Each server runs in a child
// process of its own (test/bench/b3s-server.ts, on the built package; a
// framework in the baseline's process would slow node:http's own code there
// too); this process is the client only: autocannon, run programmatically,
// keeps connections busy with GETs over keys in rotation, on one server at a
// time, and the child reports its CPU and GC time over each shot
// (process.cpuUsage()).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { reservePorts } from '../helpers/ports.js'
import { mulberry32 } from '../helpers/prng.js'
import type { Counter, Kind, ServerConfig } from './b3s-server.js'
import { track } from './cluster.js'
import { fmtInt, fmtRatio, median, printTable, quick, record, sleep, withTimeout } from './lib.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SERVER = 'test/bench/b3s-server.ts'
const CONNECTIONS = 16
const KEYS = 64
const SIZE = 1024
const SECRET = 'b3s-bench-secret'
const RPS_TARGET = 0.8
const CPU_TARGET = 1.25
const START_TIMEOUT_MS = 30_000
/**
 * CLIENT is what shoots: wrk (C, Debian's `wrk` package) when it is on the
 * PATH, else autocannon; `--client autocannon` or `--client wrk` chooses.
 * wrk costs the machine a fraction of what autocannon (JavaScript) does per
 * request, so the server under test, not the client, sets the pace: on 2
 * cores autocannon kept a bare server partly idle, and its CPU per request
 * then depended on how many requests each wake-up found (two identical
 * servers read 0.58–1.61× of each other, pair by pair).
 */
const CLIENT: 'wrk' | 'autocannon' = (() => {
  const i = process.argv.indexOf('--client')
  const asked = i === -1 ? undefined : process.argv[i + 1]
  if (asked === 'wrk' || asked === 'autocannon') return asked
  return spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined ? 'wrk' : 'autocannon'
})()
/**
 * PIN puts every server on CPU 0 and the client on CPU 1 (taskset), with
 * wrk on a machine of 2 CPUs or more; `--no-pin` leaves them to the
 * scheduler. Unpinned, a server and wrk at times shared one core.
 */
const PIN =
  CLIENT === 'wrk' &&
  !process.argv.includes('--no-pin') &&
  availableParallelism() >= 2 &&
  spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' }).status === 0
/** LEAD_IN_SECONDS: how long a shot runs before its measured window opens (see shoot). */
const LEAD_IN_SECONDS = 0.25
/** TAIL_SECONDS: how long a shot goes on after its window closed, so that the window ends under load. */
const TAIL_SECONDS = 0.1
/**
 * WARM_UP_SECONDS: the shot each new server gets before it is measured, for
 * the JIT. Measured: a fresh gc.listen() process shot beside a fresh bare
 * one in half-second shots reads 1.2× in its first half second, 1.7× in the
 * next (TurboFan compiling its longer path, on threads whose CPU counts) and
 * 1.3× in the third, then 1.11–1.13× from 2.5 s on; two bare servers read
 * 1.00× from 2 s on. A warm-up of 0.9 s measured the compiler, not the
 * server (1.2–1.55× for the same code).
 */
const WARM_UP_SECONDS = 3
const STOP_GRACE_MS = 3_000

/** Server is one running server child. */
interface Server {
  kind: Kind
  url: string
  child: ChildProcess
  frame: Buffer
  counter(): Promise<Counter>
  stop(): Promise<void>
}

/** startServer spawns b3s-server.ts as `kind` and resolves once it listens. `nodeArgs` go to node (say `--cpu-prof`). */
export async function startServer(kind: Kind, options: { secret?: string; nodeArgs?: string[]; size?: number } = {}): Promise<Server> {
  const [port] = (await reservePorts(1)) as [number]
  const config: ServerConfig = { kind, port, size: options.size ?? SIZE, keys: KEYS, secret: options.secret }
  const child = spawn(process.execPath, ['--import', 'tsx', ...(options.nodeArgs ?? []), SERVER, JSON.stringify(config)], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    // The adapters' warning about an endpoint without a secret is expected here.
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  })
  track(child)
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
  let frame = Buffer.alloc(0)
  const server: Server = {
    kind,
    url: `http://127.0.0.1:${port}`,
    child,
    get frame() {
      return frame
    },
    counter: () =>
      withTimeout(
        new Promise<Counter>((resolve) => {
          const onMessage = (msg: { counter?: Counter }): void => {
            if (msg.counter === undefined) return
            child.off('message', onMessage)
            resolve(msg.counter)
          }
          child.on('message', onMessage)
          child.send({ op: 'counter' })
        }),
        10_000,
        `${kind} counter`,
      ),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
      if (child.connected) child.send({ op: 'close' }, () => {})
      else child.kill('SIGTERM')
      await Promise.race([exited, sleep(STOP_GRACE_MS + 2_000)])
      clearTimeout(kill)
    },
  }
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${kind} server did not start in ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS)
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`${kind} server exited with ${code ?? signal}`))
      })
      child.on('message', (msg: { ready?: boolean; frame?: string }) => {
        if (msg.ready) {
          frame = Buffer.from(msg.frame ?? '', 'base64')
          clearTimeout(timer)
          resolve()
        }
      })
    })
  } catch (err) {
    await server.stop()
    throw err
  }
  // Pinned once started: starting, the processes use both cores.
  if (PIN && child.pid !== undefined) spawnSync('taskset', ['-a', '-p', '-c', '0', String(child.pid)], { stdio: 'ignore' })
  return server
}

/** Shot is one autocannon run against one server, with that server's own CPU and GC time over it. */
export interface Shot {
  rps: number
  total: number
  errors: number
  cpuMicrosPerRequest: number
  gcMicrosPerRequest: number
  /** served: requests the group counted as served, and of those cache hits. */
  served?: { requests: number; hits: number; loads: number }
}

/**
 * shoot keeps CONNECTIONS connections busy with GETs for the group's keys in
 * rotation, and measures the server over a window of `seconds` that starts
 * `leadIn` seconds into the shot and ends before the shot does: its CPU, GC
 * and answers are read from the server itself at both ends of the window,
 * so the window holds neither the connections' setup nor the first
 * moments of a server that sat idle (V8 shrinks an idle heap, and the first
 * tenth of a second after idling pays for growing it again), nor the
 * shot's end, when connections close.
 */
export async function shoot(server: Server, seconds: number, secret?: string, leadIn = LEAD_IN_SECONDS): Promise<Shot> {
  return (await shootTogether([server], seconds, secret, leadIn))[0] as Shot
}

/**
 * shootTogether shoots every server of `servers` at once, each with a
 * client of its own, over the same window. Two servers pinned to one core
 * and shot together share that core (the scheduler gives each its half)
 * and whatever the machine does to it meanwhile: this machine runs in
 * spells, seconds long, in which the same server costs up to twice the CPU
 * per request of the spell before (measured: two bare node:http servers
 * shot one after the other read 0.42–1.22× of each other, pair by pair),
 * and a pair shot together lives through the same spell.
 */
export async function shootTogether(servers: Server[], seconds: number, secret?: string, leadIn = LEAD_IN_SECONDS): Promise<Shot[]> {
  const length = leadIn + seconds + TAIL_SECONDS
  const running = servers.map((server) => (CLIENT === 'wrk' ? wrk(server, length, secret) : cannon(server, length, secret)))
  let results: Array<{ total: number; errors: number }>
  let before: Counter[]
  let after: Counter[]
  try {
    await sleep(leadIn * 1000)
    before = await Promise.all(servers.map((server) => server.counter()))
    await sleep(seconds * 1000)
    after = await Promise.all(servers.map((server) => server.counter()))
    results = await withTimeout(
      Promise.all(running.map((r) => r.done)),
      (leadIn + seconds) * 1000 + 30_000,
      `${CLIENT} ${servers.map((s) => s.kind).join(' + ')}`,
    )
  } catch (err) {
    for (const r of running) r.stop()
    throw err
  }
  return servers.map((_, i) => toShot(before[i] as Counter, after[i] as Counter, results[i] as { total: number; errors: number }))
}

/** toShot is a shot's figures from the server's counters at both ends of its window and what the client saw. */
function toShot(before: Counter, after: Counter, result: { total: number; errors: number }): Shot {
  const total = after.requests - before.requests
  const shot: Shot = {
    rps: total / Math.max(1e-6, (after.monoMicros - before.monoMicros) / 1e6),
    total,
    errors: result.errors + (result.total < total ? 1 : 0),
    cpuMicrosPerRequest: (after.cpuMicros - before.cpuMicros) / Math.max(1, total),
    gcMicrosPerRequest: (after.gcMicros - before.gcMicros) / Math.max(1, total),
  }
  if (after.served !== undefined && before.served !== undefined) {
    shot.served = {
      requests: after.served.serverRequests - before.served.serverRequests,
      hits: after.served.cacheHits - before.served.cacheHits,
      loads: after.served.loads - before.served.loads,
    }
  }
  return shot
}

/** Running is a client's shot in progress: its end (answers sent, errors) and a way to stop it early. */
interface Running {
  done: Promise<{ total: number; errors: number }>
  stop(): void
}

/** cannon shoots with autocannon for `seconds`. */
function cannon(server: Server, seconds: number, secret: string | undefined): Running {
  const headers = secret === undefined ? undefined : { authorization: `Bearer ${secret}` }
  const requests = Array.from({ length: KEYS }, (_, i) => ({ method: 'GET' as const, path: `/_groupcache/g/k${i}`, headers }))
  const running = autocannon({
    url: server.url,
    connections: CONNECTIONS,
    pipelining: 1,
    duration: seconds,
    requests,
  }) as Promise<autocannon.Result> & {
    stop?: () => void
  }
  return {
    done: running.then((r) => ({ total: r.requests.total, errors: r.errors + r.timeouts + r.non2xx })),
    stop: () => running.stop?.(),
  }
}

/**
 * wrk shoots with wrk (one thread, CONNECTIONS connections, the keys in
 * rotation through a Lua script) for `seconds`, rounded up: the window is
 * measured on the server, so the shot's own length need not be exact.
 */
function wrk(server: Server, seconds: number, secret: string | undefined): Running {
  const dir = mkdtempSync(join(tmpdir(), 'b3s-wrk-'))
  const script = join(dir, 'keys.lua')
  writeFileSync(
    script,
    `local i = 0\nrequest = function()\n  i = (i + 1) % ${KEYS}\n  return wrk.format("GET", "/_groupcache/g/k" .. i)\nend\n`,
  )
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${Math.ceil(seconds)}s`, '-s', script]
  if (secret !== undefined) args.push('-H', `Authorization: Bearer ${secret}`)
  args.push(server.url)
  const child = PIN
    ? spawn('taskset', ['-c', '1', 'wrk', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn('wrk', args, { stdio: ['ignore', 'pipe', 'inherit'] })
  track(child)
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
  })
  const done = new Promise<{ total: number; errors: number }>((resolve, reject) => {
    child.once('error', reject)
    // 'close', not 'exit': only then has all of wrk's output been read.
    child.once('close', (code) => {
      rmSync(dir, { recursive: true, force: true })
      if (code !== 0) return reject(new Error(`wrk exited with ${code}: ${out.slice(0, 500)}`))
      const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? Number.NaN)
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
      const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
      const socketErrors = socket === null ? 0 : socket.slice(1).reduce((sum, n) => sum + Number(n), 0)
      if (!Number.isFinite(total)) return reject(new Error(`wrk said: ${out.slice(0, 500)}`))
      resolve({ total, errors: non2xx + socketErrors })
    })
  })
  return { done, stop: () => child.kill('SIGKILL') }
}

/** answer fetches one key from a server and returns its status and body. */
async function answer(server: Server, secret?: string): Promise<{ status: number; body: Buffer }> {
  const res = await withTimeout(
    fetch(`${server.url}/_groupcache/g/k1`, secret === undefined ? {} : { headers: { authorization: `Bearer ${secret}` } }),
    10_000,
    `GET from ${server.kind}`,
  )
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) }
}

const ALL_KINDS: Kind[] = ['control', 'listen', 'express', 'fastify', 'koa', 'express-framework', 'fastify-framework', 'koa-framework']
// `--servers listen,koa` measures only those; the bare frameworks
// (express-bare, fastify-bare, koa-bare) only when named there.
const chosen = process.argv.includes('--servers') ? (process.argv[process.argv.indexOf('--servers') + 1] ?? '').split(',') : undefined
const KINDS: Kind[] = chosen === undefined ? ALL_KINDS : (chosen as Kind[])
const NAMES: Record<Kind, string> = {
  'node:http': 'bare node:http',
  control: 'bare node:http, a second one (control)',
  listen: 'gc.listen()',
  express: 'Express adapter',
  fastify: 'Fastify adapter',
  koa: 'Koa adapter',
  'express-framework': 'Express adapter, servePeersFirst: false',
  'fastify-framework': 'Fastify adapter, servePeersFirst: false',
  'koa-framework': 'Koa adapter, servePeersFirst: false',
  'express-bare': 'bare Express',
  'fastify-bare': 'bare Fastify',
  'koa-bare': 'bare Koa',
}
// What the last column compares a row with: an adapter with the one that
// leaves peers to the framework (what servePeersFirst gains), that one with
// the bare framework (what the adapter adds to the framework's own cost).
const FLOOR: Partial<Record<Kind, Kind>> = {
  express: 'express-framework',
  fastify: 'fastify-framework',
  koa: 'koa-framework',
  'express-framework': 'express-bare',
  'fastify-framework': 'fastify-bare',
  'koa-framework': 'koa-bare',
}
const TARGETED: Kind[] = ['listen', 'express', 'fastify', 'koa']

/** shuffled is a copy of `items` in a random order (Fisher–Yates). */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

/** Pair is one shot at a server and one at the baseline beside it, back to back. */
interface Pair {
  server: Shot
  bare: Shot
}

/** run measures B3s and prints its table. */
export async function run(): Promise<void> {
  // `--rounds 15` takes more rounds, for a busy machine.
  const asked = process.argv.includes('--rounds') ? Number(process.argv[process.argv.indexOf('--rounds') + 1]) : undefined
  const rounds = asked !== undefined && Number.isInteger(asked) && asked > 0 ? asked : quick ? 2 : 10
  // `--seconds 3`: longer windows. With wrk, a shot lasts whole seconds: the
  // default window fills one with the lead-in and the tail.
  const askedSeconds = process.argv.includes('--seconds') ? Number(process.argv[process.argv.indexOf('--seconds') + 1]) : undefined
  const seconds = askedSeconds !== undefined && askedSeconds > 0 ? askedSeconds : 1 - LEAD_IN_SECONDS - TAIL_SECONDS
  const secret = process.argv.includes('--no-secret') ? undefined : SECRET
  // `--seed 42` repeats a run's order of shots.
  const askedSeed = process.argv.includes('--seed') ? Number(process.argv[process.argv.indexOf('--seed') + 1]) : undefined
  const seed = askedSeed !== undefined && Number.isInteger(askedSeed) ? askedSeed : Math.floor(Math.random() * 2 ** 31)
  const problems: string[] = []
  const options = secret === undefined ? {} : { secret }
  const random = mulberry32(seed)
  const pairs = new Map<Kind, Pair[]>(KINDS.map((kind) => [kind, []]))
  // Every round starts every server afresh, in new processes: one process
  // of a server stays faster or slower than another of the very same
  // server for its whole life (measured: two bare node:http processes read
  // 0.76–1.13× of each other shot by shot, but a gc.listen() process
  // 1.17–1.26× of its baseline in one run and 1.34–2.08× in the next), so
  // a run that kept its processes measured their luck as much as their code.
  for (let r = 0; r < rounds; r++) {
    // The pairs of a round in a random order. Each pair is the only
    // server process there is while it runs: a contender and a bare
    // node:http server of its own, started afresh, warmed up together for
    // the JIT (not counted), shot together on one core (see
    // shootTogether), then stopped. With every pair of a round started
    // first and shot in turn, a pair shot late had sat idle beside fourteen
    // other processes, and the same Fastify adapter read 1.29–1.49× there
    // against 1.13× alone.
    for (const kind of shuffled(KINDS, random)) {
      const servers: Server[] = []
      try {
        const bare = await startServer('node:http', options)
        servers.push(bare)
        const server = await startServer(kind, options)
        servers.push(server)
        // Every server answers a key with the very bytes the baseline sends,
        // plus the key's minute_qps (field 2, tag 0x11, a 9-byte tail) that an
        // owner reports to peers.
        if (r === 0) {
          const got = await answer(server, secret)
          const sameFrame = got.body.subarray(0, bare.frame.length).equals(bare.frame)
          const tail = got.body.subarray(bare.frame.length)
          if (got.status !== 200 || !sameFrame || !(tail.length === 0 || (tail.length === 9 && tail[0] === 0x11)))
            problems.push(`${server.kind} answered ${got.status} with other bytes`)
        }
        await shootTogether([server, bare], WARM_UP_SECONDS, secret, 0)
        const [serverShot, bareShot] = await shootTogether([server, bare], seconds, secret)
        pairs.get(kind)?.push({ server: serverShot as Shot, bare: bareShot as Shot })
      } finally {
        await Promise.all(servers.map((s) => s.stop()))
      }
    }
  }
  {
    for (const [kind, list] of pairs) {
      for (const { server: shot, bare } of list) {
        if (shot.errors + bare.errors > 0) problems.push(`${kind}: ${shot.errors + bare.errors} errors or non-2xx answers`)
        // Every request was served from the cache: as many hits as requests, no load.
        if (
          shot.served !== undefined &&
          (shot.served.hits !== shot.served.requests || shot.served.loads > 0 || shot.served.requests < shot.total)
        ) {
          problems.push(
            `${kind}: ${shot.total} answers, ${shot.served.requests} served, ${shot.served.hits} hits, ${shot.served.loads} loads`,
          )
        }
      }
    }
    const rps = (s: Shot): number => s.rps
    const cpu = (s: Shot): number => s.cpuMicrosPerRequest
    const gc = (s: Shot): number => s.gcMicrosPerRequest
    const list = (kind: Kind): Pair[] => pairs.get(kind) as Pair[]
    const med = (kind: Kind, pick: (s: Shot) => number): number => median(list(kind).map((p) => pick(p.server)))
    // Each shot over the baseline's beside it, then the median.
    const ratios = (kind: Kind, pick: (s: Shot) => number): number[] => list(kind).map((p) => pick(p.server) / pick(p.bare))
    // The row compared with (FLOOR) has ratios to bare node:http too; one over the other compares the two.
    const overFloor = (kind: Kind, floor: Kind, pick: (s: Shot) => number): number =>
      median(ratios(kind, pick)) / median(ratios(floor, pick))
    const span = (values: number[]): string => `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}`
    const allBare = [...pairs.values()].flat().map((p) => p.bare)
    const rows = [
      [
        'bare node:http',
        fmtInt(median(allBare.map(rps))),
        '1×',
        median(allBare.map(cpu)).toFixed(1),
        '1×',
        '—',
        median(allBare.map(gc)).toFixed(1),
        '—',
        '—',
        '—',
      ],
      ...KINDS.map((kind) => {
        const rpsRatio = median(ratios(kind, rps))
        const cpuRatio = median(ratios(kind, cpu))
        const floor = FLOOR[kind] !== undefined && KINDS.includes(FLOOR[kind]) ? FLOOR[kind] : undefined
        const met = rpsRatio >= RPS_TARGET && cpuRatio <= CPU_TARGET && problems.length === 0
        return [
          NAMES[kind],
          fmtInt(med(kind, rps)),
          fmtRatio(rpsRatio),
          med(kind, cpu).toFixed(1),
          fmtRatio(cpuRatio),
          span(ratios(kind, cpu)),
          med(kind, gc).toFixed(1),
          floor === undefined ? '—' : `${fmtRatio(overFloor(kind, floor, rps))} / ${fmtRatio(overFloor(kind, floor, cpu))}`,
          // An adapter serving peers first runs gc.listen()'s code: this says what the framework's process still costs.
          kind !== 'listen' && KINDS.includes('listen')
            ? `${fmtRatio(overFloor(kind, 'listen', rps))} / ${fmtRatio(overFloor(kind, 'listen', cpu))}`
            : '—',
          TARGETED.includes(kind)
            ? record('B3s', `${NAMES[kind]} ≥ ${RPS_TARGET}× req/s, ≤ ${CPU_TARGET}× CPU/request of bare node:http`, met)
            : '—',
        ]
      }),
    ]
    printTable(
      `B3s — the peer endpoint answering a cached ${SIZE}-byte value, vs a bare node:http server answering the same bytes, shot together (${CLIENT}, separate processes)`,
      [
        'server',
        'req/s',
        'ratio to bare node:http',
        'server CPU µs / request',
        'CPU ratio',
        'CPU ratio, lowest–highest pair',
        'server GC µs / request',
        'req/s / CPU ratio to the row compared with',
        'req/s / CPU ratio to gc.listen()',
        'target',
      ],
      rows,
      [
        `${rounds} rounds (order seed ${seed}: \`--seed ${seed}\` repeats it), in each, every server in a random order is started afresh in a new process beside a bare node:http server of its own, the only two servers running, the pair warmed up together for ${WARM_UP_SECONDS} s (not counted) and then shot together, ${PIN ? 'both on CPU 0 and their clients on CPU 1 (taskset), so that the pair shares one core and whatever the machine does to it meanwhile' : 'unpinned'}; a shot is measured over a window of ${seconds} s that opens ${LEAD_IN_SECONDS} s into it and closes ${TAIL_SECONDS} s before its end, from the server's own counters (CPU, GC, answers), so that neither the connections' setup nor the first moments after idling count; the control row is a second bare node:http server measured as a contender, and shows how far apart the harness reads two identical servers; ${CLIENT === 'wrk' ? 'wrk (one thread)' : 'autocannon'}, ${CONNECTIONS} connections, no pipelining, GETs for ${KEYS} keys in rotation${secret === undefined ? '' : ', with the `Authorization` header of the nodes\u2019 `secret`'}; each server in a child process (\`node --import tsx test/bench/b3s-server.ts\`, importing the built package) on 127.0.0.1. A ratio is the median over a server\u2019s pairs of its shot over the baseline\u2019s; "to the row compared with" divides the row\u2019s ratio by that of the same adapter with \`servePeersFirst: false\` (for an adapter) or of the bare framework (for an adapter with \`servePeersFirst: false\`), when both were measured.`,
        'Server CPU: the process\u2019s CPU time (user + system, all threads, process.cpuUsage()) over a shot\u2019s answers; GC: the time of its garbage collections (perf_hooks) over them. The baseline answers every request with the same status, headers and protobuf bytes from a buffer, checking nothing. An adapter row is the adapter as configured by default (with a secret, peers are served in front of the framework: `servePeersFirst`); "servePeersFirst: false" leaves peers to the framework, as the adapters did before; "bare Express/Fastify/Koa" (only with `--servers`) answer from the framework\u2019s first middleware or a route, the least a framework path could cost.',
        problems.length === 0
          ? 'checked: every server answered a key with the same bytes as the baseline; every groupcache request of every shot was a cache hit on the owner (served = hits, no load); no errors or non-2xx answers.'
          : `**check failed**: ${problems.join('; ')}`,
      ],
    )
  }
}

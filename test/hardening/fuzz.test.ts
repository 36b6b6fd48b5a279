// Fuzzing the peer endpoint: tens of thousands of seeded, invalid requests
// against gc.listen() and the Express, Fastify and Koa adapters. Every one
// must get a short 4xx (or be dropped by Node's HTTP parser), none may reach
// the loader, memory must not grow, and the server must still serve a valid
// request at the end. Replay a run with FUZZ_SEED=<seed>.
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { test } from 'node:test'
import v8 from 'node:v8'
import vm from 'node:vm'
import { Pool } from 'undici'
import { decodeGetResponse } from '../../src/wire.js'
import { type Framework, startApp } from '../helpers/apps.js'
import {
  type Answer,
  describeRequest,
  FuzzGenerator,
  type FuzzRequest,
  GROUP,
  judge,
  MAX_KEY_BYTES,
  PARSER_KINDS,
  parseRawAnswers,
  type RawCase,
  rawCases,
  SECRET,
  VALID_AUTH,
} from './fuzz-requests.js'

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_cafe)
const REQUESTS = 20_000
const WARMUP = 2_000
const RAW = 300
const RAW_WARMUP = 40
const CONCURRENCY = 48
const RAW_CONCURRENCY = 16
/**
 * IO_TIMEOUT_MS bounds the wait for one answer, or for the server to close a
 * raw connection: far longer than either takes even on a busy machine, so
 * that only a server that never answers (or never closes) reaches it.
 */
const IO_TIMEOUT_MS = 30_000
/** MAX_HEAP_GROWTH bounds heapUsed growth between warm-up and the end of the run. */
const MAX_HEAP_GROWTH = 8 * 1024 * 1024
const TARGETS: Framework[] = ['listen', 'express', 'fastify', 'koa']
const SELF = 'http://127.0.0.1:1'
// Resets a client may see when a server refuses a request mid-send (a header
// section past the limit): Node answers and closes before reading it all.
const RESET_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'])

v8.setFlagsFromString('--expose_gc')
const forceGc = vm.runInNewContext('gc') as () => void

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    forceGc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return process.memoryUsage().heapUsed
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/**
 * Tally keeps what a run saw: counts per outcome, and the violations grouped
 * by what went wrong (digits folded), with the first request of each group.
 */
class Tally {
  readonly outcomes = new Map<string, number>()
  violations = 0
  readonly #groups = new Map<string, { count: number; first: string }>()

  count(outcome: string): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1)
  }

  violation(kind: string, wrong: string, request: string): void {
    this.violations++
    // The rule is what went wrong without the echoed body and numbers.
    const quote = wrong.indexOf('"')
    const rule = `${kind}: ${(quote === -1 ? wrong : wrong.slice(0, quote)).replace(/\d+/g, 'N').slice(0, 100)}`
    const group = this.#groups.get(rule)
    if (group !== undefined) group.count++
    else if (this.#groups.size < 40) this.#groups.set(rule, { count: 1, first: `${request} → ${wrong}` })
  }

  report(): string {
    return [...this.#groups.values()].map(({ count, first }) => `${count} × like ${first}`).join('\n')
  }
}

async function send(pool: Pool, req: FuzzRequest): Promise<Answer | Error> {
  try {
    const res = await pool.request({ method: req.method, path: req.path, headers: req.headers, body: req.body ?? null })
    const body = Buffer.from(await res.body.arrayBuffer())
    return {
      status: res.statusCode,
      contentType: first(res.headers['content-type']),
      protocol: first(res.headers['x-groupcache-protocol']),
      body,
    }
  } catch (err) {
    return err as Error
  }
}

/** fuzzHttp sends `n` generated requests, `CONCURRENCY` at a time. */
async function fuzzHttp(pool: Pool, gen: FuzzGenerator, n: number, fastify: boolean, tally: Tally): Promise<void> {
  let issued = 0
  const worker = async (): Promise<void> => {
    while (issued < n) {
      issued++
      const req = gen.next()
      const answer = await send(pool, req)
      if (answer instanceof Error) {
        const code = (answer as Error & { code?: string }).code ?? answer.name
        tally.count(`${req.kind} → ${code}`)
        if (!(PARSER_KINDS.has(req.kind) && RESET_CODES.has(code))) {
          tally.violation(req.kind, `${code}: ${answer.message}`, describeRequest(req))
        }
        continue
      }
      tally.count(`${req.kind} → ${answer.status}${answer.contentType?.startsWith('application/json') ? ' json' : ''}`)
      const wrong = judge(fastify, req, answer)
      if (wrong !== undefined) tally.violation(req.kind, wrong, describeRequest(req))
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
}

/** rawExchange writes `c.bytes` on a fresh socket, ends it as told, and collects what comes back. */
function rawExchange(port: number, c: RawCase): Promise<{ data: Buffer; timedOut: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    const chunks: Buffer[] = []
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      socket.destroy()
    }, IO_TIMEOUT_MS)
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', () => {}) // resets are part of the game
    socket.on('close', () => {
      clearTimeout(timer)
      resolve({ data: Buffer.concat(chunks), timedOut })
    })
    socket.on('connect', () => {
      if (c.close === 'end') socket.end(c.bytes)
      else socket.write(c.bytes, () => socket.resetAndDestroy())
    })
  })
}

async function fuzzRaw(port: number, cases: RawCase[], fastify: boolean, tally: Tally): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const c = cases[next++] as RawCase
      const { data, timedOut } = await rawExchange(port, c)
      const what = `[raw ${c.kind}, ${c.close}] ${JSON.stringify(c.bytes.toString('latin1').slice(0, 80))}`
      if (timedOut) {
        tally.count(`raw ${c.kind} → timeout`)
        tally.violation(`raw ${c.kind}`, `the server kept the connection open for ${IO_TIMEOUT_MS} ms`, what)
        continue
      }
      if (c.close === 'destroy' || data.length === 0) {
        tally.count(`raw ${c.kind} → ${data.length === 0 ? 'closed' : 'reset'}`)
        continue
      }
      const answers = parseRawAnswers(data)
      if (typeof answers === 'string') {
        tally.violation(`raw ${c.kind}`, answers, what)
        continue
      }
      for (const answer of answers) {
        tally.count(`raw ${c.kind} → ${answer.status}${answer.contentType?.startsWith('application/json') ? ' json' : ''}`)
        // Judged as a request that Node's parser refuses.
        const wrong = judge(fastify, { kind: 'token', method: 'GET', path: '', headers: {} }, answer)
        if (wrong !== undefined) tally.violation(`raw ${c.kind}`, wrong, what)
      }
    }
  }
  await Promise.all(Array.from({ length: RAW_CONCURRENCY }, worker))
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

for (const framework of TARGETS) {
  test(`${framework}: ${REQUESTS} invalid requests and ${RAW} raw byte streams get short 4xx answers, never reach the loader, and leak no memory`, async (t) => {
    let loads = 0
    const app = await startApp(framework, { self: SELF, peers: [SELF], secret: SECRET, maxKeyBytes: MAX_KEY_BYTES }, (gc) => {
      gc.newGroup<string>({
        name: GROUP,
        maxBytes: 1 << 20,
        codec: 'string',
        load: (key) => {
          loads++
          return `v:${key}`
        },
      })
    })
    const pool = new Pool(`http://127.0.0.1:${app.port}`, {
      connections: 16,
      pipelining: 1,
      connectTimeout: IO_TIMEOUT_MS,
      headersTimeout: IO_TIMEOUT_MS,
      bodyTimeout: IO_TIMEOUT_MS,
    })
    const fastify = framework === 'fastify'
    try {
      const started = performance.now()
      const gen = new FuzzGenerator(SEED)
      const tally = new Tally()
      await fuzzHttp(pool, gen, WARMUP, fastify, tally)
      await fuzzRaw(app.port, rawCases(SEED, RAW_WARMUP), fastify, tally)
      const heapBefore = await settledHeap()

      await fuzzHttp(pool, gen, REQUESTS, fastify, tally)
      await fuzzRaw(app.port, rawCases(SEED + 1, RAW), fastify, tally)
      const heapAfter = await settledHeap()
      const seconds = (performance.now() - started) / 1000

      const stats = app.groupcache.getGroup(GROUP)?.stats
      t.diagnostic(
        `${framework}: ${WARMUP + REQUESTS} HTTP requests + ${RAW_WARMUP + RAW} raw streams in ${seconds.toFixed(1)} s ` +
          `(${((WARMUP + REQUESTS) / seconds).toFixed(0)} req/s), seed ${SEED}, ${gen.discarded} valid draws discarded; ` +
          `heapUsed ${(heapBefore / 2 ** 20).toFixed(1)} → ${(heapAfter / 2 ** 20).toFixed(1)} MiB`,
      )
      t.diagnostic(
        [...tally.outcomes]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => `${k}: ${v}`)
          .join(' · '),
      )
      assert.equal(loads, 0, 'the loader never ran')
      assert.equal(stats?.serverRequests, 0, 'no invalid request reached the group')
      assert.equal(stats?.gets, 0)
      assert.ok(
        heapAfter - heapBefore < MAX_HEAP_GROWTH,
        `heapUsed grew by ${((heapAfter - heapBefore) / 2 ** 20).toFixed(1)} MiB (limit ${MAX_HEAP_GROWTH / 2 ** 20} MiB)`,
      )

      // Still alive and serving.
      const res = await pool.request({
        method: 'GET',
        path: `/_groupcache/${GROUP}/after-the-storm`,
        headers: { authorization: VALID_AUTH },
      })
      const body = new Uint8Array(await res.body.arrayBuffer())
      assert.equal(res.statusCode, 200)
      assert.equal(Buffer.from(decodeGetResponse(body).value).toString(), 'v:after-the-storm')
      assert.equal(loads, 1)

      assert.equal(
        tally.violations,
        0,
        `${tally.violations} answers broke the rules (seed ${SEED}), by kind of failure:\n${tally.report()}`,
      )
    } finally {
      await within(pool.close(), IO_TIMEOUT_MS, 'closing the client pool').catch(() => pool.destroy())
      await within(app.close(), IO_TIMEOUT_MS, `closing the ${framework} app`)
    }
  })
}

// A groupcache node in a child process, driven by its parent over IPC. Its
// loader answers `value-of:<key>` after `loadDelayMs`, and counts each run;
// keys starting with `fail:` make it throw, `missing:` throw NotFoundError,
// and so does every key while the parent has set `failing`.
// With `loadMany`, the group loads through a batch loader with the same
// answers (a `missing:` key is left out of its result).
import { Groupcache, GroupcacheError, NotFoundError, UnreachablePeersError } from '../../src/index.js'

export interface NodeConfig {
  self: string
  peers: string[]
  port: number
  replicas?: number
  secret?: string
  peerTimeoutMs?: number
  loadDelayMs?: number
  promote?: boolean
  /** numbered makes values `value-of:<key>#<n>`, n counting this node's loads of the key. */
  numbered?: boolean
  ttlMs?: number
  handoffMs?: number
  peekTimeoutMs?: number
  handoffBytes?: number
  /** maxBytes is the group's budget (default 1 MiB). */
  maxBytes?: number
  staleMs?: number
  refreshRetryMs?: number
  /** loadMany gives the group a batch loader (and no single-key loader). */
  loadMany?: boolean
  notFoundTtlMs?: number
  batchWindowMs?: number
  /** otel registers an OpenTelemetry SDK (spans in memory) and instruments the node with these options. */
  otel?: { includeKeys?: boolean; requireParentSpan?: boolean }
}

/** HammerReport is what `hammer` found: how gets went, by value and by source. */
export interface HammerReport {
  gets: number
  errors: string[]
  /** maxMs is the slowest get, in ms (reported, never asserted: wall clock). */
  maxMs: number
  values: Record<string, number>
  sources: Record<string, number>
}

export type Command =
  | { id: number; op: 'get'; key: string }
  | { id: number; op: 'getMany'; keys: string[] }
  | { id: number; op: 'getEach'; keys: string[] }
  | { id: number; op: 'stats' }
  | { id: number; op: 'owner'; key: string }
  | { id: number; op: 'setPeers'; peers: string[] }
  | { id: number; op: 'close'; handoff?: boolean }
  | { id: number; op: 'getAll'; keys: string[] }
  | { id: number; op: 'remove'; key: string }
  | { id: number; op: 'set'; key: string; value: string }
  | { id: number; op: 'clear' }
  | { id: number; op: 'hold'; key: string }
  | { id: number; op: 'release'; key: string }
  | { id: number; op: 'failing'; on: boolean }
  | { id: number; op: 'hammer'; key: string; durationMs: number; intervalMs: number }
  | { id: number; op: 'tracedGet'; key: string }
  | { id: number; op: 'tracedGetMany'; keys: string[] }
  | { id: number; op: 'spans' }

const config = JSON.parse(process.argv[2] ?? '{}') as NodeConfig
const send = (message: unknown): void => {
  process.send?.(message)
}
const loads = new Map<string, number>()
// calls counts loader invocations: one per key with `load`, one per batch with `loadMany`.
let calls = 0
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
// A held key's loads wait until the parent releases it, to stage races exactly.
const gates = new Map<string, { promise: Promise<void>; open: () => void }>()
let failing = false

const gc = new Groupcache({
  self: config.self,
  peers: config.peers,
  replicas: config.replicas,
  secret: config.secret,
  peerTimeoutMs: config.peerTimeoutMs,
  handoffMs: config.handoffMs,
  peekTimeoutMs: config.peekTimeoutMs,
  handoffBytes: config.handoffBytes,
})
// The SDK first, then instrument(), as an app's start-up does.
const exporter = config.otel === undefined ? undefined : (await import('./otel.js')).registerTracing()
if (config.otel !== undefined) (await import('../../adapters/otel.js')).instrument(gc, config.otel)
const group = gc.newGroup<string>({
  name: 'test',
  maxBytes: config.maxBytes ?? 1 << 20,
  codec: 'string',
  promote: config.promote,
  ttlMs: config.ttlMs,
  staleMs: config.staleMs,
  refreshRetryMs: config.refreshRetryMs,
  notFoundTtlMs: config.notFoundTtlMs,
  batchWindowMs: config.batchWindowMs,
  ...(config.loadMany === true
    ? {
        loadMany: async (keys: readonly string[]) => {
          calls++
          const values = await Promise.all(keys.map((key) => produce(key).catch((err: unknown) => err)))
          const found = new Map<string, string>()
          keys.forEach((key, i) => {
            const v = values[i]
            if (v instanceof NotFoundError) return
            if (v instanceof Error) throw v
            found.set(key, v as string)
          })
          return found
        },
      }
    : {
        load: (key: string) => {
          calls++
          return produce(key)
        },
      }),
})

async function produce(key: string): Promise<string> {
  const n = (loads.get(key) ?? 0) + 1
  loads.set(key, n)
  await sleep(config.loadDelayMs ?? 0)
  await gates.get(key)?.promise
  if (failing || key.startsWith('fail:')) throw new Error(`loader failed for ${key} on ${config.self}`)
  if (key.startsWith('missing:')) throw new NotFoundError(`no such thing: ${key}`)
  return config.numbered ? `value-of:${key}#${n}` : `value-of:${key}`
}

/** outcome is a get's value, or its error's code, as it travels over IPC. */
function outcome(get: Promise<string>): Promise<{ value: string } | { code: string | undefined }> {
  return get.then(
    (value) => ({ value }),
    (err: unknown) => ({ code: err instanceof GroupcacheError ? err.code : undefined }),
  )
}

async function run(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case 'get':
      return group.get(cmd.key)
    case 'getMany':
      return [...(await group.getMany(cmd.keys))]
    case 'getEach':
      return Promise.all(cmd.keys.map((key) => outcome(group.get(key))))
    case 'stats':
      return { stats: group.stats, main: group.cacheStats('main'), hot: group.cacheStats('hot'), loads: Object.fromEntries(loads), calls }
    case 'owner':
      return gc.ownerOf(cmd.key)
    case 'setPeers':
      gc.setPeers(cmd.peers)
      return null
    case 'remove':
      return group.remove(cmd.key)
    case 'set':
      return group.set(cmd.key, cmd.value)
    case 'clear':
      return group.clear()
    case 'hold': {
      let open!: () => void
      const promise = new Promise<void>((resolve) => (open = resolve))
      gates.set(cmd.key, { promise, open })
      return null
    }
    case 'release':
      gates.get(cmd.key)?.open()
      gates.delete(cmd.key)
      return null
    case 'getAll': {
      // Gets every key, 32 at a time; answers how many failed or came back wrong.
      let failed = 0
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < cmd.keys.length) {
          const key = cmd.keys[next++] as string
          try {
            if ((await group.get(key)) !== `value-of:${key}`) failed++
          } catch {
            failed++
          }
        }
      }
      await Promise.all(Array.from({ length: 32 }, worker))
      return failed
    }
    case 'failing':
      failing = cmd.on
      return null
    case 'hammer':
      return hammer(cmd.key, cmd.durationMs, cmd.intervalMs)
    case 'tracedGet':
    case 'tracedGetMany': {
      const { trace } = await import('@opentelemetry/api')
      return trace.getTracer('test').startActiveSpan('request', async (span) => {
        try {
          return cmd.op === 'tracedGet' ? await group.get(cmd.key) : [...(await group.getMany(cmd.keys))]
        } finally {
          span.end()
        }
      })
    }
    case 'spans':
      return exporter === undefined ? [] : (await import('./otel.js')).records(exporter)
    case 'close':
      await gc.close(cmd.handoff === false ? { handoff: false } : {})
      setImmediate(() => process.exit(0))
      return null
  }
}

/**
 * hammer starts a get of `key` every `intervalMs` for `durationMs`, each on
 * its own (a slow get does not hold up the next), and reports on them all.
 */
async function hammer(key: string, durationMs: number, intervalMs: number): Promise<HammerReport> {
  const report: HammerReport = { gets: 0, errors: [], maxMs: 0, values: {}, sources: {} }
  const gets: Array<Promise<void>> = []
  const end = performance.now() + durationMs
  while (performance.now() < end) {
    const start = performance.now()
    gets.push(
      group.getWithSource(key).then(
        ({ value, source }) => {
          report.maxMs = Math.max(report.maxMs, performance.now() - start)
          report.values[value] = (report.values[value] ?? 0) + 1
          report.sources[source] = (report.sources[source] ?? 0) + 1
        },
        (err: unknown) => {
          report.errors.push(err instanceof Error ? err.message : String(err))
        },
      ),
    )
    report.gets++
    await sleep(intervalMs)
  }
  await Promise.all(gets)
  return report
}

process.on('message', (cmd: Command) => {
  run(cmd).then(
    (value) => send({ id: cmd.id, ok: true, value }),
    (err: unknown) =>
      send({
        id: cmd.id,
        ok: false,
        error: {
          name: err instanceof Error ? err.name : 'Error',
          peers: err instanceof UnreachablePeersError ? err.peers : undefined,
          code: err instanceof GroupcacheError ? err.code : undefined,
          message: err instanceof Error ? err.message : String(err),
        },
      }),
  )
})
process.on('disconnect', () => process.exit(0))

await gc.listen({ port: config.port, host: '127.0.0.1' })
send({ ready: true })

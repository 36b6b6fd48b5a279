// One contender of B3c in a child process of its own (see b3-peer-fetch.ts):
// a bare node:http server answering every request with one GetResponse, and
// a client asking it, either undici's `pool.request()` (the baseline) or a
// non-owner's `group.get()` whose owner is that server. Driven over IPC:
// `{ op: 'run', concurrency, seconds }` answers `{ rate, cpuUs }`.
import { createServer } from 'node:http'
import { Groupcache } from 'groupcache'
import { Pool } from 'undici'
import { encodeGetResponse } from '../../dist/src/wire.js'
import { reservePorts, urlsFor } from '../helpers/ports.js'
import { closeServer, listenOn, requestsPerSecond } from './lib.js'

/** ClientConfig is what the parent passes as argv[2] (JSON). */
export interface ClientConfig {
  contender: 'baseline' | 'group.get'
  /** size is the value's length in bytes. */
  size: number
  /** keys is how many keys `group.get` rotates over. */
  keys: number
}

/** ClientCommand is one IPC request from the parent; the answer carries its id. */
export type ClientCommand =
  | { id: number; op: 'run'; concurrency: number; seconds: number }
  | { id: number; op: 'stats' }
  | { id: number; op: 'close' }

/** RunResult is what `run` answers: requests per second, and this process's CPU time per request in µs. */
export interface RunResult {
  rate: number
  cpuUs: number
}

const config = JSON.parse(process.argv[2] ?? '{}') as ClientConfig
const payload = encodeGetResponse({ value: Buffer.alloc(config.size, 7) })
const bare = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/x-protobuf', 'x-groupcache-protocol': '1', 'content-length': payload.length })
  res.end(payload)
})
const [barePort, fetcherPort] = (await reservePorts(2)) as [number, number]
const [bareUrl, fetcherUrl] = urlsFor([barePort, fetcherPort]) as [string, string]
await listenOn(bare, barePort)
const pool = new Pool(bareUrl, { connections: 32 })
const fetcher = new Groupcache({ self: fetcherUrl, peers: [fetcherUrl, bareUrl] })
const group = fetcher.newGroup<Uint8Array>({
  name: 'g',
  maxBytes: 256 << 20,
  codec: 'bytes',
  promote: false,
  load: () => {
    throw new Error('the owner answers every key')
  },
})
const keys: string[] = []
for (let i = 0; keys.length < config.keys && i < config.keys * 100; i++) if (fetcher.ownerOf(`k${i}`) === bareUrl) keys.push(`k${i}`)
let k = 0
const op: () => Promise<unknown> =
  config.contender === 'baseline'
    ? async () => {
        const res = await pool.request({ path: '/_groupcache/g/x', method: 'GET' })
        await res.body.arrayBuffer()
      }
    : () => group.get(keys[k++ % keys.length] as string)

async function run(concurrency: number, seconds: number): Promise<RunResult> {
  let done = 0
  const counted = (): Promise<unknown> => op().then(() => done++)
  const before = process.cpuUsage()
  const rate = await requestsPerSecond(counted, concurrency, seconds)
  const used = process.cpuUsage(before)
  return { rate, cpuUs: (used.user + used.system) / done }
}

async function handle(cmd: ClientCommand): Promise<unknown> {
  switch (cmd.op) {
    case 'run':
      return run(cmd.concurrency, cmd.seconds)
    case 'stats':
      return group.stats
    case 'close':
      await Promise.race([
        Promise.all([fetcher.close(), pool.close(), closeServer(bare)]),
        new Promise((resolve) => setTimeout(resolve, 2_000)),
      ])
      setImmediate(() => process.exit(0))
      return null
  }
}

process.on('message', (cmd: ClientCommand) => {
  handle(cmd).then(
    (value) => process.send?.({ id: cmd.id, ok: true, value }),
    (err: unknown) => process.send?.({ id: cmd.id, ok: false, error: String((err as Error)?.stack ?? err) }),
  )
})
// The parent going away (even killed) must not leave this process behind.
process.on('disconnect', () => process.exit(0))
process.send?.({ ready: true })

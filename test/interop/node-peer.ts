// A Node member that serves peers with `gc.listen()`, driven by its parent
// over IPC: { id, op: 'get' | 'remove', key } | { id, op: 'set', key, value }
// | { id, op: 'clear' } | { id, op: 'owners', keys } | { id, op: 'stats' }
// | { id, op: 'getMany', keys } (answered as [key, value] pairs, or an error outcome)
// | { id, op: 'traced', key } (a get with groupcache/otel on; answers the
// outcome and the spans), each answered { id, ok: true, value } (a failed
// get is an outcome too).
// It exits on SIGTERM (after closing) and when the parent goes away.
import { Groupcache } from '../../src/index.js'
import { PEER_TIMEOUT_MS } from '../helpers/wait.js'
import { interopGroup, outcome, readConfig } from './node-group.js'

type Command =
  | { id: number; op: 'get'; key: string }
  | { id: number; op: 'owners'; keys: string[] }
  | { id: number; op: 'stats' }
  | { id: number; op: 'remove'; key: string }
  | { id: number; op: 'set'; key: string; value: string }
  | { id: number; op: 'clear' }
  | { id: number; op: 'getMany'; keys: string[] }
  | { id: number; op: 'traced'; key: string }

const config = readConfig()
// Go cannot send a secret: this cluster runs without one, and opts into changes.
const gc = new Groupcache({
  self: config.self,
  peers: config.peers,
  peerTimeoutMs: PEER_TIMEOUT_MS,
  dangerouslyAllowUnauthenticatedChanges: true,
})
const { group, snapshot } = interopGroup(gc)

async function run(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case 'get':
      return outcome(group.get(cmd.key))
    case 'owners':
      return cmd.keys.map((key) => gc.ownerOf(key))
    case 'stats':
      return snapshot()
    case 'remove':
      return outcome(group.remove(cmd.key).then(() => 'removed'))
    case 'set':
      return outcome(group.set(cmd.key, cmd.value).then(() => 'set'))
    case 'clear':
      return outcome(group.clear().then(() => 'cleared'))
    case 'getMany':
      return group.getMany(cmd.keys).then(
        (found) => [...found],
        (err: unknown) => outcome(Promise.reject(err)),
      )
    case 'traced':
      return traced(cmd.key)
  }
}

/** traced gets `key` with an OpenTelemetry SDK registered and this node instrumented, every get a trace of its own. */
async function traced(key: string): Promise<unknown> {
  const { records, registerTracing } = await import('../helpers/otel.js')
  const { instrument } = await import('../../adapters/otel.js')
  const exporter = registerTracing()
  const otel = instrument(gc, { requireParentSpan: false, metrics: false })
  try {
    return { outcome: await outcome(group.get(key)), spans: records(exporter) }
  } finally {
    otel.uninstrument()
  }
}

process.on('message', (cmd: Command) => {
  void run(cmd).then((value) => process.send?.({ id: cmd.id, ok: true, value }))
})
process.on('disconnect', () => process.exit(0))
process.once('SIGTERM', () => {
  void gc.close().finally(() => process.exit(0))
})

await gc.listen({ host: '127.0.0.1', port: config.port })
process.send?.({ ready: true })

// A Node member that serves peers with `gc.listen()`, driven by its parent
// over IPC: { id, op: 'get' | 'remove', key } | { id, op: 'set', key, value }
// | { id, op: 'clear' } | { id, op: 'owners', keys } | { id, op: 'stats' }
// | { id, op: 'getMany', keys } (answered as [key, value] pairs, or an error outcome).
// It exits on SIGTERM (after closing) and when the parent goes away.
import { Groupcache } from '../../src/index.js'
import { interopGroup, outcome, readConfig } from './node-group.js'

type Command =
  | { id: number; op: 'get'; key: string }
  | { id: number; op: 'owners'; keys: string[] }
  | { id: number; op: 'stats' }
  | { id: number; op: 'remove'; key: string }
  | { id: number; op: 'set'; key: string; value: string }
  | { id: number; op: 'clear' }
  | { id: number; op: 'getMany'; keys: string[] }

const config = readConfig()
const gc = new Groupcache({ self: config.self, peers: config.peers })
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
  }
}

process.on('message', (cmd: Command) => {
  void run(cmd).then((value) => process.send?.({ id: cmd.id, value }))
})
process.on('disconnect', () => process.exit(0))
process.once('SIGTERM', () => {
  void gc.close().finally(() => process.exit(0))
})

await gc.listen({ host: '127.0.0.1', port: config.port })
process.send?.({ ready: true })

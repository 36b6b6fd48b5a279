// A Node member that is a Fastify app: the adapter serves peers on the app's
// own port, and two routes of the app drive it: POST /get { key } answers
// the get's outcome, POST /owners [keys] their owners, GET /stats the
// group's counters. Says { ready } over IPC once listening; exits on
// SIGTERM (after closing) and when the parent goes away.
import Fastify from 'fastify'
import groupcache from '../../adapters/fastify.js'
import { PEER_TIMEOUT_MS } from '../helpers/wait.js'
import { interopGroup, outcome, readConfig } from './node-group.js'

const config = readConfig()
const app = Fastify()
// Go cannot send a secret: this cluster runs without one, and opts into changes.
await app.register(groupcache, {
  self: config.self,
  peers: config.peers,
  peerTimeoutMs: PEER_TIMEOUT_MS,
  dangerouslyAllowUnauthenticatedChanges: true,
})
const { group, snapshot } = interopGroup(app.groupcache)

app.post<{ Body: { key: string } }>('/get', async (request) => outcome(group.get(request.body.key)))
app.post<{ Body: string[] }>('/owners', async (request) => request.body.map((key) => app.groupcache.ownerOf(key)))
app.get('/stats', async () => snapshot())

process.on('disconnect', () => process.exit(0))
process.once('SIGTERM', () => {
  void app.close().finally(() => process.exit(0))
})

await app.listen({ host: '127.0.0.1', port: config.port })
process.send?.({ ready: true })

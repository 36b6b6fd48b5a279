// A Fastify replica: `PORT=3002 SELF=http://127.0.0.1:3002 PEERS=… npx tsx examples/fastify.ts`
import Fastify from 'fastify'
import groupcache from 'groupcache/fastify'
import { dbCalls, findUser, renderReport, replicaConfig, reportRenders } from './slow-db.js'

const { port, host, ...options } = replicaConfig()
const app = Fastify()
await app.register(groupcache, options) // serves peers under /_groupcache/, decorates app.groupcache
const users = app.groupcache.newGroup({
  name: 'users',
  maxBytes: 16 * 1024 * 1024,
  load: (id, { signal }) => findUser(id, `fastify ${options.self}`, signal),
})

app.get<{ Params: { id: string } }>('/users/:id', async (request) => users.get(request.params.id))
// A whole response, cached across the cluster: rendered once per id, on its owner.
app.get<{ Params: { id: string } }>('/reports/:id', { config: { groupcache: { ttlMs: 30_000 } } }, async (request) =>
  renderReport(request.params.id, `fastify ${options.self}`),
)
app.get('/stats', async () => ({
  framework: 'fastify',
  dbCalls: dbCalls(),
  renders: reportRenders(),
  ...users.stats,
  hotItems: users.cacheStats('hot').items,
}))

await app.listen({ port, host })
console.log(`fastify replica listening on ${options.self}`)
process.once('SIGTERM', () => void app.close()) // closes groupcache too

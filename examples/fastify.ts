// A Fastify replica: `PORT=3002 SELF=http://127.0.0.1:3002 PEERS=… npx tsx examples/fastify.ts`
import Fastify from 'fastify'
import groupcache from 'groupcache/fastify'
import { dbCalls, dbQueries, findUser, findUsers, listIds, renderReport, replicaConfig, reportRenders } from './slow-db.js'

const { port, host, ...options } = replicaConfig()
const app = Fastify()
await app.register(groupcache, options) // serves peers under /_groupcache/, decorates app.groupcache
const users = app.groupcache.newGroup({
  name: 'users',
  maxBytes: 16 * 1024 * 1024,
  load: (id, { signal }) => findUser(id, `fastify ${options.self}`, signal),
  // Misses that arrive together (a getMany, a peer's batch) cost one query.
  loadMany: (ids, { signal }) => findUsers(ids, `fastify ${options.self}`, signal),
  notFoundTtlMs: 10_000, // an id that does not exist is not looked up again for 10 s
})

app.get<{ Params: { id: string } }>('/users/:id', async (request) => users.get(request.params.id))
// A list: one getMany, one request per owner; ids that do not exist are left out.
app.get<{ Querystring: { ids?: string } }>('/users', async (request) => [...(await users.getMany(listIds(request.query.ids))).values()])
// A whole response, cached across the cluster: rendered once per id, on its owner.
app.get<{ Params: { id: string } }>('/reports/:id', { config: { groupcache: { ttlMs: 30_000 } } }, async (request) =>
  renderReport(request.params.id, `fastify ${options.self}`),
)
app.get('/stats', async () => ({
  framework: 'fastify',
  dbCalls: dbCalls(),
  dbQueries: dbQueries(),
  renders: reportRenders(),
  ...users.stats,
  hotItems: users.cacheStats('hot').items,
}))

await app.listen({ port, host })
console.log(`fastify replica listening on ${options.self}`)
process.once('SIGTERM', () => void app.close()) // closes groupcache too

// A Koa replica: `PORT=3003 SELF=http://127.0.0.1:3003 PEERS=… npx tsx examples/koa.ts`
import Router from '@koa/router'
import { groupcache } from 'groupcache/koa'
import Koa from 'koa'
import { dbCalls, dbQueries, findUser, findUsers, listIds, renderReport, replicaConfig, reportRenders } from './slow-db.js'

const { port, host, ...options } = replicaConfig()
const gc = groupcache(options)
const users = gc.groupcache.newGroup({
  name: 'users',
  maxBytes: 16 * 1024 * 1024,
  load: (id, { signal }) => findUser(id, `koa ${options.self}`, signal),
  // Misses that arrive together (a getMany, a peer's batch) cost one query.
  loadMany: (ids, { signal }) => findUsers(ids, `koa ${options.self}`, signal),
  notFoundTtlMs: 10_000, // an id that does not exist is not looked up again for 10 s
})

const router = new Router()
// A list: one getMany, one request per owner; ids that do not exist are left out.
router.get('/users', async (ctx) => {
  ctx.body = [...(await users.getMany(listIds(ctx.query.ids))).values()]
})
router.get('/users/:id', async (ctx) => {
  ctx.body = await users.get(ctx.params.id as string)
})
// A whole response, cached across the cluster: rendered once per id, on its owner.
router.get('/reports/:id', gc.cacheRoute({ ttlMs: 30_000 }), async (ctx) => {
  ctx.body = await renderReport(ctx.params.id as string, `koa ${options.self}`)
})
router.get('/stats', (ctx) => {
  ctx.body = {
    framework: 'koa',
    dbCalls: dbCalls(),
    dbQueries: dbQueries(),
    renders: reportRenders(),
    ...users.stats,
    hotItems: users.cacheStats('hot').items,
  }
})

const app = new Koa()
app.use(gc) // serves peers under /_groupcache/ and sets ctx.groupcache
app.use(router.routes())
const server = app.listen(port, host, () => console.log(`koa replica listening on ${options.self}`))
process.once('SIGTERM', () => server.close()) // closing the server closes groupcache too

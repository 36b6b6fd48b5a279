// A Koa replica: `PORT=3003 SELF=http://127.0.0.1:3003 PEERS=… npx tsx examples/koa.ts`
import Router from '@koa/router'
import Koa from 'koa'
import { groupcache } from 'groupcache/koa'
import { dbCalls, findUser, renderReport, replicaConfig, reportRenders } from './slow-db.js'

const { port, host, ...options } = replicaConfig()
const gc = groupcache(options)
const users = gc.groupcache.newGroup({
  name: 'users',
  maxBytes: 16 * 1024 * 1024,
  load: (id, { signal }) => findUser(id, `koa ${options.self}`, signal),
})

const router = new Router()
router.get('/users/:id', async (ctx) => {
  ctx.body = await users.get(ctx.params.id as string)
})
// A whole response, cached across the cluster: rendered once per id, on its owner.
router.get('/reports/:id', gc.cacheRoute({ ttlMs: 30_000 }), async (ctx) => {
  ctx.body = await renderReport(ctx.params.id as string, `koa ${options.self}`)
})
router.get('/stats', (ctx) => {
  ctx.body = { framework: 'koa', dbCalls: dbCalls(), renders: reportRenders(), ...users.stats, hotItems: users.cacheStats('hot').items }
})

const app = new Koa()
app.use(gc) // serves peers under /_groupcache/ and sets ctx.groupcache
app.use(router.routes())
const server = app.listen(port, host, () => console.log(`koa replica listening on ${options.self}`))
process.once('SIGTERM', () => server.close()) // closing the server closes groupcache too

// An Express replica: `PORT=3001 SELF=http://127.0.0.1:3001 PEERS=… npx tsx examples/express.ts`
import express from 'express'
import { groupcache } from 'groupcache/express'
import { dbCalls, dbQueries, findUser, findUsers, listIds, renderReport, replicaConfig, reportRenders } from './slow-db.js'

const { port, host, ...options } = replicaConfig()
const gc = groupcache(options)
const users = gc.groupcache.newGroup({
  name: 'users',
  maxBytes: 16 * 1024 * 1024,
  load: (id, { signal }) => findUser(id, `express ${options.self}`, signal),
  // Misses that arrive together (a getMany, a peer's batch) cost one query.
  loadMany: (ids, { signal }) => findUsers(ids, `express ${options.self}`, signal),
  notFoundTtlMs: 10_000, // an id that does not exist is not looked up again for 10 s
})

const app = express()
app.use(gc) // serves peers under /_groupcache/ and sets req.groupcache
app.get('/users/:id', async (req, res, next) => {
  try {
    res.json(await users.get(req.params.id))
  } catch (err) {
    next(err)
  }
})
// A list: one getMany, one request per owner; ids that do not exist are left out.
app.get('/users', async (req, res, next) => {
  try {
    res.json([...(await users.getMany(listIds(req.query.ids))).values()])
  } catch (err) {
    next(err)
  }
})
// A whole response, cached across the cluster: rendered once per id, on its owner.
app.get('/reports/:id', gc.cacheRoute({ ttlMs: 30_000 }), async (req, res) => {
  res.json(await renderReport(String(req.params.id), `express ${options.self}`))
})
app.get('/stats', (_req, res) => {
  res.json({
    framework: 'express',
    dbCalls: dbCalls(),
    dbQueries: dbQueries(),
    renders: reportRenders(),
    ...users.stats,
    hotItems: users.cacheStats('hot').items,
  })
})

const server = app.listen(port, host, () => console.log(`express replica listening on ${options.self}`))
process.once('SIGTERM', () => server.close()) // closing the server closes groupcache too

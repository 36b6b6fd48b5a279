// A CommonJS TypeScript app: no "type": "module" in its package.json, and
// "module": "node16" (or "nodenext") in its tsconfig, so its imports compile
// to require(). groupcache is ESM; its `require` entry points hand the same
// module over through Node's require(esm) (Node >= 20.19), typed as CommonJS.
// Run it: `npm run build && PORT=3001 npx tsx examples/commonjs.cts`.
// test/package.test.ts compiles it against the packed package, as such a
// project would, with "module" "node16" and then "nodenext", and runs it.
import express from 'express'
import { Groupcache, NotFoundError } from 'groupcache'
import groupcache from 'groupcache/express'

const port = Number(process.env.PORT ?? 3000)
const self = process.env.SELF ?? `http://127.0.0.1:${port}`
const secret = process.env.GROUPCACHE_SECRET
const gc = new Groupcache({ self, peers: (process.env.PEERS ?? self).split(','), ...(secret === undefined ? {} : { secret }) })

let loads = 0
const squares = gc.newGroup<number>({
  name: 'squares',
  maxBytes: 1024 * 1024,
  codec: 'json',
  load: (key) => {
    loads++
    if (!/^\d{1,6}$/.test(key)) throw new NotFoundError(`not a small number: ${key}`)
    return Number(key) ** 2
  },
})

const app = express()
app.use(groupcache(gc)) // serves peers under /_groupcache/; gc stays ours to close
app.get('/squares/:n', async (req, res) => {
  try {
    res.json({ square: await squares.get(req.params.n), loads })
  } catch (err) {
    res.status(err instanceof NotFoundError ? 404 : 500).json({ error: (err as Error).message })
  }
})

const server = app.listen(port, process.env.HOST ?? '127.0.0.1', () => console.log(`commonjs replica listening on ${self}`))
process.once('SIGTERM', () => server.close(() => void gc.close()))

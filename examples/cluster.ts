// Several processes on one host with node:cluster: `WORKERS=4 PORT=3000 npx tsx examples/cluster.ts`
//
// The workers share the public PORT (the primary hands connections out), so a
// request for a key may land on any of them. Each worker is a groupcache peer
// on a port of its own (BASE_PEER_PORT + i, or free ports the primary picks),
// served by `gc.listen()` on 127.0.0.1, and all workers list all peer URLs.
// A key is loaded once on the whole host, however many workers are asked.
import cluster, { type Worker } from 'node:cluster'
import { createServer as createHttpServer, type ServerResponse } from 'node:http'
import { type AddressInfo, createServer as createNetServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Groupcache } from 'groupcache'

const HOST = process.env.HOST ?? '127.0.0.1'
const PORT = Number(process.env.PORT ?? 3000)
const STOP_GRACE_MS = 5_000

if (cluster.isPrimary) await primary()
else await worker()

/** reservePorts holds `n` free ports on 127.0.0.1 open at once, so they are distinct, then frees them for the workers. */
async function reservePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => {
      const server = createNetServer()
      return new Promise<typeof server>((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, '127.0.0.1', () => resolve(server))
      })
    }),
  )
  const ports = servers.map((server) => (server.address() as AddressInfo).port)
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

async function primary(): Promise<void> {
  const count = Number(process.env.WORKERS ?? 2)
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`expected WORKERS to be a positive integer, got ${process.env.WORKERS}`)
  const base = process.env.BASE_PEER_PORT
  const peerPorts = base === undefined ? await reservePorts(count) : Array.from({ length: count }, (_, i) => Number(base) + i)
  const peers = peerPorts.map((port) => `http://127.0.0.1:${port}`)
  const ready = new Set<number>()
  let announced = false
  let stopping = false

  const start = (index: number): void => {
    const env = { WORKER_INDEX: String(index), PEER_PORT: String(peerPorts[index]), PEERS: peers.join(',') }
    const child: Worker = cluster.fork(env)
    child.on('message', (msg: { ready?: boolean }) => {
      if (!msg.ready) return
      ready.add(index)
      if (!announced && ready.size === count) {
        announced = true
        console.log(`cluster ready: ${count} workers on http://${HOST}:${PORT}`)
      }
    })
    child.on('exit', (code, signal) => {
      if (stopping) return
      if (!ready.has(index)) {
        // A worker that cannot start (its port taken, say) would fail again.
        console.error(`worker ${index} failed to start (${signal ?? code}); stopping`)
        void stop(1)
        return
      }
      // Same peer port, same URL: the other workers' rings need no change.
      console.error(`worker ${index} exited (${signal ?? code}); restarting it`)
      ready.delete(index)
      start(index)
    })
  }

  const stop = async (exitCode: number): Promise<void> => {
    if (stopping) return
    stopping = true
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined)
    await Promise.all(
      workers.map(async (w) => {
        if (w.process.exitCode !== null || w.process.signalCode !== null) return
        const exited = new Promise((resolve) => w.process.once('exit', resolve))
        w.process.kill('SIGTERM')
        const timer = setTimeout(() => w.process.kill('SIGKILL'), STOP_GRACE_MS)
        await exited
        clearTimeout(timer)
      }),
    )
    process.exit(exitCode)
  }
  process.on('SIGTERM', () => void stop(0))
  process.on('SIGINT', () => void stop(0))

  for (let i = 0; i < count; i++) start(i)
}

async function worker(): Promise<void> {
  const index = Number(process.env.WORKER_INDEX)
  const peerPort = Number(process.env.PEER_PORT)
  const peers = (process.env.PEERS ?? '').split(',')
  const self = `http://127.0.0.1:${peerPort}`
  const delayMs = Number(process.env.DB_DELAY_MS ?? 100)
  const id = cluster.worker?.id ?? 0

  const gc = new Groupcache({ self, peers, secret: process.env.GROUPCACHE_SECRET })
  let loaderRuns = 0
  const users = gc.newGroup({
    name: 'users',
    maxBytes: 16 * 1024 * 1024,
    // The slow part: runs once per id on the whole host, on the id's owner.
    load: async (userId, { signal }) => {
      loaderRuns++
      await sleep(delayMs, undefined, { signal })
      return { id: userId, name: `User ${userId}`, loadedBy: `worker ${index}` }
    },
  })
  await gc.listen({ port: peerPort, host: '127.0.0.1' })

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  }
  const server = createHttpServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    const match = /^\/users\/([^/]+)$/.exec(path)
    if (req.method === 'GET' && match?.[1] !== undefined) {
      let userId: string
      try {
        userId = decodeURIComponent(match[1])
      } catch {
        return send(res, 400, { error: 'malformed id' })
      }
      users.get(userId).then(
        (user) => send(res, 200, user),
        (err: Error) => send(res, 500, { error: err.message }),
      )
      return
    }
    if (req.method === 'GET' && path === '/stats') {
      return send(res, 200, { worker: id, index, pid: process.pid, self, loaderRuns, group: users.stats })
    }
    send(res, 404, { error: 'not found' })
  })
  await new Promise<void>((resolve) => server.listen(PORT, HOST, resolve))
  console.log(`worker ${index} (id ${id}, pid ${process.pid}) ready: peers reach it at ${self}`)
  process.send?.({ ready: true })

  let closing = false
  const close = async (): Promise<void> => {
    if (closing) return
    closing = true
    setTimeout(() => process.exit(1), STOP_GRACE_MS - 1_000).unref()
    const closed = new Promise((resolve) => server.close(resolve))
    server.closeIdleConnections()
    await Promise.all([closed, gc.close()])
    process.exit(0)
  }
  process.on('SIGTERM', () => void close())
  process.on('SIGINT', () => void close()) // Ctrl-C reaches every process of the group
  process.on('disconnect', () => void close()) // the primary is gone
}

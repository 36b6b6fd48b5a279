// examples/cluster.ts runs as-is: node:cluster workers share one public port,
// each is a groupcache peer on a port of its own, and a key loads once per host.
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { after, before, describe, test } from 'node:test'
import { type Child, startChild } from './helpers/child.js'
import { reservePorts } from './helpers/ports.js'
import { ANSWER_TIMEOUT_MS, waitFor } from './helpers/wait.js'

/**
 * PRIMARY_STOP_MS is how long the test lets the primary stop by itself: far
 * longer than the 5 s it gives its workers before it kills them.
 */
const PRIMARY_STOP_MS = 30_000

interface WorkerStats {
  worker: number
  index: number
  pid: number
  self: string
  loaderRuns: number
  group: { gets: number; peerLoads: number; peerErrors: number; localLoads: number; serverRequests: number }
}

/**
 * get asks the shared port on a fresh connection (no agent, `Connection:
 * close`), so that successive requests may reach different workers.
 */
function get<T>(port: number, path: string): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' }, timeout: ANSWER_TIMEOUT_MS },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (text += chunk))
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as T })
          } catch (err) {
            reject(err)
          }
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)))
    req.on('error', reject)
    req.end()
  })
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('examples/cluster.ts with 2 workers', () => {
  let primary: Child | undefined
  let port: number
  const workers = new Map<number, WorkerStats>()

  before(async () => {
    ;[port] = (await reservePorts(1)) as [number]
    primary = await startChild({
      what: 'examples/cluster.ts',
      script: 'examples/cluster.ts',
      env: { WORKERS: '2', PORT: String(port), HOST: '127.0.0.1', DB_DELAY_MS: '100' },
      stderr: 'capture',
      ready: { stdout: 'cluster ready: 2 workers on' },
    })
  })

  after(async () => {
    // Whatever the tests did, leave nothing running: the primary, then any worker it left.
    await primary?.kill()
    for (const { pid } of workers.values()) {
      if (alive(pid)) process.kill(pid, 'SIGKILL')
    }
  })

  test('the primary says which port the workers share', () => {
    const output = primary!.output
    assert.match(output, new RegExp(`cluster ready: 2 workers on http://127\\.0\\.0\\.1:${port}`))
    assert.equal((output.match(/worker \d \(id \d+, pid \d+\) ready/g) ?? []).length, 2)
  })

  test('100 concurrent requests over 10 ids, spread over the workers, load each id once on the host', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `u${i}`)
    const answers = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const id = ids[i % ids.length] as string
        return { id, res: await get<{ id: string; name: string; loadedBy: string }>(port, `/users/${id}`) }
      }),
    )
    for (const { id, res } of answers) {
      assert.equal(res.status, 200)
      assert.equal(res.body.id, id)
      assert.equal(res.body.name, `User ${id}`)
      assert.match(res.body.loadedBy, /^worker [01]$/)
    }
    // The primary hands each connection to a worker; ask until both have answered.
    for (let i = 0; i < 50 && workers.size < 2; i++) {
      const { status, body } = await get<WorkerStats>(port, '/stats')
      assert.equal(status, 200)
      workers.set(body.worker, body)
    }
    assert.equal(workers.size, 2, 'both workers answered /stats')
    const stats = [...workers.values()]
    assert.equal(
      stats.reduce((sum, s) => sum + s.loaderRuns, 0),
      ids.length,
      `loader runs per worker: ${stats.map((s) => s.loaderRuns).join(', ')}`,
    )
    assert.equal(
      stats.reduce((sum, s) => sum + s.group.peerErrors, 0),
      0,
    )
    assert.ok(
      stats.some((s) => s.group.peerLoads > 0),
      'some requests reached a worker that does not own their id',
    )
    assert.notEqual(stats[0]?.pid, stats[1]?.pid)
  })

  test('SIGTERM to the primary stops every worker, then the primary', async () => {
    assert.equal(workers.size, 2)
    const { code, signal } = await primary!.stop(PRIMARY_STOP_MS)
    assert.equal(signal, null, 'the primary exited by itself, not by SIGKILL')
    assert.equal(code, 0)
    // The primary waits for its workers, so they are gone by now; the kernel may take a moment to reap them.
    await waitFor('the workers to be gone', () => [...workers.values()].every((w) => !alive(w.pid))).catch(() => {})
    for (const { pid } of workers.values()) assert.equal(alive(pid), false, `worker pid ${pid} survived`)
  })
})

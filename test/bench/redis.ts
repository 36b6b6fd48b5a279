// A private redis-server for the baselines that need one (bentocache's L2,
// the Redis GET beside a remote hit): started by the bench on 127.0.0.1, on
// a free port, without persistence, and stopped at the end. When Debian's
// redis-server is missing the bench installs it with apt-get if it runs as
// root, and says so; otherwise it skips those baselines, and says so.
import { spawn, spawnSync } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { reservePorts } from '../helpers/ports.js'
import { track } from './cluster.js'
import { sleep } from './lib.js'

const START_TIMEOUT_MS = 10_000
const APT_TIMEOUT_MS = 300_000

/** RedisServer is a running private redis-server. */
export interface RedisServer {
  port: number
  /** stop ends the server (SIGTERM, then SIGKILL after 3 s) and removes its directory. */
  stop(): Promise<void>
}

/** RedisStart is a started server, or why there is none. */
export type RedisStart = { ok: true; server: RedisServer; note?: string } | { ok: false; reason: string }

function findRedisServer(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin']
  for (const dir of dirs) {
    if (dir === '') continue
    const file = join(dir, 'redis-server')
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {
      // not here
    }
  }
  return undefined
}

// One install attempt per run, shared by the scenarios that need Redis.
let installed: { bin: string | undefined; note: string } | undefined

function install(): { bin: string | undefined; note: string } {
  if (installed !== undefined) return installed
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const apt = (args: string[]): boolean => spawnSync('apt-get', args, { env, stdio: 'ignore', timeout: APT_TIMEOUT_MS }).status === 0
  console.log("\n> redis-server is missing: installing Debian's redis-server with apt-get (this run is root)…")
  const ok =
    apt(['install', '-y', '--no-install-recommends', 'redis-server']) ||
    (apt(['update']) && apt(['install', '-y', '--no-install-recommends', 'redis-server']))
  const bin = findRedisServer()
  installed = {
    bin,
    note: ok && bin !== undefined ? 'redis-server was installed by this run (apt-get, as root)' : 'apt-get could not install redis-server',
  }
  console.log(`> ${installed.note}`)
  return installed
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')))
  })
}

/**
 * startRedis starts a private redis-server on 127.0.0.1 with
 * `--save '' --appendonly no`, or says why it could not.
 */
export async function startRedis(): Promise<RedisStart> {
  let bin = findRedisServer()
  let note: string | undefined
  if (bin === undefined) {
    if (process.getuid?.() !== 0) {
      return {
        ok: false,
        reason: 'redis-server is not installed and this run is not root, so it cannot apt-get it: Redis baselines skipped',
      }
    }
    const result = install()
    bin = result.bin
    note = result.note
    if (bin === undefined) return { ok: false, reason: `${result.note}: Redis baselines skipped` }
  }
  const [port] = (await reservePorts(1)) as [number]
  const dir = mkdtempSync(join(tmpdir(), 'groupcache-bench-redis-'))
  const child = spawn(
    bin,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  track(child)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000)
      await Promise.race([exited, sleep(5_000)])
      clearTimeout(timer)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break
    if (await ping(port)) return { ok: true, server: { port, stop }, ...(note === undefined ? {} : { note }) }
    await sleep(50)
  }
  await stop()
  return { ok: false, reason: `redis-server did not answer on 127.0.0.1:${port}: Redis baselines skipped` }
}

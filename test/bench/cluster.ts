// The parent's side of the multi-process scenarios: start replicas
// (test/bench/replica.ts) as child processes on 127.0.0.1, talk to them over
// IPC, and stop every one of them, bounded in time, whatever happened.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { reservePorts, urlsFor } from '../helpers/ports.js'
import type { Command, ReplicaConfig } from './replica.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const REPLICA = 'test/bench/replica.ts'
const START_TIMEOUT_MS = 30_000
const STOP_GRACE_MS = 3_000

// Every child started and not yet seen to exit, so that a crash of the
// parent (or Ctrl-C) kills them too.
const live = new Set<ChildProcess>()
function killAll(): void {
  for (const child of live) child.kill('SIGKILL')
}
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll()
    process.exit(130)
  })
}

/**
 * track registers a child process so that it is killed when this process
 * exits, however it exits (redis-server uses it too).
 */
export function track(child: ChildProcess): void {
  live.add(child)
  child.once('exit', () => live.delete(child))
}

/** Replica is one child process running replica.ts. */
export interface Replica {
  index: number
  /** appUrl is where the replica serves `GET /item/:key`. */
  appUrl: string
  child: ChildProcess
  call<T>(cmd: DistributiveOmit<Command, 'id'>, timeoutMs?: number): Promise<T>
}

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never

/** ReplicaSetup is a replica's config less what startReplicas fills in. */
export type ReplicaSetup = Omit<ReplicaConfig, 'self' | 'peers' | 'appPort' | 'peerPort'>

/**
 * startReplicas starts one child per setup, peers of one another, and
 * resolves once each said it is ready. If one fails, all are stopped.
 */
export async function startReplicas(setups: ReplicaSetup[]): Promise<Replica[]> {
  const ports = await reservePorts(setups.length * 2)
  const appPorts = ports.slice(0, setups.length)
  const peerPorts = ports.slice(setups.length)
  // With gc.listen() peers talk on ports of their own; with an adapter, on the app's.
  const selfs = setups.map((s, i) => (s.system === 'groupcache' && s.server !== 'listen' ? urlsFor([appPorts[i] as number])[0] : urlsFor([peerPorts[i] as number])[0]) as string)
  const replicas: Replica[] = []
  try {
    await Promise.all(
      setups.map(async (setup, i) => {
        const config: ReplicaConfig = {
          ...setup,
          self: selfs[i] as string,
          peers: selfs,
          appPort: appPorts[i] as number,
          peerPort: peerPorts[i] as number,
        }
        const child = spawn(process.execPath, ['--import', 'tsx', REPLICA, JSON.stringify(config)], {
          cwd: ROOT,
          stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        })
        track(child)
        const replica = makeReplica(i, `http://127.0.0.1:${config.appPort}`, child)
        replicas.push(replica)
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`replica ${i} (${setup.system}/${setup.server}) did not start in time`)), START_TIMEOUT_MS)
          child.once('exit', (code) => {
            clearTimeout(timer)
            reject(new Error(`replica ${i} (${setup.system}/${setup.server}) exited with ${code}`))
          })
          child.on('message', (msg: { ready?: boolean }) => {
            if (msg.ready) {
              clearTimeout(timer)
              resolve()
            }
          })
        })
      }),
    )
  } catch (err) {
    await stopReplicas(replicas)
    throw err
  }
  return replicas.sort((a, b) => a.index - b.index)
}

function makeReplica(index: number, appUrl: string, child: ChildProcess): Replica {
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void; timer: NodeJS.Timeout }>()
  let next = 0
  child.on('message', (msg: { id?: number; ok?: boolean; value?: unknown; error?: string }) => {
    if (msg.id === undefined) return
    const p = pending.get(msg.id)
    if (p === undefined) return
    pending.delete(msg.id)
    clearTimeout(p.timer)
    if (msg.ok) p.resolve(msg.value)
    else p.reject(new Error(`replica ${index}: ${msg.error}`))
  })
  child.once('exit', () => {
    for (const p of pending.values()) {
      clearTimeout(p.timer)
      p.reject(new Error(`replica ${index} exited`))
    }
    pending.clear()
  })
  return {
    index,
    appUrl,
    child,
    call<T>(cmd: DistributiveOmit<Command, 'id'>, timeoutMs = 120_000): Promise<T> {
      const id = next++
      return new Promise<T>((resolve, reject) => {
        if (!child.connected) {
          reject(new Error(`replica ${index} is not running`))
          return
        }
        const timer = setTimeout(() => {
          pending.delete(id)
          reject(new Error(`replica ${index}: ${cmd.op} took over ${timeoutMs} ms`))
        }, timeoutMs)
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer })
        child.send({ ...cmd, id })
      })
    },
  }
}

/**
 * stopReplicas asks each replica to close and kills any that has not
 * exited after a grace period. It never rejects.
 */
export async function stopReplicas(replicas: Replica[]): Promise<void> {
  await Promise.all(
    replicas.map(async (replica) => {
      const child = replica.child
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
      replica.call({ op: 'close' }, STOP_GRACE_MS).catch(() => {})
      // Bounded even if the exit event was missed.
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS + 2_000))])
      clearTimeout(timer)
    }),
  )
}

// The parent's side of the multi-process scenarios: replicas
// (test/bench/replica.ts) as child processes on 127.0.0.1, started, driven
// over IPC and stopped (bounded in time, whatever happened) by the tests'
// child runner, test/helpers/child.ts.
import type { ChildProcess } from 'node:child_process'
import { type Child, killOnExit, startChildren } from '../helpers/child.js'
import { reservePorts, urlsFor } from '../helpers/ports.js'
import type { Command, ReplicaConfig } from './replica.js'

const REPLICA = 'test/bench/replica.ts'
const STOP_GRACE_MS = 3_000

// Ctrl-C or SIGTERM ends the run through process.exit, whose hook (in
// child.ts) kills every child still running.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))

/**
 * track registers a child process started elsewhere (redis-server, a B4
 * server) so that it is killed when this process exits, however it exits.
 */
export function track(child: ChildProcess): void {
  killOnExit(child)
}

/** Replica is one child process running replica.ts. */
export interface Replica {
  index: number
  /** appUrl is where the replica serves `GET /item/:key`. */
  appUrl: string
  child: Child
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
  const selfs = setups.map(
    (s, i) =>
      (s.system === 'groupcache' && s.server !== 'listen'
        ? urlsFor([appPorts[i] as number])[0]
        : urlsFor([peerPorts[i] as number])[0]) as string,
  )
  const configs = setups.map(
    (setup, i): ReplicaConfig => ({
      ...setup,
      self: selfs[i] as string,
      peers: selfs,
      appPort: appPorts[i] as number,
      peerPort: peerPorts[i] as number,
    }),
  )
  const children = await startChildren(
    configs.map((config, i) => ({
      what: `replica ${i} (${config.system}/${config.server})`,
      script: REPLICA,
      args: [JSON.stringify(config)],
      ready: 'ipc',
      stopWith: { op: 'close' },
    })),
  )
  return children.map((child, index) => ({
    index,
    appUrl: `http://127.0.0.1:${configs[index]?.appPort}`,
    child,
    call: <T>(cmd: DistributiveOmit<Command, 'id'>, timeoutMs = 120_000): Promise<T> =>
      child.call<T>(cmd, timeoutMs).catch((err: unknown) => {
        throw err instanceof Error ? err : new Error(`replica ${index}: ${String(err)}`)
      }),
  }))
}

/**
 * stopReplicas asks each replica to close and kills any that has not
 * exited after a grace period. It never rejects.
 */
export async function stopReplicas(replicas: Replica[]): Promise<void> {
  await Promise.all(replicas.map((r) => r.child.stop(STOP_GRACE_MS)))
}

// The soak test's replicas: the example apps (examples/<framework>.ts) as
// child processes on fixed 127.0.0.1 ports, so that one can be killed and
// started again where its peers expect it, with the same SELF and PEERS.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { ExampleFramework } from '../helpers/replicas.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const START_TIMEOUT_MS = 30_000
const STOP_GRACE_MS = 5_000

// Every child started and not yet seen to exit: killed when this process
// exits, however it exits, so that no replica outlives the soak.
const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => process.exit(130))
}

/** ReplicaSlot is one replica's place in the fleet: a port, and whatever process holds it now. */
export interface ReplicaSlot {
  framework: ExampleFramework
  port: number
  url: string
  /** env is what every incarnation gets: PORT, HOST, SELF, PEERS and the extras. */
  env: Record<string, string>
  child: ChildProcess | undefined
  /** restarts counts the incarnations after the first. */
  restarts: number
  /** stopping is true while crash() or stop() ends the process on purpose. */
  stopping: boolean
  /** unexpectedExits lists the times a process ended without being told to. */
  unexpectedExits: string[]
}

function alive(child: ChildProcess | undefined): child is ChildProcess {
  return child !== undefined && child.exitCode === null && child.signalCode === null
}

/**
 * start runs the slot's example and resolves once it printed its listening
 * line. Its stdout keeps being read (a full pipe would block the child), its
 * stderr goes to ours.
 */
export async function start(slot: ReplicaSlot): Promise<void> {
  if (alive(slot.child)) throw new Error(`${slot.framework} on ${slot.url} is already running`)
  const child = spawn(process.execPath, ['--import', 'tsx', `examples/${slot.framework}.ts`], {
    cwd: ROOT,
    env: { ...process.env, ...slot.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  live.add(child)
  child.once('exit', () => live.delete(child))
  slot.child = child
  await new Promise<void>((resolve, reject) => {
    let seen = ''
    const onEarlyExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer)
      reject(new Error(`${slot.framework} on ${slot.url} exited (${signal ?? code}) before it was ready: ${seen.slice(-500)}`))
    }
    const timer = setTimeout(() => {
      child.off('exit', onEarlyExit)
      child.kill('SIGKILL')
      reject(new Error(`${slot.framework} on ${slot.url} did not start in ${START_TIMEOUT_MS} ms: ${seen.slice(-500)}`))
    }, START_TIMEOUT_MS)
    child.once('exit', onEarlyExit)
    child.stdout?.on('data', (chunk: Buffer) => {
      if (seen.length < 10_000) seen += chunk.toString()
      if (seen.includes('listening')) {
        clearTimeout(timer)
        child.off('exit', onEarlyExit)
        resolve()
      }
    })
  })
  // A replica that dies on its own, rather than by crash() or stop(), is a finding.
  child.once('exit', (code, signal) => {
    if (slot.child === child && !slot.stopping) slot.unexpectedExits.push(`${slot.framework} ${slot.url}: ${signal ?? code}`)
  })
}

/** crash kills the slot's process with SIGKILL, as a crash would, and waits for it to be gone. */
export async function crash(slot: ReplicaSlot): Promise<void> {
  const child = slot.child
  if (!alive(child)) return
  slot.stopping = true
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
  slot.stopping = false
}

/** stop ends the slot's process with SIGTERM, and SIGKILL after a grace period. */
export async function stop(slot: ReplicaSlot): Promise<void> {
  const child = slot.child
  if (!alive(child)) return
  slot.stopping = true
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
  await exited
  clearTimeout(timer)
}

/** slotsFor lays out one slot per framework on the given ports, all peers of one another. */
export function slotsFor(frameworks: ExampleFramework[], ports: number[], extraEnv: Record<string, string>): ReplicaSlot[] {
  const urls = ports.map((port) => `http://127.0.0.1:${port}`)
  return frameworks.map((framework, i) => ({
    framework,
    port: ports[i] as number,
    url: urls[i] as string,
    env: {
      ...extraEnv,
      PORT: String(ports[i]),
      HOST: '127.0.0.1',
      SELF: urls[i] as string,
      PEERS: urls.join(','),
    },
    child: undefined,
    restarts: 0,
    stopping: false,
    unexpectedExits: [],
  }))
}

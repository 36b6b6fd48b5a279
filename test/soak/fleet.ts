// The soak test's replicas: the example apps (examples/<framework>.ts) as
// child processes on fixed 127.0.0.1 ports, so that one can be killed and
// started again where its peers expect it, with the same SELF and PEERS.
import { type Child, startChild } from '../helpers/child.js'
import type { ExampleFramework } from '../helpers/replicas.js'

const STOP_GRACE_MS = 5_000

// Ctrl-C or SIGTERM ends the soak through process.exit, whose hook (in
// child.ts) kills every replica still running, so that none outlives it.
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
  child: Child | undefined
  /** restarts counts the incarnations after the first. */
  restarts: number
  /** stopping is true while crash() or stop() ends the process on purpose. */
  stopping: boolean
  /** unexpectedExits lists the times a process ended without being told to. */
  unexpectedExits: string[]
}

/**
 * start runs the slot's example and resolves once it printed its listening
 * line (its stdout keeps being read; its stderr goes to ours).
 */
export async function start(slot: ReplicaSlot): Promise<void> {
  if (slot.child?.running) throw new Error(`${slot.framework} on ${slot.url} is already running`)
  const child = await startChild({
    what: `${slot.framework} on ${slot.url}`,
    script: `examples/${slot.framework}.ts`,
    env: slot.env,
    ready: { stdout: 'listening' },
  })
  slot.child = child
  slot.stopping = false
  // A replica that dies on its own, rather than by crash() or stop(), is a finding.
  void child.exited.then(({ code, signal }) => {
    if (slot.child === child && !slot.stopping) slot.unexpectedExits.push(`${slot.framework} ${slot.url}: ${signal ?? code}`)
  })
}

/** crash kills the slot's process with SIGKILL, as a crash would, and waits for it to be gone. */
export async function crash(slot: ReplicaSlot): Promise<void> {
  slot.stopping = true
  await slot.child?.kill()
}

/** stop ends the slot's process with SIGTERM, and SIGKILL after a grace period. */
export async function stop(slot: ReplicaSlot): Promise<void> {
  slot.stopping = true
  await slot.child?.stop(STOP_GRACE_MS)
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

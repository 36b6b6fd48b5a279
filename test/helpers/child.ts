// Child processes for the multi-process tests: start one (a Node script run
// with tsx, or any program), know when it is ready, talk to it over IPC, and
// stop it bounded in time whatever the test did. The clusters of the tests
// (cluster.ts, replicas.ts, the interop and node:cluster tests) are all
// built on this one runner.
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ANSWER_TIMEOUT_MS } from './wait.js'

/** ROOT is the project's root, every child's working directory. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
/**
 * START_TIMEOUT_MS bounds the wait for a child to be ready. tsx compiles
 * each child's imports on start: three replicas took 20 s to start on a
 * busy shared machine. Only a child that never gets ready should reach it.
 */
export const START_TIMEOUT_MS = 180_000
/** CALL_TIMEOUT_MS bounds one IPC call, unless the caller gives its own. */
export const CALL_TIMEOUT_MS = ANSWER_TIMEOUT_MS
/** STOP_GRACE_MS is how long stop() lets a child exit by itself before SIGKILL. */
export const STOP_GRACE_MS = 5_000
/** OUTPUT_LIMIT bounds the output a child keeps, for error messages and tests that read it. */
const OUTPUT_LIMIT = 64 * 1024

/** ChildOptions say what to run and how to tell it is ready. */
export interface ChildOptions {
  /** what names the child in errors ("gonode http://127.0.0.1:41000"). */
  what: string
  /** script is a TypeScript (or JS) file run by this Node with tsx, relative to ROOT or absolute. */
  script?: string
  /** command is a program to run instead of a script. */
  command?: string
  args?: string[]
  /** env is added to this process's environment. */
  env?: Record<string, string>
  /** ready is text the child prints on stdout once ready, or 'ipc' for a `{ ready: true }` message. */
  ready: { stdout: string } | 'ipc'
  /** ipc opens an IPC channel, for call() (implied by ready: 'ipc'). */
  ipc?: boolean
  /** stdin 'pipe' keeps the child's stdin open while we run (gonode exits when it closes). */
  stdin?: 'ignore' | 'pipe'
  /** stderr 'capture' keeps stderr in `output` with stdout; by default it goes to ours. */
  stderr?: 'inherit' | 'capture'
  /** stopWith is how stop() asks the child to end: a signal (SIGTERM by default) or an IPC command. */
  stopWith?: NodeJS.Signals | { op: string }
}

/** Exit is how a child ended. */
export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

type Pending = { resolve: (value: unknown) => void; reject: (err: unknown) => void; timer: NodeJS.Timeout }

// Every child still running, killed when this process exits first (a
// crash, a hook that never ran), so that no child outlives its test file.
// The one piece of module state here, and only a safety net.
const running = new Set<ChildProcess>()
const killAll = (): void => {
  for (const child of running) child.kill('SIGKILL')
}
process.on('exit', killAll)
// A signal that ends this process (the test runner cancelling a file, say)
// skips the exit hook: kill the children first, then end as the signal
// would have, unless some other listener handles it.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    killAll()
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  })
}

/**
 * killOnExit makes a process started some other way (redis-server for a
 * benchmark, say) die with this one, as every Child does.
 */
export function killOnExit(child: ChildProcess): void {
  running.add(child)
  child.once('exit', () => running.delete(child))
}

/**
 * Child is one running child process. Its IPC protocol, when it has one:
 * `call` sends `{ ...cmd, id }` and the child answers
 * `{ id, ok: true, value }` or `{ id, ok: false, error }`; call rejects with
 * that `error` as sent.
 */
export class Child {
  readonly what: string
  readonly process: ChildProcess
  /** exited resolves with how the child ended; it never rejects. */
  readonly exited: Promise<Exit>
  readonly #stopWith: NodeJS.Signals | { op: string }
  readonly #pending = new Map<number, Pending>()
  #next = 0
  #output = ''

  constructor(options: ChildOptions) {
    this.what = options.what
    this.#stopWith = options.stopWith ?? 'SIGTERM'
    const ipc = options.ipc === true || options.ready === 'ipc'
    const [command, args] =
      options.command !== undefined
        ? [options.command, options.args ?? []]
        : [process.execPath, ['--import', 'tsx', options.script ?? '', ...(options.args ?? [])]]
    const child = spawn(command, args, {
      cwd: ROOT,
      env: { ...process.env, ...options.env },
      stdio: [options.stdin ?? 'ignore', 'pipe', options.stderr === 'capture' ? 'pipe' : 'inherit', ...(ipc ? (['ipc'] as const) : [])],
    })
    this.process = child
    running.add(child)
    // What is piped is always read: a full pipe would block the child.
    const keep = (chunk: Buffer): void => {
      this.#output = (this.#output + chunk.toString()).slice(-OUTPUT_LIMIT)
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        running.delete(child)
        for (const p of this.#pending.values()) {
          clearTimeout(p.timer)
          p.reject(new Error(`${this.what} exited (${signal ?? code})`))
        }
        this.#pending.clear()
        resolve({ code, signal })
      })
      // A child that could not be spawned at all emits 'error' and no 'exit'.
      child.once('error', () => {
        running.delete(child)
        resolve({ code: null, signal: null })
      })
    })
    child.on('message', (msg: { id?: unknown; ok?: boolean; value?: unknown; error?: unknown }) => {
      if (typeof msg?.id !== 'number') return
      const p = this.#pending.get(msg.id)
      if (p === undefined) return
      this.#pending.delete(msg.id)
      clearTimeout(p.timer)
      if (msg.ok === true) p.resolve(msg.value)
      else p.reject(msg.error)
    })
  }

  /** output is what the child printed on stdout (and stderr, if captured), its last 64 KiB. */
  get output(): string {
    return this.#output
  }

  /** running is true until the child has exited. */
  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null && running.has(this.process)
  }

  /** ready resolves once the child says it is ready, and rejects if it exits, fails to spawn, or is not ready in time. */
  ready(signal: ChildOptions['ready'], timeoutMs = START_TIMEOUT_MS): Promise<void> {
    const child = this.process
    return new Promise((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer)
        child.off('message', onMessage)
        child.stdout?.off('data', onData)
        child.off('exit', onExit)
        child.off('error', onError)
        if (err === undefined) resolve()
        else reject(err)
      }
      const timer = setTimeout(() => done(new Error(`${this.what} was not ready after ${timeoutMs} ms:\n${this.#output}`)), timeoutMs)
      const onMessage = (msg: { ready?: unknown }): void => {
        if (signal === 'ipc' && msg?.ready === true) done()
      }
      const onData = (): void => {
        if (signal !== 'ipc' && this.#output.includes(signal.stdout)) done()
      }
      const onExit = (code: number | null, sig: NodeJS.Signals | null): void =>
        done(new Error(`${this.what} exited (${sig ?? code}) before it was ready:\n${this.#output}`))
      const onError = (err: Error): void => done(new Error(`${this.what} could not start: ${err.message}`))
      child.on('message', onMessage)
      child.stdout?.on('data', onData)
      child.once('exit', onExit)
      child.once('error', onError)
      onData()
    })
  }

  /** call sends `cmd` over IPC and resolves with the child's answer, rejecting after `timeoutMs`. */
  call<T = unknown>(cmd: { op: string; [field: string]: unknown }, timeoutMs = CALL_TIMEOUT_MS): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.process.connected) {
        reject(new Error(`${this.what} is not connected (it has exited, or has no IPC channel)`))
        return
      }
      const id = this.#next++
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`${this.what}: ${cmd.op} got no answer in ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer })
      this.process.send({ ...cmd, id })
    })
  }

  /**
   * stop asks the child to end (see `stopWith`), kills it with SIGKILL if it
   * has not after `graceMs`, and resolves with how it ended. It never rejects.
   */
  async stop(graceMs = STOP_GRACE_MS): Promise<Exit> {
    if (this.running) {
      const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs)
      if (typeof this.#stopWith === 'string') this.process.kill(this.#stopWith)
      else this.call(this.#stopWith, graceMs).catch(() => {})
      await this.exited
      clearTimeout(timer)
    }
    return this.exited
  }

  /** kill ends the child abruptly, as a crash would, and waits until it is gone. */
  async kill(): Promise<Exit> {
    if (this.running) this.process.kill('SIGKILL')
    return this.exited
  }
}

/** startChild runs a child and resolves once it is ready; if it is not, the child is killed and the error thrown. */
export async function startChild(options: ChildOptions): Promise<Child> {
  const child = new Child(options)
  try {
    await child.ready(options.ready)
  } catch (err) {
    await child.kill()
    throw err
  }
  return child
}

/**
 * startChildren starts every child at once and resolves once all are
 * ready. If one fails, the others are stopped before the error is thrown,
 * so a failed start leaves nothing running.
 */
export async function startChildren(list: ChildOptions[]): Promise<Child[]> {
  const settled = await Promise.allSettled(list.map((options) => startChild(options)))
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  const started = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
  if (failed !== undefined) {
    await stopChildren(started)
    throw failed.reason
  }
  return started
}

/** stopChildren stops every child at once (see Child.stop); it never rejects. */
export async function stopChildren(children: Iterable<Child | undefined>): Promise<void> {
  await Promise.all([...children].map((child) => child?.stop()))
}

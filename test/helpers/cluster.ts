import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Command, NodeConfig } from './node-main.js'
import { reservePorts, urlsFor } from './ports.js'

const MAIN = fileURLToPath(new URL('./node-main.ts', import.meta.url))
const REQUEST_TIMEOUT_MS = 15_000

/** RemoteError is an error a child node's `get` rejected with. */
export interface RemoteError {
  name: string
  code: string | undefined
  message: string
  peers?: string[]
}

/** NodeStats is what a child node reports of its group. */
export interface NodeStats {
  stats: Record<string, number>
  main: Record<string, number>
  hot: Record<string, number>
  loads: Record<string, number>
}

type Pending = { resolve: (v: unknown) => void; reject: (e: unknown) => void; timer: NodeJS.Timeout }
type Request = Command extends infer C ? (C extends { id: number } ? Omit<C, 'id'> : never) : never

/** TestNode is one groupcache node in a child process. */
export class TestNode {
  readonly url: string
  readonly child: ChildProcess
  readonly #pending = new Map<number, Pending>()
  #next = 0

  constructor(url: string, child: ChildProcess) {
    this.url = url
    this.child = child
    child.on('message', (msg: { id?: number; ok?: boolean; value?: unknown; error?: RemoteError }) => {
      if (msg.id === undefined) return
      const p = this.#pending.get(msg.id)
      if (p === undefined) return
      this.#pending.delete(msg.id)
      clearTimeout(p.timer)
      if (msg.ok) p.resolve(msg.value)
      else p.reject(msg.error)
    })
    child.on('exit', () => {
      for (const p of this.#pending.values()) {
        clearTimeout(p.timer)
        p.reject({ name: 'Exited', code: undefined, message: `node ${url} exited` })
      }
      this.#pending.clear()
    })
  }

  #call(cmd: Request): Promise<unknown> {
    const id = this.#next++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`node ${this.url}: ${cmd.op} timed out`))
      }, REQUEST_TIMEOUT_MS)
      this.#pending.set(id, { resolve, reject, timer })
      this.child.send({ ...cmd, id })
    })
  }

  get(key: string): Promise<string> {
    return this.#call({ op: 'get', key }) as Promise<string>
  }

  stats(): Promise<NodeStats> {
    return this.#call({ op: 'stats' }) as Promise<NodeStats>
  }

  owner(key: string): Promise<string> {
    return this.#call({ op: 'owner', key }) as Promise<string>
  }

  remove(key: string): Promise<unknown> {
    return this.#call({ op: 'remove', key })
  }

  set(key: string, value: string): Promise<unknown> {
    return this.#call({ op: 'set', key, value })
  }

  clear(): Promise<unknown> {
    return this.#call({ op: 'clear' })
  }

  /** hold makes this node's loads of `key` wait until `release(key)`. */
  hold(key: string): Promise<unknown> {
    return this.#call({ op: 'hold', key })
  }

  release(key: string): Promise<unknown> {
    return this.#call({ op: 'release', key })
  }

  /** getAll gets every key on this node, 32 at a time; resolves to how many failed. */
  getAll(keys: string[]): Promise<number> {
    return this.#call({ op: 'getAll', keys }) as Promise<number>
  }

  /** close closes the node's instance (handing its entries over unless `handoff` is false) and ends the process. */
  async close(handoff = true): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    await this.#call({ op: 'close', handoff })
    await exited
  }

  setPeers(peers: string[]): Promise<unknown> {
    return this.#call({ op: 'setPeers', peers })
  }

  /** kill ends the process abruptly, as a crash would. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.kill('SIGKILL')
    await exited
  }

  /** stop closes the node gracefully, killing it if that takes over 3 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3_000)
    this.#call({ op: 'close' }).catch(() => {})
    await exited
    clearTimeout(timer)
  }
}

/**
 * startNode forks one node with `config` on `port` (see reservePorts), for
 * a node that joins a running cluster; it is killed if it fails to start.
 */
export async function startNode(config: NodeConfig): Promise<TestNode> {
  const children: ChildProcess[] = []
  try {
    return await forkNode(config, children)
  } catch (err) {
    for (const child of children) child.kill('SIGKILL')
    throw err
  }
}

async function forkNode(config: NodeConfig, children: ChildProcess[]): Promise<TestNode> {
  const child = fork(MAIN, [JSON.stringify(config)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  children.push(child)
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${config.self} did not start`)), REQUEST_TIMEOUT_MS)
    child.once('exit', (code) => reject(new Error(`node ${config.self} exited with ${code}`)))
    child.on('message', (msg: { ready?: boolean }) => {
      if (msg.ready) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  return new TestNode(config.self, child)
}

/** Cluster is a set of child-process nodes that are peers of one another. */
export interface Cluster {
  nodes: TestNode[]
  urls: string[]
  stop(): Promise<void>
}

/**
 * startCluster forks `n` nodes on 127.0.0.1. `configure(i, urls)` may adjust
 * each node's config (say, to give it a different peer list).
 */
export async function startCluster(
  n: number,
  configure: (i: number, urls: string[]) => Partial<NodeConfig> = () => ({}),
): Promise<Cluster> {
  const ports = await reservePorts(n)
  const urls = urlsFor(ports)
  const children: ChildProcess[] = []
  const started = Promise.all(
    ports.map((port, i) => forkNode({ self: urls[i] as string, peers: urls, port, ...configure(i, urls) }, children)),
  )
  let nodes: TestNode[]
  try {
    nodes = await started
  } catch (err) {
    // A node that failed to start must not leave the others running.
    for (const child of children) child.kill('SIGKILL')
    throw err
  }
  return {
    nodes,
    urls,
    stop: async () => {
      await Promise.all(nodes.map((node) => node.stop()))
    },
  }
}

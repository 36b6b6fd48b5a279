// A cluster of groupcache nodes in child processes (node-main.ts), driven
// over IPC: what the multi-node tests of the core run against.
import { type Child, startChild, startChildren, stopChildren } from './child.js'
import type { Command, HammerReport, NodeConfig } from './node-main.js'
import type { SpanRecord } from './otel.js'
import { reservePorts, urlsFor } from './ports.js'
import { PEER_TIMEOUT_MS } from './wait.js'

const MAIN = 'test/helpers/node-main.ts'

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
  /** calls counts loader invocations (one per batch with loadMany). */
  calls: number
}

type Request = Command extends infer C ? (C extends { id: number } ? Omit<C, 'id'> : never) : never

/** TestNode is one groupcache node in a child process. */
export class TestNode {
  readonly url: string
  readonly child: Child

  constructor(url: string, child: Child) {
    this.url = url
    this.child = child
  }

  #call<T>(cmd: Request): Promise<T> {
    return this.child.call<T>(cmd)
  }

  get(key: string): Promise<string> {
    return this.#call({ op: 'get', key })
  }

  /** getMany answers the found keys and values, in order. */
  getMany(keys: string[]): Promise<Array<[string, string]>> {
    return this.#call({ op: 'getMany', keys }) as Promise<Array<[string, string]>>
  }

  /** getEach runs one get per key at once and answers each value or error code. */
  getEach(keys: string[]): Promise<Array<{ value: string } | { code: string | undefined }>> {
    return this.#call({ op: 'getEach', keys }) as Promise<Array<{ value: string } | { code: string | undefined }>>
  }

  stats(): Promise<NodeStats> {
    return this.#call({ op: 'stats' })
  }

  owner(key: string): Promise<string> {
    return this.#call({ op: 'owner', key })
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

  /** failing makes this node's loader throw for every key while on. */
  failing(on: boolean): Promise<unknown> {
    return this.#call({ op: 'failing', on })
  }

  /** hammer gets `key` every `intervalMs` for `durationMs` and reports how it went. */
  hammer(key: string, durationMs: number, intervalMs: number): Promise<HammerReport> {
    return this.#call({ op: 'hammer', key, durationMs, intervalMs }) as Promise<HammerReport>
  }

  /** tracedGet gets `key` inside an active span named `request` (the node needs `otel`). */
  tracedGet(key: string): Promise<string> {
    return this.#call({ op: 'tracedGet', key }) as Promise<string>
  }

  /** tracedGetMany gets `keys` with getMany inside an active span named `request` (the node needs `otel`). */
  tracedGetMany(keys: string[]): Promise<Array<[string, string]>> {
    return this.#call({ op: 'tracedGetMany', keys }) as Promise<Array<[string, string]>>
  }

  /** spans are the spans the node has finished (the node needs `otel`). */
  spans(): Promise<SpanRecord[]> {
    return this.#call({ op: 'spans' }) as Promise<SpanRecord[]>
  }

  /** getAll gets every key on this node, 32 at a time; resolves to how many failed. */
  getAll(keys: string[]): Promise<number> {
    return this.#call({ op: 'getAll', keys })
  }

  /** close closes the node's instance (handing its entries over unless `handoff` is false) and ends the process. */
  async close(handoff = true): Promise<void> {
    await this.#call({ op: 'close', handoff })
    await this.child.exited
  }

  setPeers(peers: string[]): Promise<unknown> {
    return this.#call({ op: 'setPeers', peers })
  }

  /** kill ends the process abruptly, as a crash would. */
  async kill(): Promise<void> {
    await this.child.kill()
  }

  /** stop closes the node gracefully, killing it if that takes too long. */
  async stop(): Promise<void> {
    await this.child.stop()
  }
}

/** Cluster is a set of child-process nodes that are peers of one another. */
export interface Cluster {
  nodes: TestNode[]
  urls: string[]
  stop(): Promise<void>
}

/**
 * startCluster forks `n` nodes on 127.0.0.1, with PEER_TIMEOUT_MS.
 * `configure(i, urls)` may adjust each node's config (say, to give it a
 * different peer list). If one fails to start, none is left running.
 */
export async function startCluster(
  n: number,
  configure: (i: number, urls: string[]) => Partial<NodeConfig> = () => ({}),
): Promise<Cluster> {
  const ports = await reservePorts(n)
  const urls = urlsFor(ports)
  const children = await startChildren(
    ports.map((port, i) => {
      const config: NodeConfig = { self: urls[i] as string, peers: urls, port, peerTimeoutMs: PEER_TIMEOUT_MS, ...configure(i, urls) }
      return { what: `node ${i} (${config.self})`, script: MAIN, args: [JSON.stringify(config)], ready: 'ipc', stopWith: { op: 'close' } }
    }),
  )
  const nodes = children.map((child, i) => new TestNode(urls[i] as string, child))
  return { nodes, urls, stop: () => stopChildren(children) }
}

/**
 * startNode forks one node with `config` on its port (see reservePorts), with
 * PEER_TIMEOUT_MS unless `config` says otherwise: a node that joins a running
 * cluster.
 */
export async function startNode(config: NodeConfig): Promise<TestNode> {
  const child = await startChild({
    what: `node ${config.self}`,
    script: MAIN,
    args: [JSON.stringify({ peerTimeoutMs: PEER_TIMEOUT_MS, ...config })],
    ready: 'ipc',
    stopWith: { op: 'close' },
  })
  return new TestNode(config.self, child)
}

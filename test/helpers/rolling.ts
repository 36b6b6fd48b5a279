// Membership changes staged with real processes: warm keys, counted loads,
// and a rolling restart (test/handoff.test.ts, test/soak/rolling.ts).
import assert from 'node:assert/strict'
import { startCluster, startNode, type TestNode } from './cluster.js'
import type { NodeConfig } from './node-main.js'
import { reservePorts, urlsFor } from './ports.js'

/** keysOf names `n` keys. */
export function keysOf(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `key-${i}`)
}

// Peeks answer from memory in a millisecond or two; a busy CI machine may
// take far longer to get to them, and a timed-out peek is a load: the tests
// count loads, so they give peeks room. The deadline itself is a tunable
// (its default is in the soak row), not what the tests check.
export const PEEK_TIMEOUT_MS = 5_000

/** ROLLING_SECRET lets the nodes hand entries over: a hand-off is a change, which peers take only with the secret. */
export const ROLLING_SECRET = 'rolling-secret'

/** loadsOf sums every node's loader runs for `keys`. */
export async function loadsOf(nodes: readonly TestNode[], keys: readonly string[]): Promise<number> {
  let total = 0
  for (const node of nodes) {
    const { loads } = await node.stats()
    for (const key of keys) total += loads[key] ?? 0
  }
  return total
}

/** getAll gets `keys` on `node` in chunks (each IPC call has a deadline); resolves to the failures. */
export async function getAll(node: TestNode, keys: readonly string[]): Promise<number> {
  let failed = 0
  for (let i = 0; i < keys.length; i += 500) failed += await node.getAll(keys.slice(i, i + 500))
  return failed
}

/** RollingOptions say how to roll: over which keys, with or without peek and hand-off. */
export interface RollingOptions {
  keys: readonly string[]
  /** handoff false turns both off (`handoffMs: 0`, `close({ handoff: false })`). */
  handoff: boolean
  /** peekTimeoutMs, when given; else the default. */
  peekTimeoutMs?: number | undefined
}

/** RollingResult is what a roll cost: loader runs, failed gets, and what failed in the harness. */
export interface RollingResult {
  loads: number
  failed: number
  errors: string[]
}

/**
 * rollingRestart starts a 3-node cluster, warms `keys` and rolls it (see
 * `roll`), then stops every node.
 */
export async function rollingRestart({ keys, handoff, peekTimeoutMs }: RollingOptions): Promise<RollingResult> {
  const options = rollingConfig(handoff, peekTimeoutMs)
  const cluster = await startCluster(3, () => options)
  const nodes = [...cluster.nodes]
  try {
    assert.equal(await getAll(nodes[0]!, keys), 0)
    return await roll(nodes, keys, options, handoff)
  } finally {
    await Promise.all(nodes.map((n) => n.stop()))
  }
}

/** rollingConfig is the configuration of the nodes of a roll. */
export function rollingConfig(handoff: boolean, peekTimeoutMs?: number): Partial<NodeConfig> {
  return {
    promote: false,
    secret: ROLLING_SECRET,
    // Room for every key on one node: keys that move are counted, not evicted.
    maxBytes: 16 << 20,
    ...(peekTimeoutMs === undefined ? {} : { peekTimeoutMs }),
    ...(handoff ? {} : { handoffMs: 0 }),
  }
}

/**
 * roll restarts every node of `nodes` (peers of one another, holding warm
 * `keys`), one at a time, as a Kubernetes rolling update does: the others
 * drop the node, it closes (handing its entries over, with `handoff`), its
 * replacement (`config`) starts on a new address and the others add it.
 * Gets keep arriving at the nodes in service all along. `nodes` ends up
 * holding the replacements (the caller stops them). Resolves to the loader
 * runs of the whole roll, a last full pass over the keys included, and the
 * gets that failed.
 */
export async function roll(
  nodes: TestNode[],
  keys: readonly string[],
  config: Partial<NodeConfig>,
  handoff: boolean,
): Promise<RollingResult> {
  const list = nodes.map((node) => node.url)
  let loads = -(await loadsOf(nodes, keys))
  let failed = 0
  const errors: string[] = []
  const inService = new Set(nodes)
  const busy = new Map<TestNode, Set<Promise<void>>>()
  let rolling = true
  const steady = async (seed: number): Promise<void> => {
    let i = seed
    while (rolling) {
      const serving = [...inService]
      const node = serving[i++ % serving.length]!
      const some = Array.from({ length: 50 }, (_, k) => keys[(i * 977 + k * 61) % keys.length]!)
      const call = node.getAll(some).then(
        (n) => {
          failed += n
        },
        (err: unknown) => {
          // The harness lost a node under a call: every get of it counts as failed.
          failed += some.length
          errors.push(`${node.url}: ${(err as { message?: string }).message ?? String(err)}`)
        },
      )
      let calls = busy.get(node)
      if (calls === undefined) {
        calls = new Set()
        busy.set(node, calls)
      }
      calls.add(call)
      await call.finally(() => calls.delete(call))
    }
  }
  const load = [steady(0), steady(1)]
  try {
    for (let i = 0; i < nodes.length; i++) {
      const old = nodes[i]!
      inService.delete(old)
      await Promise.all([...(busy.get(old) ?? [])])
      const others = nodes.filter((n) => n !== old)
      await Promise.all(others.map((n) => n.setPeers(list.filter((u) => u !== old.url))))
      const { loads: before } = await old.stats()
      for (const key of keys) loads += before[key] ?? 0
      await old.close(handoff)
      const [port] = await reservePorts(1)
      const url = urlsFor([port!])[0]!
      list[i] = url
      nodes[i] = await startNode({ ...config, self: url, peers: [...list], port: port! })
      await Promise.all(others.map((n) => n.setPeers([...list])))
      inService.add(nodes[i]!)
    }
  } finally {
    rolling = false
    await Promise.all(load)
  }
  const passes = await Promise.all(
    nodes.map((node, i) =>
      getAll(
        node,
        keys.filter((_, k) => k % nodes.length === i),
      ),
    ),
  )
  failed += passes.reduce((a, b) => a + b, 0)
  loads += await loadsOf(nodes, keys)
  return { loads, failed, errors }
}

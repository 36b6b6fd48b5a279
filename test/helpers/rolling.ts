// Membership changes staged with real processes: 3,000 warm keys, counted
// loads, and a rolling restart (test/handoff.test.ts, test/soak/rolling.ts).
import assert from 'node:assert/strict'
import { startCluster, startNode, type TestNode } from './cluster.js'
import { reservePorts, urlsFor } from './ports.js'

export const KEYS = Array.from({ length: 3000 }, (_, i) => `key-${i}`)
// Peeks answer from memory in well under 50 ms; a busy CI machine may not,
// and a timed-out peek is a load: the tests count loads, so they give peeks
// room. The deadline itself is a tunable, not what is tested here.
export const PEEK_TIMEOUT_MS = 5_000

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
  for (let i = 0; i < keys.length; i += 250) failed += await node.getAll(keys.slice(i, i + 250))
  return failed
}

/**
 * rollingRestart restarts every node of a 3-node cluster holding 3,000 warm
 * keys, one at a time, as a Kubernetes rolling update does: the others drop
 * the node, it closes, its replacement starts on a new address and the
 * others add it. Gets keep arriving at the nodes in service all along.
 * Resolves to the loader runs of the whole roll, a last full pass over the
 * keys included, and the gets that failed.
 */
export async function rollingRestart(
  handoff: boolean,
  peekTimeoutMs = PEEK_TIMEOUT_MS,
): Promise<{ loads: number; failed: number; errors: string[] }> {
  const options = { peekTimeoutMs, promote: false, ...(handoff ? {} : { handoffMs: 0 }) }
  const cluster = await startCluster(3, () => options)
  const nodes: TestNode[] = [...cluster.nodes]
  const list = [...cluster.urls]
  const started: TestNode[] = []
  try {
    assert.equal(await getAll(nodes[0]!, KEYS), 0)
    let loads = -(await loadsOf(nodes, KEYS))
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
        const keys = Array.from({ length: 50 }, (_, k) => KEYS[(i * 977 + k * 61) % KEYS.length]!)
        const call = node.getAll(keys).then(
          (n) => {
            failed += n
          },
          (err: unknown) => {
            // The harness lost a node under a call: every get of it counts as failed.
            failed += keys.length
            errors.push(`${node.url}: ${(err as { message?: string }).message ?? String(err)}`)
          },
        )
        let calls = busy.get(node)
        if (calls === undefined) busy.set(node, (calls = new Set()))
        calls.add(call)
        await call.finally(() => calls.delete(call))
      }
    }
    const load = [steady(0), steady(1)]
    for (let i = 0; i < 3; i++) {
      const old = nodes[i]!
      inService.delete(old)
      await Promise.all([...(busy.get(old) ?? [])])
      const others = nodes.filter((n) => n !== old)
      await Promise.all(others.map((n) => n.setPeers(list.filter((u) => u !== old.url))))
      const { loads: before } = await old.stats()
      for (const key of KEYS) loads += before[key] ?? 0
      if (handoff) await old.close()
      else await old.close(false)
      const [port] = await reservePorts(1)
      const url = urlsFor([port!])[0]!
      list[i] = url
      const fresh = await startNode({ self: url, peers: [...list], port: port!, ...options })
      started.push(fresh)
      nodes[i] = fresh
      await Promise.all(others.map((n) => n.setPeers([...list])))
      inService.add(fresh)
    }
    rolling = false
    await Promise.all(load)
    const passes = await Promise.all(
      nodes.map((node, i) =>
        getAll(
          node,
          KEYS.filter((_, k) => k % 3 === i),
        ),
      ),
    )
    failed += passes.reduce((a, b) => a + b, 0)
    loads += await loadsOf(nodes, KEYS)
    return { loads, failed, errors }
  } finally {
    await Promise.all([...nodes, ...started].map((n) => n.stop()))
  }
}

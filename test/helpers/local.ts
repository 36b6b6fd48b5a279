import { Groupcache, type GroupcacheOptions } from '../../src/index.js'
import { reservePorts, urlsFor } from './ports.js'
import { PEER_TIMEOUT_MS } from './wait.js'

/**
 * startLocalNodes runs `n` Groupcache instances in this process, each
 * serving peers with `listen()` on its own 127.0.0.1 port, all peers of one
 * another over real HTTP, with PEER_TIMEOUT_MS unless `options` say
 * otherwise. Callers must `closeAll` them.
 */
export async function startLocalNodes(
  n: number,
  options: (i: number) => Partial<GroupcacheOptions> = () => ({}),
): Promise<{ nodes: Groupcache[]; urls: string[]; closeAll: () => Promise<void> }> {
  const ports = await reservePorts(n)
  const urls = urlsFor(ports)
  const nodes = urls.map((self, i) => new Groupcache({ self, peers: urls, peerTimeoutMs: PEER_TIMEOUT_MS, ...options(i) }))
  const closeAll = async (): Promise<void> => {
    await Promise.all(nodes.map((gc) => gc.close()))
  }
  try {
    await Promise.all(nodes.map((gc, i) => gc.listen({ host: '127.0.0.1', port: ports[i] })))
  } catch (err) {
    await closeAll()
    throw err
  }
  return { nodes, urls, closeAll }
}

/** keyOwnedBy finds a key of the form `${prefix}N` that `gc` says `owner` owns. */
export function keyOwnedBy(gc: Groupcache, owner: string, prefix = 'key-'): string {
  for (let i = 0; i < 100_000; i++) {
    const key = `${prefix}${i}`
    if (gc.ownerOf(key) === owner) return key
  }
  throw new Error(`no key owned by ${owner}`)
}

// deferred lives in wait.ts; re-exported for the tests that import it from here.
export { deferred } from './wait.js'

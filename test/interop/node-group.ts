// What the two Node members of the interop cluster share: their config, a
// group that answers exactly what the Go node's getter answers ("go:" + key,
// codec 'string', so the bytes are the same), its load counts per key, and
// the shape of a get's outcome as the parent sees it.
import { type CacheStats, type Group, type Groupcache, GroupcacheError, type GroupStats } from '../../src/index.js'

/** GROUP is the group name of every member, Go included (gonode -group). */
export const GROUP = 'interop'

/** SLOW_MS matches gonode's getter, which sleeps 200 ms for `slow:` keys. */
const SLOW_MS = 200

/** PeerConfig is what the parent passes a Node member as argv[2] (JSON). */
export interface PeerConfig {
  self: string
  peers: string[]
  port: number
}

/** NodeSnapshot is a Node member's group counters and its loads per key. */
export interface NodeSnapshot {
  stats: GroupStats
  main: CacheStats
  hot: CacheStats
  loads: Record<string, number>
}

/** GetOutcome is a get's value, or the code and message it failed with. */
export type GetOutcome = { ok: true; value: string } | { ok: false; code: string | undefined; message: string }

export function readConfig(): PeerConfig {
  return JSON.parse(process.argv[2] ?? '{}') as PeerConfig
}

/**
 * interopGroup creates the group with gonode's getter semantics: `slow:`
 * keys take 200 ms, `fail:` keys fail, any other key is "go:" + key.
 * `stale:` keys get an hour's TTL and stale window, so that our answers
 * carry fields 3 and 4 (the Go node has no TTLs).
 */
export function interopGroup(gc: Groupcache): { group: Group<string>; snapshot: () => NodeSnapshot } {
  const loads = new Map<string, number>()
  const group = gc.newGroup<string>({
    name: GROUP,
    maxBytes: 64 << 20,
    codec: 'string',
    load: async (key, ctx) => {
      loads.set(key, (loads.get(key) ?? 0) + 1)
      if (key.startsWith('stale:')) {
        ctx.ttlMs = 3_600_000
        ctx.staleMs = 3_600_000
      }
      if (key.startsWith('slow:')) await new Promise((resolve) => setTimeout(resolve, SLOW_MS))
      if (key.startsWith('fail:')) throw new Error(`node loader failed for ${key} on ${gc.self}`)
      return `go:${key}`
    },
  })
  const snapshot = (): NodeSnapshot => ({
    stats: group.stats,
    main: group.cacheStats('main'),
    hot: group.cacheStats('hot'),
    loads: Object.fromEntries(loads),
  })
  return { group, snapshot }
}

/** outcome settles a get into a GetOutcome, which travels as JSON. */
export async function outcome(get: Promise<string>): Promise<GetOutcome> {
  try {
    return { ok: true, value: await get }
  } catch (err) {
    return {
      ok: false,
      code: err instanceof GroupcacheError ? err.code : undefined,
      message: err instanceof Error ? err.message : String(err),
    }
  }
}

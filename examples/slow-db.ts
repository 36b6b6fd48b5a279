// A stand-in for an expensive lookup: each call takes DB_DELAY_MS (default
// 50 ms) and is counted, so you can see how rarely groupcache calls it.
import { NotFoundError } from 'groupcache'

/** User is what the pretend database returns. */
export interface User {
  id: string
  name: string
  loadedBy: string
}

const delayMs = Number(process.env.DB_DELAY_MS ?? 50)
let calls = 0
let queries = 0

/**
 * findUser simulates a slow query; it honours `signal` like a real driver.
 * Ids starting with `nobody` do not exist.
 */
export async function findUser(id: string, replica: string, signal: AbortSignal): Promise<User> {
  calls++
  queries++
  await slowly(signal)
  if (id.startsWith('nobody')) throw new NotFoundError(`no user ${id}`)
  return { id, name: `User ${id}`, loadedBy: replica }
}

/**
 * findUsers simulates one `WHERE id IN (...)` query: as slow as one lookup,
 * whatever the number of ids. Ids starting with `nobody` do not exist.
 */
export async function findUsers(ids: readonly string[], replica: string, signal: AbortSignal): Promise<Map<string, User>> {
  calls += ids.length
  queries++
  await slowly(signal)
  return new Map(ids.filter((id) => !id.startsWith('nobody')).map((id) => [id, { id, name: `User ${id}`, loadedBy: replica }]))
}

function slowly(signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, delayMs)
    signal.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true })
  })
}

/** listIds reads `?ids=1,2,3` (at most 100 ids), for the list routes. */
export function listIds(value: unknown): string[] {
  return typeof value === 'string' ? value.split(',').filter(Boolean).slice(0, 100) : []
}

let renders = 0

/** renderReport stands for an expensive page: 100 ms of work, counted. */
export async function renderReport(id: string, replica: string): Promise<{ id: string; total: number; renderedBy: string }> {
  renders++
  await new Promise((resolve) => setTimeout(resolve, 100))
  return { id, total: id.length * 1000, renderedBy: replica }
}

/** reportRenders is how many reports this process rendered. */
export function reportRenders(): number {
  return renders
}

/** dbCalls is how many users this process read from the database. */
export function dbCalls(): number {
  return calls
}

/** dbQueries is how many queries this process sent (findUsers reads many users in one). */
export function dbQueries(): number {
  return queries
}

/** replicaConfig reads PORT, HOST, SELF, PEERS and GROUPCACHE_SECRET from the environment. */
export function replicaConfig(): { port: number; host: string; self: string; peers: string[]; secret?: string } {
  const port = Number(process.env.PORT ?? 3000)
  const host = process.env.HOST ?? '127.0.0.1'
  const self = process.env.SELF ?? `http://127.0.0.1:${port}`
  const peers = process.env.PEERS ? process.env.PEERS.split(',') : [self]
  const secret = process.env.GROUPCACHE_SECRET
  return secret ? { port, host, self, peers, secret } : { port, host, self, peers }
}

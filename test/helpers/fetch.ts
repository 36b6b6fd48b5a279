// fetch for the tests that talk to replicas over HTTP: every request on a
// connection of its own. With keep-alive, a server closing a connection
// that had been idle for its keepAliveTimeout raced the client sending the
// next request on it; on a busy machine the two sides' idle timers drift
// apart and bursts of reused connections failed with "other side closed".
import { Agent, fetch, type RequestInit, type Response } from 'undici'
import { ANSWER_TIMEOUT_MS } from './wait.js'

const freshConnections = new Agent({ pipelining: 0 })

/** fetchFresh is fetch on a new connection (127.0.0.1 only), given up after ANSWER_TIMEOUT_MS. */
export function fetchFresh(url: string, init: Omit<RequestInit, 'dispatcher' | 'signal'> = {}): Promise<Response> {
  if (!url.startsWith('http://127.0.0.1:')) throw new Error(`tests only ask 127.0.0.1, not ${url}`)
  return fetch(url, { ...init, dispatcher: freshConnections, signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) })
}

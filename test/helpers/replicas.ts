import { type Child, startChildren, stopChildren } from './child.js'
import { fetchFresh } from './fetch.js'
import { reservePorts, urlsFor } from './ports.js'

/** Framework names an example replica (`examples/<framework>.ts`). */
export type ExampleFramework = 'express' | 'fastify' | 'koa'

/** ReplicaStats is what an example's `/stats` route answers. */
export interface ReplicaStats {
  framework: string
  dbCalls: number
  dbQueries: number
  renders: number
  gets: number
  cacheHits: number
  peerLoads: number
  peerErrors: number
  localLoads: number
  serverRequests: number
  hotItems: number
}

/** Replica is one example app running in a child process on 127.0.0.1. */
export interface Replica {
  framework: ExampleFramework
  url: string
  port: number
  child: Child
}

/**
 * startReplicas runs `examples/<framework>.ts` (or `entry`) once per
 * framework listed, all peers of one another, and resolves when each has said it is listening. On failure
 * it stops the ones that started.
 */
export async function startReplicas(frameworks: ExampleFramework[], env: Record<string, string> = {}, entry?: string): Promise<Replica[]> {
  const ports = await reservePorts(frameworks.length)
  const urls = urlsFor(ports)
  const children = await startChildren(
    frameworks.map((framework, i) => ({
      what: `${framework} replica ${urls[i]}`,
      // `entry`, when given, is one script for every framework, told which by FRAMEWORK.
      script: entry ?? `examples/${framework}.ts`,
      env: { ...env, FRAMEWORK: framework, PORT: String(ports[i]), HOST: '127.0.0.1', SELF: urls[i] as string, PEERS: urls.join(',') },
      ready: { stdout: 'listening' },
    })),
  )
  return children.map((child, i) => ({
    framework: frameworks[i] as ExampleFramework,
    url: urls[i] as string,
    port: ports[i] as number,
    child,
  }))
}

/** stopReplicas sends SIGTERM, and SIGKILL to any replica still up after a grace period. */
export async function stopReplicas(replicas: Replica[]): Promise<void> {
  await stopChildren(replicas.map((r) => r.child))
}

/** getJson fetches a JSON route of a replica (127.0.0.1 only). */
export async function getJson<T>(replica: Replica, path: string): Promise<{ status: number; body: T }> {
  const res = await fetchFresh(`http://127.0.0.1:${replica.port}${path}`)
  return { status: res.status, body: (await res.json()) as T }
}

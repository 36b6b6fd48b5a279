import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { reservePorts, urlsFor } from './ports.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const START_TIMEOUT_MS = 20_000

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
  child: ChildProcess
}

/**
 * startReplicas runs `examples/<framework>.ts` (or `entry`) once per
 * framework listed, all peers of one another, and resolves when each has said it is listening. On failure
 * it stops the ones that started.
 */
export async function startReplicas(
  frameworks: ExampleFramework[],
  env: Record<string, string> = {},
  entry?: string,
): Promise<Replica[]> {
  const ports = await reservePorts(frameworks.length)
  const urls = urlsFor(ports)
  const replicas: Replica[] = []
  try {
    await Promise.all(
      frameworks.map(async (framework, i) => {
        const port = ports[i] as number
        // `entry`, when given, is one script for every framework, told which by FRAMEWORK.
        const child = spawn(process.execPath, ['--import', 'tsx', entry ?? `examples/${framework}.ts`], {
          cwd: ROOT,
          env: { ...process.env, ...env, FRAMEWORK: framework, PORT: String(port), HOST: '127.0.0.1', SELF: urls[i], PEERS: urls.join(',') },
          stdio: ['ignore', 'pipe', 'inherit'],
        })
        replicas.push({ framework, url: urls[i] as string, port, child })
        await waitForLine(child, 'listening', `${framework} replica`)
      }),
    )
  } catch (err) {
    await stopReplicas(replicas)
    throw err
  }
  return replicas
}

function waitForLine(child: ChildProcess, text: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = ''
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${seen}`)), START_TIMEOUT_MS)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited with ${code}: ${seen}`))
    })
    child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes(text)) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
}

/** stopReplicas sends SIGTERM, and SIGKILL to any replica still up after 5 s. */
export async function stopReplicas(replicas: Replica[]): Promise<void> {
  await Promise.all(
    replicas.map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
    }),
  )
}

/** getJson fetches a JSON route of a replica (127.0.0.1 only). */
export async function getJson<T>(replica: Replica, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`http://127.0.0.1:${replica.port}${path}`, { signal: AbortSignal.timeout(15_000) })
  return { status: res.status, body: (await res.json()) as T }
}

import { createServer, type Server } from 'node:net'

/**
 * reservePorts asks the OS for `n` free ports on 127.0.0.1 (port 0), holding
 * them all open at once so they are distinct, then releases them for the
 * nodes under test, whose `self` URL must be known before they bind.
 */
export async function reservePorts(n: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    for (let i = 0; i < n; i++) {
      const server = createServer()
      servers.push(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, '127.0.0.1', () => resolve())
      })
    }
    return servers.map((s) => {
      const address = s.address()
      if (address === null || typeof address === 'string') throw new Error('no port')
      return address.port
    })
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  }
}

/** urlsFor turns ports into peer URLs on loopback. */
export function urlsFor(ports: number[]): string[] {
  return ports.map((port) => `http://127.0.0.1:${port}`)
}

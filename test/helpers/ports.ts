import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'

/**
 * LOWEST_PORT is the lowest port reservePorts picks: clear of the well-known
 * and most registered service ports.
 */
const LOWEST_PORT = 10_000
/** MIN_CHOICE is how many ports below the ephemeral range make picking there worth it. */
const MIN_CHOICE = 4_096
/** TRIES bounds the ports tried for one reservation before falling back to port 0. */
const TRIES = 50

/**
 * choice is the span of ports reservePorts picks from: below the kernel's
 * ephemeral range (Linux's ip_local_port_range), where no listen(0) and no
 * outgoing connection of any process is ever given a port, so a port freed
 * for a child stays free until the child binds it. Undefined where the range
 * cannot be read or leaves too little room: then port 0 it is.
 */
function choice(): { from: number; to: number } | undefined {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    return Number.isInteger(low) && low - LOWEST_PORT >= MIN_CHOICE ? { from: LOWEST_PORT, to: low } : undefined
  } catch {
    return undefined
  }
}

function listen(server: Server, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' && port !== 0 ? resolve(false) : reject(err)))
    server.listen(port, '127.0.0.1', () => resolve(true))
  })
}

/**
 * reservePorts asks for `n` free ports on 127.0.0.1, holding them all open
 * at once so they are distinct, then releases them for the nodes under
 * test, whose `self` URL must be known before they bind.
 *
 * Between the release and the child's bind (seconds: a child compiles its
 * imports with tsx first) any other process may take a port, and the child
 * then dies with EADDRINUSE. A port the OS picked (port 0) comes from the
 * ephemeral range, which every listen(0) of the other test file running
 * alongside draws from too; so the ports are picked at random below that
 * range instead (see `choice`), where only an explicit bind to that very
 * number can take them.
 */
export async function reservePorts(n: number): Promise<number[]> {
  const span = choice()
  const servers: Server[] = []
  try {
    for (let i = 0; i < n; i++) {
      let server = createServer()
      servers.push(server)
      let bound = false
      for (let tries = 0; span !== undefined && !bound && tries < TRIES; tries++) {
        bound = await listen(server, span.from + Math.floor(Math.random() * (span.to - span.from)))
        if (!bound) {
          server = createServer()
          servers[servers.length - 1] = server
        }
      }
      if (!bound) await listen(server, 0)
    }
    return servers.map((s) => {
      const address = s.address()
      if (address === null || typeof address === 'string') throw new Error('no port')
      return address.port
    })
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => (s.listening ? s.close(resolve) : resolve(undefined)))))
  }
}

/** urlsFor turns ports into peer URLs on loopback. */
export function urlsFor(ports: number[]): string[] {
  return ports.map((port) => `http://127.0.0.1:${port}`)
}

/**
 * reservePortWhere reserves one port for which `accept` holds, as
 * reservePorts does. It tests port numbers before binding any (a test that
 * needs a port giving some ring layout may find one in a few hundred), in
 * a random order over the whole span, so that it fails only if no free
 * port there is accepted at all.
 */
export async function reservePortWhere(accept: (port: number) => boolean): Promise<number> {
  const span = choice() ?? { from: LOWEST_PORT, to: LOWEST_PORT + MIN_CHOICE }
  const size = span.to - span.from
  const start = Math.floor(Math.random() * size)
  for (let i = 0; i < size; i++) {
    const port = span.from + ((start + i) % size)
    if (!accept(port)) continue
    const server = createServer()
    if (await listen(server, port)) {
      await new Promise((resolve) => server.close(resolve))
      return port
    }
  }
  throw new Error(`no free port in ${span.from}–${span.to} was accepted`)
}

import { createServer, request, type Server } from 'node:http'

/** CountingProxy forwards HTTP to one target and counts what went through. */
export interface CountingProxy {
  /** requests lists each request as `METHOD path`, in arrival order. */
  readonly requests: string[]
  /** count is the number of requests whose method is `method` (all, if omitted). */
  count(method?: string): number
  close(): Promise<void>
}

/**
 * startCountingProxy listens on 127.0.0.1:`port` and forwards every request
 * to 127.0.0.1:`target` unchanged, so that a node's peers, given the proxy's
 * URL, reach the node and the test sees how many requests they sent.
 */
export async function startCountingProxy(port: number, target: number): Promise<CountingProxy> {
  const requests: string[] = []
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`)
    const upstream = request(
      // A connection per request: a kept-alive one could be closed by the
      // target just as it is reused, and a 502 would look like a peer failure.
      {
        host: '127.0.0.1',
        port: target,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, connection: 'close' },
        agent: false,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502)
      res.end()
    })
    req.pipe(upstream)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  return {
    requests,
    count: (method) => (method === undefined ? requests.length : requests.filter((r) => r.startsWith(`${method} `)).length),
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

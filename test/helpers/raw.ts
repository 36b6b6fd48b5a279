import { request } from 'node:http'
import { ANSWER_TIMEOUT_MS } from './wait.js'

/** RawAnswer is what a raw HTTP request got back. */
export interface RawAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

/**
 * rawRequest sends a request with the path exactly as given (no URL
 * normalisation, unlike fetch), to 127.0.0.1 only.
 */
export function rawRequest(
  port: number,
  path: string,
  options: { method?: string | undefined; headers?: Record<string, string> | undefined; body?: Uint8Array | undefined } = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      },
    )
    req.setTimeout(ANSWER_TIMEOUT_MS, () => req.destroy(new Error('raw request timed out')))
    req.on('error', reject)
    req.end(options.body)
  })
}

import type { IncomingMessage, ServerResponse } from 'node:http'
import { BodyTooLarge } from './errors.js'
import type { PeerRequest, PeerResponse } from './handler.js'

// node:http's glue for the framework-neutral peer handler, shared by
// `gc.listen()` and every adapter whose framework hands out node:http objects.

/**
 * toPeerRequest adapts a node:http request for the handler, as every
 * adapter and `listen()` need. Its signal aborts when the client goes away
 * before the answer is written; it is made only if a load asks for it.
 */
export function toPeerRequest(req: IncomingMessage, res: ServerResponse): PeerRequest {
  let controller: AbortController | undefined
  let gone = false
  res.once('close', () => {
    gone = !res.writableFinished
    if (gone) controller?.abort()
  })
  return {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: req.headers,
    get signal() {
      if (controller === undefined) {
        controller = new AbortController()
        if (gone) controller.abort()
      }
      return controller.signal
    },
    readBody: (maxBytes) => readBody(req, maxBytes),
  }
}

/** readBody collects a request body, refusing more than `maxBytes`. */
async function readBody(req: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length'])
  if (declared > maxBytes) throw new BodyTooLarge()
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > maxBytes) throw new BodyTooLarge()
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

/** writePeerResponse writes the handler's answer on a node:http response. */
export function writePeerResponse(res: ServerResponse, answer: PeerResponse): void {
  if (res.headersSent || res.destroyed) return
  if (answer.stream !== undefined) {
    res.writeHead(answer.status, answer.headers)
    void writeStream(res, answer.stream)
    return
  }
  res.writeHead(answer.status, { ...answer.headers, 'content-length': answer.body.length })
  res.end(answer.body)
}

/** writeStream writes a deferred body as it comes, and stops if the asker leaves. */
async function writeStream(res: ServerResponse, stream: AsyncIterable<Uint8Array>): Promise<void> {
  try {
    for await (const chunk of stream) {
      if (res.destroyed) return
      res.write(chunk)
    }
    res.end()
  } catch {
    res.destroy()
  }
}

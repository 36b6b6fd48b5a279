import type { IncomingMessage, OutgoingHttpHeader, ServerResponse } from 'node:http'
import { BodyTooLarge } from './errors.js'
import type { ServedValue } from './group.js'
import {
  type FastPeerHandler,
  frameLength,
  isServedValue,
  type PeerHandler,
  type PeerRequest,
  type PeerResponse,
  qpsText,
  type Reply,
  replyNow,
} from './handler.js'
import { GENERATION_HEADER, PROTOBUF, PROTOCOL_HEADER, PROTOCOL_VERSION } from './protocol.js'
import type { MinuteQpsText } from './wire.js'

// node:http's glue for the framework-neutral peer handler, shared by
// `gc.listen()` and every adapter whose framework hands out node:http objects.

/**
 * NodePeerRequest is a node:http request as the handler sees it. It makes
 * nothing per request that a cache hit does not need: the signal, and the
 * listener that aborts it when the client goes away before the answer is
 * written, are made only if a load asks for the signal.
 */
class NodePeerRequest implements PeerRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingMessage['headers']
  readonly #req: IncomingMessage
  readonly #res: ServerResponse
  #controller: AbortController | undefined

  constructor(req: IncomingMessage, res: ServerResponse) {
    this.method = req.method ?? 'GET'
    this.url = req.url ?? '/'
    this.headers = req.headers
    this.#req = req
    this.#res = res
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = new AbortController()
      this.#controller = controller
      const res = this.#res
      const gone = (): boolean => !res.writableFinished
      if (res.destroyed) {
        if (gone()) controller.abort()
      } else {
        res.once('close', () => {
          if (gone()) controller.abort()
        })
      }
    }
    return this.#controller.signal
  }

  /** readBody collects the request body, refusing more than `maxBytes`. */
  readBody(maxBytes: number): Promise<Uint8Array> {
    return readBody(this.#req, maxBytes)
  }
}

/**
 * toPeerRequest adapts a node:http request for the handler, as every
 * adapter and `listen()` need. Its signal aborts when the client goes away
 * before the answer is written; it is made only if a load asks for it.
 */
export function toPeerRequest(req: IncomingMessage, res: ServerResponse): PeerRequest {
  return new NodePeerRequest(req, res)
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

/**
 * servePeerRequest answers a node:http request with `handler` (a
 * Groupcache's `handler`, or any PeerHandler) and writes the answer on
 * `res`. With a Groupcache's own handler, an answer the cache has at once
 * is written before this returns, as the cached GetResponse bytes, with no
 * promise, copy or encoding in between; anything else is written when it
 * is ready, and the returned promise then says when (it never rejects).
 */
export function servePeerRequest(handler: PeerHandler, req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
  const now = (handler as Partial<FastPeerHandler>)[replyNow]
  let reply: Reply | Promise<PeerResponse>
  try {
    reply = now === undefined ? handler(toPeerRequest(req, res)) : now(new NodePeerRequest(req, res))
  } catch (err) {
    res.destroy(err instanceof Error ? err : undefined)
    return undefined
  }
  if (reply instanceof Promise) {
    return reply.then(
      (answer) => writePeerResponse(res, answer),
      (err: unknown) => {
        res.destroy(err instanceof Error ? err : undefined)
      },
    )
  }
  if (isServedValue(reply)) writeValue(res, reply, (handler as FastPeerHandler)[qpsText])
  else writePeerResponse(res, reply)
  return undefined
}

/**
 * writeValue writes a value's answer: its frame as held (a one-byte string
 * goes out with the headers in one write), and the minute_qps field after
 * it, as a one-byte string too, when the answer has one. Headers go as a
 * flat list, which node:http takes without building an object.
 */
function writeValue(res: ServerResponse, value: ServedValue, text: MinuteQpsText): void {
  if (res.headersSent || res.destroyed) return
  const length = frameLength(value)
  const headers: OutgoingHttpHeader[] =
    value.generation > 0
      ? ['content-type', PROTOBUF, PROTOCOL_HEADER, PROTOCOL_VERSION, GENERATION_HEADER, String(value.generation), 'content-length', length]
      : ['content-type', PROTOBUF, PROTOCOL_HEADER, PROTOCOL_VERSION, 'content-length', length]
  res.writeHead(200, headers)
  const frame = value.frame
  const qps = value.minuteQps
  if (typeof frame === 'string') {
    res.end(qps === undefined ? frame : frame + text.of(qps), 'latin1')
  } else if (qps === undefined) {
    res.end(frame)
  } else {
    res.write(frame)
    res.end(text.of(qps), 'latin1')
  }
}

/** writePeerResponse writes the handler's answer on a node:http response. */
export function writePeerResponse(res: ServerResponse, answer: PeerResponse): void {
  if (res.headersSent || res.destroyed) return
  const headers: OutgoingHttpHeader[] = []
  for (const name in answer.headers) headers.push(name, answer.headers[name] as string)
  if (answer.stream !== undefined) {
    res.writeHead(answer.status, headers)
    void writeStream(res, answer.stream)
    return
  }
  headers.push('content-length', answer.body.length)
  res.writeHead(answer.status, headers)
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

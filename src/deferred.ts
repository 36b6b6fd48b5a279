/**
 * Deferred answers: how an owner that is still loading a key tells the
 * asker it is alive, so that a slow load is not taken for a dead peer.
 *
 * Our client sends WAIT_HEADER with the silence it tolerates (its
 * peerTimeoutMs). An owner whose load outlasts a third of that answers at
 * once with status 200 and DEFERRED_TYPE, sends a heartbeat byte (0x00) every
 * third of it, and ends the body with one frame holding the real answer:
 * `0x01`, a 4-byte big-endian length, that many bytes of JSON
 * `{ status, headers }`, then the answer's body. Protobuf never starts with
 * 0x00 (field 0 does not exist), and neither does a frame, so heartbeats
 * are plain padding.
 *
 * Go clients never send WAIT_HEADER, so they always get an ordinary answer;
 * Go servers never defer, so our client reads their answers as ever.
 */

/** WAIT_HEADER carries the asker's silence budget in ms; only our client sends it. */
export const WAIT_HEADER = 'x-groupcache-wait'

/** DEFERRED_TYPE is the content type of a deferred answer. */
export const DEFERRED_TYPE = 'application/x-groupcache-deferred'

/** HEARTBEAT is what an owner sends to say it is still loading. */
export const HEARTBEAT: Uint8Array = Uint8Array.of(0)

const FRAME = 1

/**
 * MIN_HEARTBEAT_MS bounds how often an owner sends heartbeats, whatever an
 * asker asks for, so that many requests with a forged tiny budget joining
 * one slow load cannot make it spin. An asker with a peerTimeoutMs under
 * about twice this hears too little and gives up as before.
 */
export const MIN_HEARTBEAT_MS = 100

/** MAX_WAIT_MS caps the silence budget an owner honours. */
const MAX_WAIT_MS = 24 * 60 * 60 * 1000

/** InnerAnswer is the real answer a deferred body ends with. */
export interface InnerAnswer {
  status: number
  headers: Record<string, string>
  body: Uint8Array
}

/**
 * parseWait reads WAIT_HEADER: the asker's silence budget in ms, or
 * undefined when absent or malformed (a Go client, or garbage).
 */
export function parseWait(value: string | readonly string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^[1-9][0-9]{0,9}$/.test(value)) return undefined
  return Math.min(Number(value), MAX_WAIT_MS)
}

/** heartbeatEvery is how often an owner beats for an asker's budget. */
export function heartbeatEvery(waitMs: number): number {
  return Math.max(MIN_HEARTBEAT_MS, Math.floor(waitMs / 3))
}

/** encodeFrame makes the final frame of a deferred body. */
export function encodeFrame(answer: InnerAnswer): Uint8Array {
  const meta = Buffer.from(JSON.stringify({ status: answer.status, headers: answer.headers }))
  const out = Buffer.allocUnsafe(5 + meta.length + answer.body.length)
  out[0] = FRAME
  out.writeUInt32BE(meta.length, 1)
  meta.copy(out, 5)
  out.set(answer.body, 5 + meta.length)
  return out
}

/**
 * decodeDeferred reads a deferred body: heartbeats, then one frame. It
 * throws on anything else, which the client treats as a broken answer.
 */
export function decodeDeferred(bytes: Uint8Array): InnerAnswer {
  let i = 0
  while (i < bytes.length && bytes[i] === 0) i++
  if (bytes[i] !== FRAME || bytes.length < i + 5) throw new Error('a deferred answer ended without its answer')
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const length = buf.readUInt32BE(i + 1)
  const start = i + 5
  if (buf.length < start + length) throw new Error('a deferred answer was cut short')
  const meta = JSON.parse(buf.subarray(start, start + length).toString('utf8')) as unknown
  if (typeof meta !== 'object' || meta === null) throw new Error('a deferred answer without a status')
  const { status, headers } = meta as { status?: unknown; headers?: unknown }
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) {
    throw new Error('a deferred answer without a valid status')
  }
  const clean: Record<string, string> = {}
  if (typeof headers === 'object' && headers !== null) {
    for (const [name, value] of Object.entries(headers)) if (typeof value === 'string') clean[name.toLowerCase()] = value
  }
  return { status, headers: clean, body: buf.subarray(start + length) }
}

/**
 * deferredBody yields a heartbeat at once and then every `everyMs` until
 * `answer` settles, then the frame holding it. A consumer that stops early
 * (the asker went away) stops the heartbeats.
 */
export async function* deferredBody(answer: Promise<InnerAnswer>, everyMs: number): AsyncGenerator<Uint8Array> {
  let settled = false
  const done = answer.then(
    () => (settled = true),
    () => (settled = true),
  )
  yield HEARTBEAT
  while (!settled) {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, everyMs)))])
    clearTimeout(timer)
    if (!settled) yield HEARTBEAT
  }
  yield encodeFrame(await answer)
}

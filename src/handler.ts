import {
  BATCH_CONTENT_TYPE,
  type BatchItem,
  decodeBatchKeys,
  encodeBatchAnswer,
  type FramedItem,
  MAX_BATCH_BODY_BYTES,
  MAX_BATCH_KEYS,
} from './batch.js'
import { DEFERRED_TYPE, deferredBody, heartbeatEvery, parseWait, WAIT_HEADER } from './deferred.js'
import { BodyTooLarge, CodecError, errorMessage, GroupcacheError } from './errors.js'
import type { ServedGroup, ServedOutcome, ServedValue } from './group.js'
import { decodeHandoff, HANDOFF_TYPE, type HandoffEntry, MAX_HANDOFF_BODY_BYTES, PEEK_HEADER } from './handoff.js'
import {
  acceptGeneration,
  bearer,
  errorAnswer,
  GENERATION_HEADER,
  MAX_ERROR_TEXT,
  PROTOBUF,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  parseRefreshWait,
  REFRESH_HEADER,
  STATS_PATH,
  unescapePathPart,
} from './protocol.js'
import { decodeGetResponse, MINUTE_QPS_FIELD_BYTES, MinuteQpsText, minuteQpsField } from './wire.js'

// The peer server: how this node answers the others, whatever framework
// carries the request. The client side is http.ts; what both must agree on
// is protocol.ts; node:http's glue is node-http.ts.

const TEXT = 'text/plain; charset=utf-8'
const JSON_TYPE = 'application/json; charset=utf-8'
const ALLOW = 'GET, PUT, DELETE'

/**
 * PeerRequest is what the framework-neutral handler needs of an HTTP
 * request: the method, the raw request target (path and query, not decoded),
 * the headers with lower-case names, a signal that aborts when the client
 * goes away, and a way to read the body (only `PUT` and `POST` have one).
 */
export interface PeerRequest {
  method: string
  url: string
  headers: Readonly<Record<string, string | readonly string[] | undefined>>
  readonly signal?: AbortSignal | undefined
  /** readBody reads at most `maxBytes` of the body; it rejects past that. */
  readBody?(maxBytes: number): Promise<Uint8Array>
}

/**
 * PeerResponse is the handler's answer, for the adapter to write as is.
 * When `stream` is set, the body is what it yields, written as it comes
 * (a deferred answer to our own peers, see deferred.ts), and `body` is empty.
 */
export interface PeerResponse {
  status: number
  headers: Record<string, string>
  body: Uint8Array
  stream?: AsyncIterable<Uint8Array> | undefined
}

/** PeerHandler serves the peer endpoint; it never rejects. */
export type PeerHandler = (req: PeerRequest) => Promise<PeerResponse>

/**
 * Reply is what the endpoint answers a request with inside this package: a
 * PeerResponse, or, for a GET it can answer from the cache at once, the
 * value itself, for the writer to send its frame as it is (see replyNow).
 */
export type Reply = PeerResponse | ServedValue

/** isServedValue tells a value to send as its frame from a PeerResponse. */
export function isServedValue(reply: Reply): reply is ServedValue {
  return 'frame' in reply
}

/**
 * replyNow keys, on a handler made by createPeerHandler, the function that
 * answers what it can at once: a Reply, or a promise of a PeerResponse
 * when the answer has to wait (a load, a body to read). The node:http
 * glue (`servePeerRequest`) uses it to write a cache hit in the same turn
 * as the request came, with no promise and no copy.
 */
export const replyNow: unique symbol = Symbol('groupcache.replyNow')

/**
 * qpsText keys, on a handler made by createPeerHandler, the writer of a
 * minute_qps field as a one-byte string (see MinuteQpsText), for the
 * node:http glue to send after a frame held as a string.
 */
export const qpsText: unique symbol = Symbol('groupcache.qpsText')

/** FastPeerHandler is a PeerHandler that also answers at once when it can. */
export interface FastPeerHandler extends PeerHandler {
  readonly [replyNow]: (req: PeerRequest) => Reply | Promise<PeerResponse>
  readonly [qpsText]: MinuteQpsText
}

/** frameLength is how many bytes a value's answer body takes. */
export function frameLength(value: ServedValue): number {
  const frame = value.frame
  return (typeof frame === 'string' ? frame.length : frame.byteLength) + (value.minuteQps === undefined ? 0 : MINUTE_QPS_FIELD_BYTES)
}

/**
 * valueResponse is a value's answer as a PeerResponse, for callers of the
 * handler: its body is a copy, so that nothing they do reaches the cache.
 */
function valueResponse(value: ServedValue): PeerResponse {
  const headers: Record<string, string> = { 'content-type': PROTOBUF }
  if (value.generation > 0) headers[GENERATION_HEADER] = String(value.generation)
  const frame = value.frame
  const qps = value.minuteQps
  const body = Buffer.allocUnsafe(frameLength(value))
  if (typeof frame === 'string') body.write(frame, 0, 'latin1')
  else body.set(frame)
  if (qps !== undefined) minuteQpsField(qps).copy(body, body.length - MINUTE_QPS_FIELD_BYTES)
  return { status: 200, headers, body }
}

function text(status: number, message: string, extra?: Record<string, string>): PeerResponse {
  return {
    status,
    headers: { 'content-type': TEXT, 'x-content-type-options': 'nosniff', ...extra },
    body: Buffer.from(`${message}\n`),
  }
}

/**
 * echo makes a name from the request safe to say back: at most 100 bytes,
 * control characters replaced, so an answer stays short and one line.
 */
function echo(name: string): string {
  const bytes = Buffer.from(name)
  const short =
    bytes.length <= 100
      ? name
      : `${bytes
          .subarray(0, 100)
          .toString()
          .replace(/\uFFFD$/, '')}…`
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is replaced
  return short.replace(/[\u0000-\u001f\u007f]/g, '?')
}

function noContent(): PeerResponse {
  return { status: 204, headers: {}, body: new Uint8Array(0) }
}

/**
 * SecretCheck compares an Authorization header with the accepted ones in
 * constant time: every character of each accepted value is compared with
 * the header's character at the same place (a missing one reads as 0), the
 * differences ORed together with no early exit, and the lengths compared
 * as numbers, so neither the content nor the length of a secret leaks
 * through timing; every accepted secret is compared each time, so neither
 * does which one matched. It works on the strings themselves: copying the
 * header into a buffer for timingSafeEqual cost more than the comparison.
 * (Hashing both sides first does the same, at several microseconds a
 * request.)
 */
class SecretCheck {
  readonly #accepted: readonly string[]

  constructor(secrets: readonly string[]) {
    this.#accepted = secrets.map(bearer)
  }

  accepts(header: string | readonly string[] | undefined): boolean {
    const given = typeof header === 'string' ? header : ''
    const length = given.length
    let ok = false
    for (const expected of this.#accepted) {
      let diff = length ^ expected.length
      for (let i = 0; i < expected.length; i++) diff |= (i < length ? given.charCodeAt(i) : 0) ^ expected.charCodeAt(i)
      ok = diff === 0 || ok
    }
    return ok
  }
}

/**
 * createPeerHandler builds the framework-neutral peer endpoint:
 * `GET {group}/{key}` answers a value, `DELETE {group}/{key}` drops a key,
 * `PUT {group}/{key}` stores one, `DELETE {group}` with a generation header
 * clears the group, `POST {group}` answers a batch of keys (see serveBatch),
 * `PUT {group}` of HANDOFF_TYPE takes a leaving peer's entries (see
 * receive); with PEEK_HEADER a `GET` or a batch answers from memory only
 * (see peek). Checks run in an order that gives nothing away: the path
 * must be under `basePath` (else 404), then the secret (401, before any
 * group is looked at), the method (405), a change on a node without a
 * secret (403: a hand-off is one), a closing node (503, except to a peek
 * until its hand-off is done), the escapes (400), the group (404) and the
 * key's length (400). A GET or a batch from our own client that outlasts a
 * third of its wait budget is answered early (see deferred.ts); a peek
 * never is.
 */
export function createPeerHandler(options: {
  basePath: string
  /** secrets are the accepted secrets; none means an open endpoint. */
  secrets: readonly string[]
  maxKeyBytes: number
  lookup: (group: string) => ServedGroup | undefined
  isClosed: () => boolean
  /**
   * isGone is true once a closing node has handed its entries over: until
   * then it still answers peeks (from memory), so that the nodes that took
   * its keys can take its copies too. Default: `isClosed`.
   */
  isGone?: (() => boolean) | undefined
  /** stats answers `GET {basePath}_stats`, as JSON. */
  stats: () => unknown
  /**
   * acceptsChanges allows PUT, DELETE and generations on requests; without
   * it they are refused (403) or ignored. Default: true.
   */
  acceptsChanges?: boolean | undefined
  /** now is the clock generations are checked against (default Date.now). */
  now?: (() => number) | undefined
}): PeerHandler {
  const { basePath, maxKeyBytes, lookup, isClosed, stats } = options
  const isGone = options.isGone ?? isClosed
  const acceptsChanges = options.acceptsChanges ?? true
  const now = options.now ?? Date.now
  // A generation on a read is a change too: ignored without a secret.
  const generationOf = (req: PeerRequest): number => {
    const header = req.headers[GENERATION_HEADER]
    return acceptsChanges && header !== undefined ? (acceptGeneration(header, now()) ?? 0) : 0
  }
  const check = options.secrets.length === 0 ? undefined : new SecretCheck(options.secrets)
  const serve = (req: PeerRequest): Reply | Promise<PeerResponse> => {
    const url = req.url
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    if (!path.startsWith(basePath)) return text(404, 'not found')
    if (check !== undefined && !check.accepts(req.headers.authorization)) {
      return text(401, 'unauthorized', { 'www-authenticate': 'Bearer' })
    }
    const method = req.method
    const rest = path.slice(basePath.length)
    // A batch names a group, not a key: POST {group}, in our content type.
    // Any other POST is refused as before, so that it learns nothing.
    const batch = method === 'POST' && rest.indexOf('/') === -1 && isBatch(req.headers['content-type'])
    if (method !== 'GET' && method !== 'PUT' && method !== 'DELETE' && !batch) {
      return text(405, 'method not allowed', { allow: ALLOW })
    }
    if ((method === 'PUT' || method === 'DELETE') && !acceptsChanges) return refuseChange()
    const peeking = req.headers[PEEK_HEADER] !== undefined && (method === 'GET' || batch)
    if (peeking ? isGone() : isClosed()) return text(503, 'closing', { connection: 'close' })
    // A batch of peeks answers from memory, as a single peek does; a batch
    // from our client that outlasts a third of its wait is deferred, as a GET.
    if (batch) {
      if (peeking) return peekBatch(rest, req, maxKeyBytes, lookup, generationOf(req))
      const answer = serveBatch(rest, req, maxKeyBytes, lookup, generationOf(req))
      const wait = parseWait(req.headers[WAIT_HEADER])
      return wait === undefined ? answer : deferIfSlow(answer, heartbeatEvery(wait))
    }
    // `_stats` has no `/`, so it can name no key of any group.
    if (rest === STATS_PATH && method === 'GET') {
      return { status: 200, headers: { 'content-type': JSON_TYPE }, body: Buffer.from(JSON.stringify(stats())) }
    }
    const slash = rest.indexOf('/')
    let groupName: string
    let key: string | undefined
    try {
      groupName = unescapePathPart(slash === -1 ? rest : rest.slice(0, slash))
      key = slash === -1 ? undefined : unescapePathPart(rest.slice(slash + 1))
    } catch {
      return text(400, 'bad request: malformed escape')
    }
    const handingOff = key === undefined && method === 'PUT' && req.headers['content-type'] === HANDOFF_TYPE
    if (key === undefined && method !== 'DELETE' && !handingOff) return text(400, 'bad request: expected {group}/{key}')
    const group = lookup(groupName)
    if (group === undefined) return text(404, `no such group: ${echo(groupName)}`)
    if (handingOff) return receive(group, req, maxKeyBytes, now())
    if (key === undefined) return clear(group, req, now())
    if (key.length * 3 > maxKeyBytes && Buffer.byteLength(key) > maxKeyBytes) {
      return text(400, `bad request: key longer than ${maxKeyBytes} bytes`)
    }
    if (method === 'DELETE') {
      group.removeLocally(key)
      return noContent()
    }
    if (method === 'PUT') return set(group, key, req)
    // A peek answers from memory at once: never a load, never deferred.
    if (peeking) return peek(group, key, generationOf(req))
    return get(group, key, req, generationOf(req))
  }
  // Every answer says it comes from us, so that our peers can tell a Node
  // node (which understands PUT and DELETE) from a Go one (which would
  // answer them as a GET, loading the key). A value's writer says it too.
  const reply = (req: PeerRequest): Reply | Promise<PeerResponse> => {
    const answer = serve(req)
    if (answer instanceof Promise) return answer.then(stamp)
    return isServedValue(answer) ? answer : stamp(answer)
  }
  async function groupcachePeerHandler(req: PeerRequest): Promise<PeerResponse> {
    const answer = reply(req)
    return answer instanceof Promise || !isServedValue(answer) ? answer : stamp(valueResponse(answer))
  }
  return Object.assign(groupcachePeerHandler, { [replyNow]: reply, [qpsText]: new MinuteQpsText() }) satisfies FastPeerHandler
}

/** stamp marks an answer as ours (PROTOCOL_HEADER). */
function stamp(answer: PeerResponse): PeerResponse {
  answer.headers[PROTOCOL_HEADER] = PROTOCOL_VERSION
  return answer
}

/**
 * get answers a GET for a key: a value the group has at once is the reply
 * itself; one that has to wait is answered when it comes, or deferred (see
 * deferIfSlow) for our own peers when it is slow.
 */
function get(group: ServedGroup, key: string, req: PeerRequest, generation: number): Reply | Promise<PeerResponse> {
  let value: ServedValue | Promise<ServedValue>
  try {
    value = group.serve(key, req, generation, parseRefreshWait(req.headers[REFRESH_HEADER]))
  } catch (err) {
    return errorResponse(err)
  }
  if (!(value instanceof Promise)) return value
  const answer = value.then(valueResponse, errorResponse)
  const wait = parseWait(req.headers[WAIT_HEADER])
  return wait === undefined ? answer : deferIfSlow(answer, heartbeatEvery(wait))
}

/**
 * deferIfSlow gives an answer that is ready within one heartbeat period as
 * it is; a slower one becomes a deferred answer: headers now, heartbeats
 * while the load runs, the answer at its end. So an asker waiting on a long
 * load hears that its owner is alive, and neither gives up (loading the key
 * a second time) nor counts the owner as failing. Only our client asks for
 * this; Go clients always get the plain answer.
 */
async function deferIfSlow(answer: Promise<PeerResponse>, everyMs: number): Promise<PeerResponse> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), everyMs)
  })
  const first = await Promise.race([answer, late])
  clearTimeout(timer)
  if (first !== undefined) return first
  const inner = answer.then((a) => ({ status: a.status, headers: a.headers, body: a.body }))
  return {
    status: 200,
    headers: { 'content-type': DEFERRED_TYPE },
    body: new Uint8Array(0),
    stream: deferredBody(inner, everyMs),
  }
}

/**
 * refuseChange answers a PUT or DELETE on a node without a secret: anyone
 * could send it. Go peers never do, and ours only with a secret.
 */
function refuseChange(): PeerResponse {
  return text(403, 'forbidden: storing, dropping and clearing entries needs options.secret on every node')
}

function clear(group: ServedGroup, req: PeerRequest, now: number): PeerResponse {
  const generation = acceptGeneration(req.headers[GENERATION_HEADER], now)
  if (generation === undefined) {
    return text(
      400,
      `bad request: clearing a group needs the ${GENERATION_HEADER} header, a generation at most an hour ahead of this node's clock`,
    )
  }
  group.clearLocally(generation)
  return noContent()
}

async function set(group: ServedGroup, key: string, req: PeerRequest): Promise<PeerResponse> {
  if (req.readBody === undefined) return text(400, 'bad request: no body')
  let body: Uint8Array
  try {
    // The largest storable value, plus room for the protobuf framing.
    body = await req.readBody(group.maxEntryBytes + 32)
  } catch (err) {
    if (err instanceof BodyTooLarge) return text(413, 'value too large')
    return text(400, 'bad request: unreadable body')
  }
  let msg: ReturnType<typeof decodeGetResponse>
  try {
    msg = decodeGetResponse(body)
  } catch {
    return text(400, 'bad request: malformed GetResponse')
  }
  try {
    group.setLocally(key, Uint8Array.prototype.slice.call(msg.value), msg.expire ?? 0, msg.staleUntil ?? 0)
  } catch (err) {
    // setLocally decodes a peer's value first: one its codec cannot read is refused, never kept.
    return text(400, err instanceof CodecError ? "bad request: a value the group's codec cannot read" : 'bad request: unusable value')
  }
  return noContent()
}

/**
 * peek answers a new owner from the main cache only: 200 with the entry (its
 * frame, as a hit is written), or 404 (without ERROR_HEADER: no verdict,
 * just not cached). Never a load.
 */
function peek(group: ServedGroup, key: string, generation: number): Reply {
  const value = group.peekLocally(key, generation)
  return value === undefined ? text(404, 'not cached') : value
}

/**
 * receive takes a leaving peer's hand-off (`PUT {group}`, HANDOFF_TYPE): a
 * body of at most MAX_HANDOFF_BODY_BYTES (else 413), well formed as a whole
 * or refused as a whole (400), from a sender whose generation, if it sends
 * one, this node accepts (else 400) and is not behind its own (else 409).
 * The group decides entry by entry what it keeps (see Group#receive).
 */
async function receive(group: ServedGroup, req: PeerRequest, maxKeyBytes: number, now: number): Promise<PeerResponse> {
  const header = req.headers[GENERATION_HEADER]
  const generation = header === undefined ? 0 : acceptGeneration(header, now)
  if (generation === undefined) return text(400, "bad request: a hand-off generation must be at most an hour ahead of this node's clock")
  if (req.readBody === undefined) return text(400, 'bad request: no body')
  let body: Uint8Array
  try {
    body = await req.readBody(MAX_HANDOFF_BODY_BYTES)
  } catch (err) {
    if (err instanceof BodyTooLarge) return text(413, 'hand-off too large')
    return text(400, 'bad request: unreadable body')
  }
  let entries: HandoffEntry[]
  try {
    entries = decodeHandoff(body, maxKeyBytes)
  } catch {
    return text(400, 'bad request: malformed hand-off')
  }
  const kept = group.receive(entries, generation)
  if (kept === false) return text(409, 'hand-off from an older generation')
  return noContent()
}

/**
 * serveBatch answers `POST {group}` of type `BATCH_CONTENT_TYPE`: the keys,
 * each a varint length and its UTF-8 bytes. The answer is a sequence of
 * length-delimited items, each a key and its GetResponse or the verdict an
 * error header would carry for it (batch.ts). A batch is bounded like a
 * single request, and more: at most `MAX_BATCH_KEYS` keys (400 beyond) in at
 * most `MAX_BATCH_BODY_BYTES` (413 beyond, before reading it), each key
 * valid UTF-8 of at most `maxKeyBytes` (400); its loads keep to the group's
 * `maxPeerLoads`; its keys are never forwarded. Only our peers send
 * batches; Go's server answers this request with 400, loading nothing.
 */
async function serveBatch(
  rest: string,
  req: PeerRequest,
  maxKeyBytes: number,
  lookup: (group: string) => ServedGroup | undefined,
  generation: number,
): Promise<PeerResponse> {
  const asked = await readBatch(rest, req, maxKeyBytes, lookup)
  if ('status' in asked) return asked
  const { group, keys } = asked
  let outcomes: ServedOutcome[]
  try {
    outcomes = await group.serveMany(keys, req, generation)
  } catch (err) {
    return errorResponse(err)
  }
  const items = outcomes.map((outcome, i): BatchItem | FramedItem => {
    const key = keys[i] as string
    if ('value' in outcome) return valueItem(key, outcome.value)
    return { key, error: verdictCode(outcome.error), message: errorMessage(outcome.error).slice(0, MAX_ERROR_TEXT) }
  })
  return { status: 200, headers: { 'content-type': BATCH_CONTENT_TYPE }, body: encodeBatchAnswer(items) }
}

/**
 * peekBatch answers a batch with PEEK_HEADER: each key from the main cache,
 * as `peek` does for one, and a not-found item for a key not cached. It
 * never loads: the asker loads what it lacks.
 */
async function peekBatch(
  rest: string,
  req: PeerRequest,
  maxKeyBytes: number,
  lookup: (group: string) => ServedGroup | undefined,
  generation: number,
): Promise<PeerResponse> {
  const asked = await readBatch(rest, req, maxKeyBytes, lookup)
  if ('status' in asked) return asked
  const { group, keys } = asked
  const items = keys.map((key): BatchItem | FramedItem => {
    const value = group.peekLocally(key, generation)
    if (value === undefined) return { key, error: 'ERR_GROUPCACHE_NOT_FOUND', message: 'not cached' }
    return valueItem(key, value)
  })
  return { status: 200, headers: { 'content-type': BATCH_CONTENT_TYPE }, body: encodeBatchAnswer(items) }
}

/**
 * valueItem is a batch answer's item for a value, as a GET would answer it:
 * the value's frame as the cache holds it, written as it is (no copy of the
 * value to make, no GetResponse to encode), then the key's rate.
 */
function valueItem(key: string, value: ServedValue): FramedItem {
  return { key, frame: value.frame, generation: value.generation, minuteQps: value.minuteQps }
}

/**
 * readBatch reads a batch request: its group and its keys, or the answer
 * that refuses it (see serveBatch for the bounds).
 */
async function readBatch(
  rest: string,
  req: PeerRequest,
  maxKeyBytes: number,
  lookup: (group: string) => ServedGroup | undefined,
): Promise<{ group: ServedGroup; keys: string[] } | PeerResponse> {
  let groupName: string
  try {
    groupName = unescapePathPart(rest)
  } catch {
    return text(400, 'bad request: malformed escape')
  }
  const group = lookup(groupName)
  if (group === undefined) return text(404, `no such group: ${echo(groupName)}`)
  if (req.readBody === undefined) return text(400, 'bad request: no body')
  let body: Uint8Array
  try {
    body = await req.readBody(MAX_BATCH_BODY_BYTES)
  } catch (err) {
    if (err instanceof BodyTooLarge) return text(413, `batch larger than ${MAX_BATCH_BODY_BYTES} bytes`)
    return text(400, 'bad request: unreadable body')
  }
  let keys: string[]
  try {
    keys = decodeBatchKeys(body, MAX_BATCH_KEYS)
  } catch (err) {
    return text(400, `bad request: ${errorMessage(err)}`)
  }
  if (keys.some((key) => key.length > maxKeyBytes / 3 && Buffer.byteLength(key) > maxKeyBytes)) {
    return text(400, `bad request: key longer than ${maxKeyBytes} bytes`)
  }
  return { group, keys }
}

/** isBatch says whether a content type is a batch's (parameters aside). */
function isBatch(type: string | readonly string[] | undefined): boolean {
  return typeof type === 'string' && type.split(';')[0]?.trim().toLowerCase() === BATCH_CONTENT_TYPE
}

/**
 * verdictCode is the code a batch item carries for a key that has no value:
 * the error's own code, or LOAD_FAILED for anything a loader threw that is
 * not ours (as a single request's 500 says).
 */
function verdictCode(err: unknown): string {
  return err instanceof GroupcacheError ? err.code : 'ERR_GROUPCACHE_LOAD_FAILED'
}

function errorResponse(err: unknown): PeerResponse {
  const answer = errorAnswer(err)
  return text(answer.status, answer.message, answer.headers)
}

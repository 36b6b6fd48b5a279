// The request generator of the fuzz test: seeded, so a failure replays, and
// producing only requests that the peer endpoint must refuse. A small model
// of the endpoint (`wouldServe`) throws away the rare random request that
// happens to be valid, so "the loader never ran" is a fair assertion.
import { Prng } from '../helpers/prng.js'

export const BASE = '/_groupcache/'
export const SECRET = 'fuzz-secret'
export const VALID_AUTH = `Bearer ${SECRET}`
export const GROUP = 'g'
export const MAX_KEY_BYTES = 256
/** MAX_BODY is the longest answer the endpoint may give to a bad request. */
export const MAX_BODY = 256
/** HEADER_LIMIT is Node's default header limit, and gc.listen()'s with MAX_KEY_BYTES = 256. */
export const HEADER_LIMIT = 16 * 1024

/** Kind names what is wrong with a request. */
export type Kind =
  | 'auth'
  | 'method'
  | 'token'
  | 'escape'
  | 'long-key'
  | 'group'
  | 'no-key'
  | 'generation'
  | 'random-path'
  | 'raw-path'
  | 'huge-header'

/** PARSER_KINDS are refused by Node's HTTP parser before any app code runs. */
export const PARSER_KINDS: ReadonlySet<Kind> = new Set<Kind>(['token', 'raw-path', 'huge-header'])

const WEIGHTS: Record<Kind, number> = {
  auth: 12,
  method: 12,
  token: 3,
  escape: 18,
  'long-key': 9,
  group: 14,
  'no-key': 5,
  generation: 5,
  'random-path': 16,
  'raw-path': 2,
  'huge-header': 3,
}

export interface FuzzRequest {
  kind: Kind
  method: string
  path: string
  headers: Record<string, string>
  body?: string
}

// Printable ASCII except '?', which would end the path (and could cut the
// defect off into the query).
const PATH_CHARS = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i))
  .filter((c) => c !== '?')
  .join('')
const SAFE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!$&'()*,;=:@"
const QUERY_CHARS = `${SAFE_CHARS}%/?=&+#`
const VALID_ESCAPES = ['%2F', '%20', '%25', '%2B', '%3F', '%C3%A9', '%E4%B8%AD', '%F0%9F%98%80', '%00', '%0A', '%7F']
/** BAD_ESCAPES are escapes decodeURIComponent refuses: malformed, or not UTF-8. */
export const BAD_ESCAPES = [
  '%',
  '%z',
  '%zz',
  '%G0',
  '%F',
  '%%',
  '%%41',
  '%u0041',
  '%-1',
  '%+1', // malformed
  '%FF',
  '%FE',
  '%80',
  '%BF',
  '%C3',
  '%E4%B8',
  '%F0%9F%98', // bytes that are not UTF-8, truncated sequences
  '%C0%AF',
  '%C1%BF',
  '%E0%80%AF',
  '%F0%80%80%AF', // overlong encodings
  '%ED%A0%80',
  '%ED%BF%BF', // UTF-16 surrogates
  '%F4%90%80%80',
  '%F8%88%80%80%80',
  '%FC%84%80%80%80%80', // past U+10FFFF, 5- and 6-byte forms
]
const ODD_METHODS = [
  'POST',
  'PATCH',
  'OPTIONS',
  'HEAD',
  'PROPFIND',
  'PROPPATCH',
  'MKCOL',
  'COPY',
  'MOVE',
  'LOCK',
  'UNLOCK',
  'SEARCH',
  'REPORT',
  'TRACE',
  'PURGE',
]
const TOKEN_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&*+-.^_|~'
const WRONG_AUTH = [
  '',
  'Bearer',
  'Bearer wrong',
  `bearer ${SECRET}`,
  `BEARER ${SECRET}`,
  `Bearer  ${SECRET}`,
  `Bearer${SECRET}`,
  `Bearer ${SECRET.slice(0, -1)}`,
  `Bearer ${SECRET}x`,
  `Bearer ${SECRET.toUpperCase()}`,
  `Basic ${Buffer.from(`user:${SECRET}`).toString('base64')}`,
  `Token ${SECRET}`,
  `Bearer ${SECRET}\u00e9`,
  `Bearer "${SECRET}"`,
  `Bearer ${SECRET}, Bearer ${SECRET}`,
]
const BAD_GENERATIONS = ['', '0', '-1', '01', 'abc', '1.5', '1e3', '+1', '0x10', '1 2', '99999999999999999', '9007199254740993', '\u00b9']

/** unescape mirrors the endpoint's form decoding of one path part. */
function unescape(part: string): string {
  if (part.indexOf('%') === -1 && part.indexOf('+') === -1) return part
  return decodeURIComponent(part.replaceAll('+', ' '))
}

function parseGeneration(value: string | undefined): number | undefined {
  if (typeof value !== 'string' || !/^[1-9][0-9]{0,15}$/.test(value)) return undefined
  const n = Number(value)
  return Number.isSafeInteger(n) ? n : undefined
}

/**
 * wouldServe is a model of the endpoint: true when it would serve the
 * request (a GET that loads, a DELETE or PUT that changes the cache), so that
 * the generator can throw it away. It errs towards true.
 */
export function wouldServe(req: FuzzRequest): boolean {
  if (req.kind === 'huge-header') return false
  const q = req.path.indexOf('?')
  const path = q === -1 ? req.path : req.path.slice(0, q)
  if (!path.startsWith(BASE)) return false
  if (/[^\x21-\x7e]/.test(req.path)) return false // refused by Node's parser
  const auth = req.headers.authorization
  if (auth === undefined || auth.trim() !== VALID_AUTH) return false
  if (req.method !== 'GET' && req.method !== 'PUT' && req.method !== 'DELETE') return false
  const rest = path.slice(BASE.length)
  const slash = rest.indexOf('/')
  let group: string
  let key: string | undefined
  try {
    group = unescape(slash === -1 ? rest : rest.slice(0, slash))
    key = slash === -1 ? undefined : unescape(rest.slice(slash + 1))
  } catch {
    return false
  }
  if (group !== GROUP) return false
  if (key === undefined) return req.method === 'DELETE' && parseGeneration(req.headers['x-groupcache-generation']?.trim()) !== undefined
  return Buffer.byteLength(key) <= MAX_KEY_BYTES
}

/**
 * sendable throws unless undici will send the request. A request undici
 * refuses (an InvalidArgumentError for a header value outside Latin-1, say)
 * is a generator bug, and undici 7 then also marks a pool connection busy for
 * good: after `connections` of them the pool stalls, and so would the test.
 */
function sendable(req: FuzzRequest): void {
  let bad: string | undefined
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(req.method)) bad = 'method'
  else if (/[^\u0021-\u00ff]/.test(req.path)) bad = 'path'
  else if (Object.values(req.headers).some((v) => /[^\t\u0020-\u007e\u0080-\u00ff]/.test(v))) bad = 'header value'
  if (bad !== undefined) throw new Error(`the generator made a request undici would refuse (its ${bad}): ${describeRequest(req)}`)
}

/**
 * FuzzGenerator yields invalid requests, one after another, from a seed.
 * The n-th request depends only on the seed and n.
 */
export class FuzzGenerator {
  readonly #r: Prng
  /** discarded counts generated requests the model said would be served. */
  discarded = 0

  constructor(seed: number) {
    this.#r = new Prng(seed)
  }

  next(): FuzzRequest {
    for (let tries = 0; tries < 100; tries++) {
      const req = this.#make(this.#r.weighted(WEIGHTS))
      if (wouldServe(req)) {
        this.discarded++
        continue
      }
      sendable(req)
      return req
    }
    throw new Error('the generator keeps making valid requests')
  }

  /** validPart is a path part that decodes fine: safe characters and good escapes. */
  #validPart(maxLength: number): string {
    const r = this.#r
    let out = ''
    const length = r.int(0, maxLength)
    while (out.length < length) out += r.chance(0.15) ? r.pick(VALID_ESCAPES) : r.string(SAFE_CHARS, 1)
    return out
  }

  /** badPart is a path part with at least one escape that cannot be decoded. */
  #badPart(): string {
    const r = this.#r
    let out = this.#validPart(20)
    const bad = r.int(1, 3)
    for (let i = 0; i < bad; i++) out += r.pick(BAD_ESCAPES) + this.#validPart(8)
    return out
  }

  #query(): string {
    const r = this.#r
    return r.chance(0.15) ? `?${r.string(QUERY_CHARS, r.int(0, 40))}` : ''
  }

  #auth(headers: Record<string, string>): void {
    const r = this.#r
    const choice = r.int(0, 3)
    if (choice === 0) return // no Authorization at all
    if (choice === 1) headers.authorization = r.pick(WRONG_AUTH)
    else if (choice === 2) headers.authorization = `Bearer ${r.string(TOKEN_CHARS.toLowerCase() + TOKEN_CHARS, r.int(1, 200))}`
    else headers.authorization = r.string(`${PATH_CHARS} \t`, r.int(1, 300)).trim() || 'x'
  }

  /** anyPath is a path under BASE that may or may not be valid. */
  #anyPath(): string {
    const r = this.#r
    switch (r.int(0, 3)) {
      case 0:
        return `${BASE}${GROUP}/${this.#validPart(40)}`
      case 1:
        return `${BASE}${this.#validPart(10)}/${this.#validPart(40)}${this.#query()}`
      case 2:
        return `${BASE}${GROUP}/${this.#badPart()}`
      default:
        return `${BASE}${r.string(PATH_CHARS, r.int(0, 120))}`
    }
  }

  #make(kind: Kind): FuzzRequest {
    const r = this.#r
    const headers: Record<string, string> = { authorization: VALID_AUTH }
    const req: FuzzRequest = { kind, method: 'GET', path: '', headers }
    switch (kind) {
      case 'auth':
        delete headers.authorization
        this.#auth(headers)
        req.method = r.pick(['GET', 'GET', 'GET', 'DELETE', 'PUT'])
        req.path = this.#anyPath()
        break
      case 'method':
        req.method = r.pick(ODD_METHODS)
        req.path = this.#anyPath()
        if (req.method !== 'HEAD' && r.chance(0.3)) {
          headers['content-type'] = r.pick([
            'application/json',
            'text/plain',
            'application/x-protobuf',
            'multipart/form-data; boundary=x',
            'text/weird',
          ])
          req.body = r.string(PATH_CHARS, r.int(0, 500))
        }
        break
      case 'token':
        // A method no HTTP parser knows: a token that is not a method.
        req.method = `X${r.string(TOKEN_CHARS, r.int(1, 12))}`
        req.path = this.#anyPath()
        break
      case 'escape': {
        req.method = r.pick(['GET', 'GET', 'GET', 'DELETE', 'PUT'])
        const where = r.int(0, 2)
        const group = where === 1 ? GROUP : this.#badPart()
        const key = where === 0 ? this.#validPart(30) : this.#badPart()
        req.path = r.chance(0.05) ? `${BASE}${group}` : `${BASE}${group}/${key}${this.#query()}`
        break
      }
      case 'long-key': {
        req.method = r.pick(['GET', 'GET', 'GET', 'DELETE', 'PUT'])
        // A key of more than MAX_KEY_BYTES bytes once decoded, spelt with a
        // mix of plain characters and escapes, its escaped form under the header limit.
        const target = r.chance(0.5) ? r.int(MAX_KEY_BYTES + 1, MAX_KEY_BYTES + 8) : r.int(MAX_KEY_BYTES + 1, 3000)
        const chars = ['a', 'Z', '0', '-', '中', '😀', 'é', '/', ' ', '+', '%', '?', '#']
        let key = ''
        let bytes = 0
        while (bytes <= target) {
          const c = r.pick(chars)
          const plain = /^[A-Za-z0-9\-_.~]$/.test(c)
          key += plain && r.chance(0.7) ? c : c === ' ' && r.chance(0.5) ? '+' : encodeURIComponent(c)
          bytes += Buffer.byteLength(c)
        }
        req.path = `${BASE}${GROUP}/${key}${this.#query()}`
        break
      }
      case 'group': {
        req.method = r.pick(['GET', 'GET', 'GET', 'DELETE', 'PUT'])
        let group: string
        switch (r.int(0, 5)) {
          case 0:
            group = r.pick(['', '.', '..', 'G', 'g+', 'g%20', '%67%67', 'gg', '_routes', '%2E%2E', 'g%00', 'g%2F', '%0A%0D', '%E4%B8%AD'])
            break
          case 1:
            // Longer than any group may be (255 bytes).
            group = r.string(SAFE_CHARS, r.int(256, 2000))
            break
          case 2:
            group = Array.from({ length: r.int(1, 400) }, () => r.pick(VALID_ESCAPES)).join('')
            break
          case 3:
            group = Array.from({ length: r.int(1, 300) }, () =>
              r.pick(['%E4%B8%AD', '%F0%9F%98%80', '%C3%A9', '%0A', '%0D', '%1B', 'x']),
            ).join('')
            break
          default:
            group = this.#validPart(60) || 'nope'
        }
        req.path = r.chance(0.1) ? `${BASE}${group}` : `${BASE}${group}/${this.#validPart(40)}${this.#query()}`
        break
      }
      case 'no-key':
        req.method = r.pick(['GET', 'PUT'])
        req.path = r.pick([`${BASE}${GROUP}`, BASE, `${BASE}?${GROUP}/k`, `${BASE}${GROUP}?/k`]) + this.#query()
        break
      case 'generation':
        req.method = 'DELETE'
        req.path = `${BASE}${GROUP}${this.#query()}`
        if (r.chance(0.8)) headers['x-groupcache-generation'] = r.pick(BAD_GENERATIONS)
        break
      case 'random-path':
        if (r.chance(0.3)) this.#auth(headers)
        req.method = r.pick(['GET', 'GET', 'GET', 'DELETE', 'PUT'])
        req.path = `${BASE}${r.string(PATH_CHARS, r.int(0, 300))}${this.#query()}`
        break
      case 'raw-path': {
        // Bytes outside printable ASCII in the request target.
        const raw = Array.from({ length: r.int(1, 6) }, () => String.fromCharCode(r.int(0x80, 0xff))).join('')
        req.path = `${BASE}${GROUP}/${this.#validPart(10)}${raw}${this.#validPart(10)}`
        break
      }
      case 'huge-header': {
        // Otherwise a valid GET: only the size of the header section is wrong.
        req.path = `${BASE}${GROUP}/${this.#validPart(40)}`
        const size = r.int(HEADER_LIMIT + 600, 40 * 1024)
        switch (r.int(0, 2)) {
          case 0:
            headers['x-pad'] = r.string(SAFE_CHARS, size)
            break
          case 1:
            headers.authorization = `Bearer ${r.string(SAFE_CHARS, size)}`
            break
          default:
            for (let i = 0; i * 64 < size; i++) headers[`x-pad-${i}`] = r.string(SAFE_CHARS, 56)
        }
        break
      }
    }
    return req
  }
}

/** describeRequest is a short, replayable description of a request for failure messages. */
export function describeRequest(req: FuzzRequest): string {
  const headers = Object.entries(req.headers).map(
    ([k, v]) => `${k}: ${v.length > 60 ? `${JSON.stringify(v.slice(0, 60))}… (${v.length} chars)` : JSON.stringify(v)}`,
  )
  const path = req.path.length > 160 ? `${req.path.slice(0, 160)}… (${req.path.length} chars)` : req.path
  return `[${req.kind}] ${req.method} ${JSON.stringify(path)} {${headers.slice(0, 6).join(', ')}${headers.length > 6 ? `, … ${headers.length} headers` : ''}}`
}

/** Answer is an HTTP answer as the fuzz test saw it. */
export interface Answer {
  status: number
  contentType: string | undefined
  protocol: string | undefined
  body: Buffer
}

/**
 * EXPECTED is the status due to the kinds of request that have exactly one
 * thing wrong, in the order the endpoint checks: the secret first (401), then
 * the method (405), then the path. The other kinds may be wrong in several
 * ways at once; any 4xx will do for them.
 */
const EXPECTED: Partial<Record<Kind, number>> = {
  auth: 401,
  method: 405,
  'long-key': 400,
  'no-key': 400,
  generation: 400,
  'huge-header': 431,
}

// Fastify's own answers, given before any route runs (README: the Fastify section).
const FASTIFY_CLIENT_ERRORS = new Map<number, string>([
  // Fastify's default clientErrorHandler, for what Node's parser refuses;
  // Node's own answer to the same (no body) is accepted from the others.
  [400, '{"error":"Bad Request","message":"Client Error","statusCode":400}'],
  [431, '{"error":"Request Header Fields Too Large","message":"Exceeded maximum allowed HTTP header size","statusCode":431}'],
])

/**
 * judge returns why an answer to an invalid request is wrong, or undefined
 * when it is acceptable: a 4xx with our short plain-text body; Node's own
 * body-less 400/431 from its parser (parser-level requests only); on
 * Fastify, its router's 400 FST_ERR_BAD_URL for undecodable escapes, and its
 * client-error handler's JSON in place of Node's parser answers.
 */
export function judge(fastify: boolean, req: FuzzRequest, answer: Answer): string | undefined {
  const { status, contentType, body } = answer
  if (status < 400 || status > 499) return `status ${status}`
  const expected = EXPECTED[req.kind]
  if (contentType === 'text/plain; charset=utf-8') {
    if (answer.protocol !== '1') return `a text/plain ${status} without x-groupcache-protocol`
    if (body.length > MAX_BODY) return `our ${status} body is ${body.length} bytes (> ${MAX_BODY})`
    if (expected !== undefined && status !== expected) return `our ${status} where ${expected} was due`
    return undefined
  }
  if (contentType === undefined && body.length === 0 && (status === 400 || status === 431)) {
    if (!PARSER_KINDS.has(req.kind)) return `Node's parser answered ${status} to a request it should have parsed`
    if (expected !== undefined && status !== expected) return `Node's ${status} where ${expected} was due`
    return undefined
  }
  if (fastify && contentType?.startsWith('application/json')) {
    if (status === 400 && req.method === 'HEAD' && body.length === 0) return undefined
    let code: unknown
    try {
      code = (JSON.parse(body.toString()) as { code?: unknown }).code
    } catch {
      return `Fastify ${status} with a body that is not JSON: ${JSON.stringify(body.toString().slice(0, 120))}`
    }
    if (status === 400 && code === 'FST_ERR_BAD_URL') return undefined
    if (PARSER_KINDS.has(req.kind) && FASTIFY_CLIENT_ERRORS.get(status) === body.toString()) return undefined
    return `Fastify ${status} ${JSON.stringify(body.toString().slice(0, 160))}`
  }
  return `${status} with content-type ${String(contentType)} and a ${body.length}-byte body ${JSON.stringify(body.toString().slice(0, 120))}`
}

/** RawCase is a byte sequence for a raw socket, and how to end the connection. */
export interface RawCase {
  kind: 'truncated' | 'garbage' | 'malformed'
  bytes: Buffer
  /** end: half-close and read what comes back; destroy: reset at once. */
  close: 'end' | 'destroy'
}

const COMPLETE = (target: string, extra = ''): string =>
  `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${VALID_AUTH}\r\n${extra}\r\n`

/**
 * rawCases makes requests no HTTP client would send: valid requests cut off
 * before their header section ends (so they must never reach the loader),
 * random bytes, and header sections a strict parser refuses. The ones whose
 * headers could complete name an unknown group, so that even a lenient
 * parser could not make them load.
 */
export function rawCases(seed: number, n: number): RawCase[] {
  const r = new Prng(seed)
  const malformed = [
    COMPLETE('/_groupcache/nope/k', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n'),
    COMPLETE('/_groupcache/nope/k', 'Content-Length: -1\r\n'),
    COMPLETE('/_groupcache/nope/k', 'Content-Length: 1, 2\r\n'),
    COMPLETE('/_groupcache/nope/k', 'Transfer-Encoding: chunked, identity\r\n'),
    COMPLETE('/_groupcache/nope/k', 'No-Colon-Here\r\n'),
    COMPLETE('/_groupcache/nope/k', 'Bad Name: x\r\n'),
    COMPLETE('/_groupcache/nope/k', 'X-Ctl: a\x01b\r\n'),
    COMPLETE('/_groupcache/nope/k', ' folded: line\r\n'),
    'GET /_groupcache/nope/k HTTP/9.9\r\nHost: a\r\n\r\n',
    'GET /_groupcache/nope/k\r\n\r\n',
    'GET  /_groupcache/nope/k HTTP/1.1\r\nHost: a\r\n\r\n',
    'GET /_groupcache/nope/k HTTP/1.1\nHost: a\n\n',
    'GET /_groupcache/nope/\x00k HTTP/1.1\r\nHost: a\r\n\r\n',
    'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', // a TLS ClientHello's first bytes
  ]
  const valid = COMPLETE('/_groupcache/g/truncated-key')
  const cases: RawCase[] = []
  for (let i = 0; i < n; i++) {
    const close = r.chance(0.8) ? 'end' : 'destroy'
    switch (r.int(0, 2)) {
      case 0: {
        // A valid, authenticated GET cut anywhere before its last byte.
        cases.push({ kind: 'truncated', bytes: Buffer.from(valid.slice(0, r.int(1, valid.length - 1)), 'latin1'), close })
        break
      }
      case 1: {
        const bytes = Buffer.alloc(r.int(1, 2048))
        for (let j = 0; j < bytes.length; j++) bytes[j] = r.int(0, 255)
        // Never a letter first, so that the bytes cannot begin a request.
        if ((bytes[0] as number) >= 0x41 && (bytes[0] as number) <= 0x7a) bytes[0] = 0x01
        const tail = r.chance(0.5) ? Buffer.from('\r\n\r\n') : Buffer.alloc(0)
        cases.push({ kind: 'garbage', bytes: Buffer.concat([bytes, tail]), close })
        break
      }
      default:
        cases.push({ kind: 'malformed', bytes: Buffer.from(r.pick(malformed), 'latin1'), close })
    }
  }
  return cases
}

/**
 * parseRawAnswers splits what a server wrote on a raw socket into answers.
 * Bodies are delimited by content-length, or run to the end of the stream.
 */
export function parseRawAnswers(data: Buffer): Answer[] | string {
  const answers: Answer[] = []
  let rest = data
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n')
    if (end === -1) return `an incomplete answer: ${JSON.stringify(rest.toString('latin1').slice(0, 120))}`
    const lines = rest.subarray(0, end).toString('latin1').split('\r\n')
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0] ?? '')
    if (m === null) return `not an HTTP answer: ${JSON.stringify((lines[0] ?? '').slice(0, 120))}`
    const headers = new Map<string, string>()
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
    }
    const length = headers.get('content-length')
    const bodyStart = end + 4
    const bodyEnd = length === undefined ? rest.length : bodyStart + Number(length)
    answers.push({
      status: Number(m[1]),
      contentType: headers.get('content-type'),
      protocol: headers.get('x-groupcache-protocol'),
      body: rest.subarray(bodyStart, bodyEnd),
    })
    rest = rest.subarray(bodyEnd)
  }
  return answers
}

import { createHash, randomBytes } from 'node:crypto'
import { type IncomingHttpHeaders, validateHeaderValue } from 'node:http'
import { Packr } from 'msgpackr'
import { type Codec, CodecError, type Group, type Groupcache, InvalidOptionError, type LoadContext } from '../src/index.js'

/** DEFAULT_ROUTE_GROUP names the internal group that holds cached responses. */
export const DEFAULT_ROUTE_GROUP = '_routes'
/** DEFAULT_ROUTE_CACHE_BYTES is the budget of that group on each node: 64 MiB. */
export const DEFAULT_ROUTE_CACHE_BYTES = 64 * 1024 * 1024
/** DEFAULT_ROUTE_TTL_MS is how long a cached response lives: 60 s. */
export const DEFAULT_ROUTE_TTL_MS = 60_000
/** DEFAULT_MAX_BODY_BYTES is the largest body cached: 1 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024
/**
 * BYPASS_TTL_MS bounds how long a "not cacheable" verdict (Set-Cookie,
 * `no-store`, a body too large) is remembered, so that such a route is not
 * rendered twice (on its owner, then locally) on every request.
 */
export const BYPASS_TTL_MS = 5_000
/**
 * RENDER_HEADER marks the owner's in-process replay of a request. Its value
 * is a random id known only to this process for the length of one render: a
 * client that sends the header gets no bypass and cannot poison the cache.
 */
export const RENDER_HEADER = 'x-groupcache-render'
/** SOURCE_HEADER tells clients where a cached route's response came from. */
export const SOURCE_HEADER = 'x-groupcache'
/** STALE_FOREVER_S stands for `staleMs: Infinity` in Cache-Control: a year. */
const STALE_FOREVER_S = 31_536_000

// The response headers worth keeping; the rest (dates, connection, cookies)
// belong to one response, not to the cached representation.
const KEPT_HEADERS = ['content-type', 'content-encoding', 'content-language', 'etag', 'last-modified', 'cache-control', 'vary', 'location']
// The headers an entry may carry: those kept but `etag`, which travels apart.
const ENTRY_HEADERS = new Set(KEPT_HEADERS.filter((name) => name !== 'etag'))

/** RouteRequest is what the route cache needs of a request. */
export interface RouteRequest {
  method: string
  /** url is the original request target: path and query, as received. */
  url: string
  headers: IncomingHttpHeaders
}

/** CacheRouteOptions configure one cached route; see README. */
export interface CacheRouteOptions {
  /** ttlMs is how long a response lives on every node (default 60 000). */
  ttlMs?: number | undefined
  /**
   * staleMs is how long a response past `ttlMs` is still served, with
   * `x-groupcache: stale`, while one render refreshes it for the cluster;
   * and kept if that render fails (default 0: none).
   */
  staleMs?: number | undefined
  /** vary lists request headers whose values become part of the key. */
  vary?: string[] | undefined
  /**
   * key returns the path and query to cache under and render from, to fold
   * requests that must share one entry (drop tracking parameters, say).
   */
  key?: ((req: RouteRequest) => string) | undefined
  /** statuses are the cacheable statuses (default [200]). */
  statuses?: number[] | undefined
  /** maxBodyBytes is the largest body cached (default 1 MiB). */
  maxBodyBytes?: number | undefined
  /** group names the internal group (default '_routes'). */
  group?: string | undefined
  /** maxBytes is the group's budget when this route creates it (default 64 MiB). */
  maxBytes?: number | undefined
  /** private caches requests with Authorization or Cookie; it needs `key` and `vary`. */
  private?: boolean | undefined
  /**
   * cacheControl adds `Cache-Control: public, max-age=<ttl>` (beside `Age`),
   * with `stale-while-revalidate` and `stale-if-error` when `staleMs` is set.
   */
  cacheControl?: boolean | undefined
}

/** Captured is a response as the owner's replay saw it. */
export interface Captured {
  status: number
  headers: Record<string, string | string[] | number | undefined>
  body: Buffer
}

/** Renderer replays a GET into the app in-process. */
export type Renderer = (url: string, headers: Record<string, string>) => Promise<Captured>

/** CachedResponse is one cached representation of a route. */
interface CachedResponse {
  readonly bypass: false
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Buffer
  readonly etag: string
  /** expires is the absolute expiry (unix ms), 0 for a response not kept. */
  readonly expires: number
  /** rendered is when the owner rendered it (unix ms), for `Age`; 0 if unknown. */
  readonly rendered: number
}

type RouteEntry = CachedResponse | { readonly bypass: true }

/** Render is one replay in progress on the owner. */
interface Render {
  /** vary names the request headers the replay carries. */
  readonly vary: readonly string[]
  /** route is the cached route the replay reached, if it reached one. */
  route?: Resolved
  /** refused is set when that route would not vary on every header replayed. */
  refused?: boolean
}

/** Reply is what an adapter writes for a cached route, or 'next' to run the handler. */
export type Decision =
  | { action: 'next'; source?: 'bypass' }
  | { action: 'reply'; status: number; headers: Record<string, string>; body: Buffer | undefined }

interface Resolved {
  ttlMs: number
  staleMs: number
  vary: string[]
  key: ((req: RouteRequest) => string) | undefined
  statuses: Set<number>
  maxBodyBytes: number
  group: string
  maxBytes: number
  private: boolean
  cacheControl: boolean
}

function resolve(options: CacheRouteOptions = {}): Resolved {
  const ttlMs = options.ttlMs ?? DEFAULT_ROUTE_TTL_MS
  if (typeof ttlMs !== 'number' || !(ttlMs > 0))
    throw InvalidOptionError.expected('options.ttlMs', 'a positive number of milliseconds', ttlMs)
  const staleMs = options.staleMs ?? 0
  if (typeof staleMs !== 'number' || !(staleMs >= 0))
    throw InvalidOptionError.expected('options.staleMs', 'a number of milliseconds, 0 or more', staleMs)
  const vary = options.vary ?? []
  if (!Array.isArray(vary) || vary.some((h) => typeof h !== 'string'))
    throw InvalidOptionError.expected('options.vary', 'an array of header names', vary)
  const statuses = options.statuses ?? [200]
  if (!Array.isArray(statuses) || statuses.some((s) => !Number.isInteger(s) || s < 100 || s > 599)) {
    throw InvalidOptionError.expected('options.statuses', 'an array of HTTP statuses', statuses)
  }
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0)
    throw InvalidOptionError.expected('options.maxBodyBytes', 'a positive integer', maxBodyBytes)
  if (options.key !== undefined && typeof options.key !== 'function')
    throw InvalidOptionError.expected('options.key', 'a function', options.key)
  if (options.private === true && options.key === undefined) {
    throw new InvalidOptionError('expected options.key with options.private: a private response must be keyed by its user')
  }
  return {
    ttlMs,
    staleMs,
    vary: vary.map((h) => h.toLowerCase()),
    key: options.key,
    statuses: new Set(statuses),
    maxBodyBytes,
    group: options.group ?? DEFAULT_ROUTE_GROUP,
    maxBytes: options.maxBytes ?? DEFAULT_ROUTE_CACHE_BYTES,
    private: options.private === true,
    cacheControl: options.cacheControl === true,
  }
}

/**
 * normalizeUrl sorts the query parameters by name (keeping the order of
 * repeated names), so that `?b=2&a=1` and `?a=1&b=2` share one entry.
 */
export function normalizeUrl(url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const params = new URLSearchParams(url.slice(q + 1))
  params.sort()
  const query = params.toString()
  return query === '' ? url.slice(0, q) : `${url.slice(0, q)}?${query}`
}

// The base URL light-my-request (and so Fastify's inject) resolves a replay against.
const REPLAY_BASE = 'http://localhost'
// Characters that WHATWG URL parsing keeps as they are in an http URL's path
// and query, after a `/` that no second `/` follows (see replaysAsIs).
const PLAIN_URL = /^\/(?!\/)[\w\-.~!$&()*+,;=:@/%?]*$/
const ESCAPED_DOT = /%2e/i

/**
 * replaysAsIs is true when the owner's in-process replay of `url` reaches
 * the app with exactly this path and query. The replay parses URLs by WHATWG
 * rules, which resolve `\`, `.` and `..` segments (`%2e` too) and re-encode
 * characters that the routers take as they come: `/r/..\admin\run` matches
 * `/r/:id` for the client's request but would render `/admin/run`. A URL
 * this changes is never cached (the client's own request runs instead), and
 * never rendered, so a cached route renders only the route that matched.
 */
export function replaysAsIs(url: string): boolean {
  if (!url.startsWith('/')) return false
  // Most URLs are left alone plainly: made of characters URL parsing keeps
  // as they are, with no `.` segment (`/.`), no `%2e`, no `//` start and no
  // empty query. Those need no parse (a new URL() was most of a hit's cost
  // on Fastify); anything else is parsed.
  if (PLAIN_URL.test(url) && !url.includes('/.') && !ESCAPED_DOT.test(url) && !url.endsWith('?')) return true
  let parsed: URL
  try {
    // light-my-request's own rule for a URL that starts with '//'.
    parsed = url.startsWith('//') ? new URL(REPLAY_BASE + url) : new URL(url, REPLAY_BASE)
  } catch {
    return false
  }
  return parsed.pathname + parsed.search === url
}

function headerValue(value: string | string[] | number | undefined): string | undefined {
  if (value === undefined) return undefined
  return Array.isArray(value) ? value.join(', ') : String(value)
}

function strongEtag(body: Buffer): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
}

// As the msgpack codec does (MSGPACK_SCRATCH_BYTES in src/codec.ts): a body
// of up to 1 MiB grows msgpackr's shared buffer to several times its size;
// after one, start msgpackr on a small buffer again. Cached entries copy
// their bytes out, so they keep no slice of the large one.
const SCRATCH_BYTES = 64 * 1024

function routeCodec(): Codec<RouteEntry> {
  const packr = new Packr({ useRecords: false, moreTypes: false })
  return {
    // Never handed to users, only written to sockets: safe to share frozen.
    immutable: true,
    encode: (entry) => {
      const bytes = packr.pack(entry.bypass ? [0] : [1, entry.status, entry.headers, entry.body, entry.etag, entry.expires, entry.rendered])
      if (bytes.buffer.byteLength > SCRATCH_BYTES) packr.useBuffer(Buffer.allocUnsafeSlow(8192))
      return bytes
    },
    decode: (bytes) => entryOf(packr.unpack(bytes)),
  }
}

const BYPASS: RouteEntry = Object.freeze({ bypass: true as const })

/**
 * entryOf checks what a route entry's bytes decoded to, as encode writes it:
 * `[0]`, or `[1, status, headers, body, etag, expires, rendered?]` (older
 * nodes send no `rendered`). The bytes may come from any peer, so anything
 * else (a status node:http refuses, a header the owner never keeps or a
 * value with a CR or LF in it, an expiry that is no time) throws a
 * CodecError: the group counts the answer as the peer's failure and renders
 * the route here, keeping nothing of it, where a wrong-shaped entry would
 * have answered 500 at `writeHead` or served headers no owner would send.
 */
function entryOf(parts: unknown): RouteEntry {
  if (!Array.isArray(parts)) throw malformed('it is no array')
  if (parts[0] === 0 && parts.length === 1) return BYPASS
  if (parts[0] !== 1 || (parts.length !== 6 && parts.length !== 7))
    throw malformed('not [0] nor [1, status, headers, body, etag, expires, rendered]')
  const [, status, given, body, etag, expires, rendered = 0] = parts as unknown[]
  // A captured response's final status: node:http refuses others, or takes a 1xx as informational.
  if (!Number.isInteger(status) || (status as number) < 200 || (status as number) > 599) throw malformed('its status is no HTTP status')
  if (typeof given !== 'object' || given === null || Array.isArray(given) || given instanceof Uint8Array)
    throw malformed('its headers are no map')
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(given)) {
    if (!ENTRY_HEADERS.has(name)) throw malformed(`it carries a header the owner never keeps (${JSON.stringify(name.slice(0, 40))})`)
    if (!isHeaderValue(value)) throw malformed(`its ${name} header is no header value`)
    headers[name] = value
  }
  if (!(body instanceof Uint8Array)) throw malformed('its body is no bytes')
  if (!isHeaderValue(etag) || etag === '') throw malformed('its etag is no header value')
  if (typeof rendered !== 'number' || !Number.isFinite(rendered) || rendered < 0) throw malformed('its render time is no time')
  // 0 for a response not kept; Infinity for `ttlMs: Infinity`.
  if (typeof expires !== 'number' || Number.isNaN(expires) || (expires !== 0 && expires < rendered))
    throw malformed('its expiry is no time')
  return Object.freeze({
    bypass: false as const,
    status: status as number,
    headers: Object.freeze(headers),
    body: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
    etag,
    expires,
    rendered,
  })
}

function malformed(why: string): CodecError {
  return new CodecError(`a malformed route entry: ${why}`)
}

/** isHeaderValue is true for a string node:http sends as a header value (no CR, LF or NUL). */
function isHeaderValue(value: unknown): value is string {
  if (typeof value !== 'string') return false
  try {
    validateHeaderValue('x', value)
    return true
  } catch {
    return false
  }
}

/**
 * RouteCaches is the framework-neutral half of `cacheRoute`, one per
 * Groupcache instance an adapter serves. On a miss, the key's owner replays
 * the request into its own app (through the adapter's `renderer`) with a
 * one-time marker that lets the route's handler run, and caches what it
 * answered; every other node gets that response from the owner. So the
 * handler runs once cluster-wide per key, however many replicas are asked.
 */
export class RouteCaches {
  readonly #gc: Groupcache
  readonly #groups = new Map<string, Group<RouteEntry>>()
  // Renders in progress on this node: marker id → what the replay carries
  // and the options of the route it reached, which decide what is kept.
  readonly #renders = new Map<string, Render>()
  #renderer: Renderer | undefined

  constructor(gc: Groupcache) {
    this.#gc = gc
  }

  /** setRenderer gives the cache a way to replay requests into the app. */
  setRenderer(renderer: Renderer): void {
    this.#renderer = renderer
  }

  /**
   * isRender is true for this process's own replay while it runs, so that
   * an adapter that can see which route a request matched before its
   * handler runs (Fastify) stops a replay that reached an uncached route.
   */
  isRender(headers: IncomingHttpHeaders): boolean {
    return this.#renders.size > 0 && this.#renderMarker({ method: 'GET', url: '', headers }) !== undefined
  }

  /** route prepares one cached route; its `decide` runs per request. */
  route(options?: CacheRouteOptions): (req: RouteRequest) => Promise<Decision> {
    const route = resolve(options)
    const group = this.#group(route)
    return (req) => this.#decide(route, group, req)
  }

  #group(route: Resolved): Group<RouteEntry> {
    let group = this.#groups.get(route.group)
    if (group === undefined) {
      group = this.#gc.newGroup<RouteEntry>({
        name: route.group,
        maxBytes: route.maxBytes,
        codec: routeCodec(),
        promote: true,
        load: (key, ctx) => this.#render(key, ctx),
      })
      this.#groups.set(route.group, group)
    }
    return group
  }

  /**
   * renderMarker recognises this process's own replay. The marker is 128
   * random bits that exist only while one render runs, so guessing one is
   * hopeless and a forged header is simply ignored.
   */
  #renderMarker(req: RouteRequest): Render | undefined {
    const marker = req.headers[RENDER_HEADER]
    return typeof marker === 'string' ? this.#renders.get(marker) : undefined
  }

  async #decide(route: Resolved, group: Group<RouteEntry>, req: RouteRequest): Promise<Decision> {
    const render = this.#renderMarker(req)
    if (render !== undefined) {
      render.route = route
      // A key is just bytes from a peer: headers this route does not vary on
      // were not sent by a client of it, so they must not reach its handler.
      if (render.vary.every((name) => route.vary.includes(name))) return { action: 'next' }
      render.refused = true
      return { action: 'reply', status: 400, headers: {}, body: Buffer.from('refused') }
    }
    const method = req.method
    if (method !== 'GET' && method !== 'HEAD') return { action: 'next', source: 'bypass' }
    if (!route.private && (req.headers.authorization !== undefined || req.headers.cookie !== undefined)) {
      return { action: 'next', source: 'bypass' }
    }
    const url = route.key === undefined ? normalizeUrl(req.url) : route.key(req)
    if (!replaysAsIs(url)) return { action: 'next', source: 'bypass' }
    let key = url
    if (route.vary.length > 0 || !url.startsWith('/')) {
      const vary: Record<string, string> = {}
      for (const name of route.vary) {
        const value = headerValue(req.headers[name])
        if (value !== undefined) vary[name] = value
      }
      key = JSON.stringify([url, vary])
    }
    const max = this.#gc.maxKeyBytes
    if (key.length * 3 > max && Buffer.byteLength(key) > max) return { action: 'next', source: 'bypass' }
    const { value, source } = await group.getWithSource(key)
    if (value.bypass) return { action: 'next', source: 'bypass' }
    return reply(value, source === 'load' ? 'miss' : source, route, req)
  }

  /** render is the group's loader: it runs on the key's owner. */
  async #render(key: string, ctx: LoadContext): Promise<RouteEntry> {
    const renderer = this.#renderer
    if (renderer === undefined) throw new Error('the route cache has no app to render with yet')
    const [url, vary] = parseKey(key)
    if (url === undefined || !replaysAsIs(url)) {
      // No client of a cached route asks for this (see `decide`): answer
      // "not cacheable" and keep nothing, so such keys cost no memory.
      ctx.cache = false
      return { bypass: true }
    }
    const id = randomBytes(16).toString('hex')
    const render: Render = { vary: Object.keys(vary) }
    this.#renders.set(id, render)
    let captured: Captured
    try {
      captured = await renderer(url, { ...vary, [RENDER_HEADER]: id })
    } finally {
      this.#renders.delete(id)
    }
    const route = render.route
    if (render.refused === true) {
      ctx.cache = false
      return { bypass: true }
    }
    const cacheControl = headerValue(captured.headers['cache-control']) ?? ''
    if (
      route === undefined ||
      captured.headers['set-cookie'] !== undefined ||
      /\b(no-store|private)\b/i.test(cacheControl) ||
      captured.body.length > route.maxBodyBytes
    ) {
      // Not ours to share: every node runs the handler itself for a while.
      ctx.ttlMs = Math.min(route?.ttlMs ?? BYPASS_TTL_MS, BYPASS_TTL_MS)
      return { bypass: true }
    }
    const headers: Record<string, string> = {}
    for (const name of KEPT_HEADERS) {
      const value = headerValue(captured.headers[name])
      if (value !== undefined) headers[name] = value
    }
    // The handler's own strong ETag stands; a weak one (Express makes them)
    // is replaced by one derived from the body.
    const etag = headers.etag !== undefined && !headers.etag.startsWith('W/') ? headers.etag : strongEtag(captured.body)
    delete headers.etag
    const cacheable = route.statuses.has(captured.status)
    // A response with another status (a handler that threw, say) still
    // answers everyone waiting for this render, but is not kept; if it was
    // a refresh, the stale response stays (stale-if-error).
    if (cacheable) {
      ctx.ttlMs = route.ttlMs
      ctx.staleMs = route.staleMs
    } else {
      ctx.cache = false
    }
    const rendered = Date.now()
    const expires = cacheable ? rendered + route.ttlMs : 0
    return { bypass: false, status: captured.status, headers, body: captured.body, etag, expires, rendered }
  }
}

/**
 * parseKey splits a route key into its URL and the header values it varies
 * on; a key is the URL itself when it starts with '/' and nothing varies,
 * else the JSON of [url, headers]. Keys come from peers too: anything else
 * gives no URL.
 */
function parseKey(key: string): [string | undefined, Record<string, string>] {
  if (!key.startsWith('[')) return [key, {}]
  let parsed: unknown
  try {
    parsed = JSON.parse(key)
  } catch {
    return [undefined, {}]
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[0] !== 'string') return [undefined, {}]
  const vary = parsed[1] as unknown
  if (typeof vary !== 'object' || vary === null || Array.isArray(vary)) return [undefined, {}]
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(vary)) {
    if (typeof value !== 'string' || name !== name.toLowerCase()) return [undefined, {}]
    headers[name] = value
  }
  return [parsed[0], headers]
}

/**
 * notModified evaluates a conditional GET as an origin server does (RFC
 * 9110 §13.2.2): If-None-Match by weak comparison (§8.8.3.2: `W/"x"`
 * matches `"x"`; `*` matches any), else If-Modified-Since against the
 * handler's Last-Modified. The request's Cache-Control plays no part: its
 * `no-cache` is for caches, and fetch() adds it to every conditional
 * request, which would then never get its 304. (jshttp's `fresh` does this
 * too, apart from that rule; a core install carries no adapter's helpers.)
 */
function notModified(headers: IncomingHttpHeaders, entry: CachedResponse): boolean {
  const noneMatch = headerValue(headers['if-none-match'])
  if (noneMatch !== undefined) {
    if (noneMatch.trim() === '*') return true
    const mine = opaqueTag(entry.etag)
    return noneMatch.split(',').some((tag) => opaqueTag(tag.trim()) === mine)
  }
  const since = headerValue(headers['if-modified-since'])
  const lastModified = entry.headers['last-modified']
  if (since === undefined || lastModified === undefined) return false
  const modified = Date.parse(lastModified)
  const seen = Date.parse(since)
  return !Number.isNaN(modified) && !Number.isNaN(seen) && modified <= seen
}

/** opaqueTag is an entity tag without its weakness mark, for weak comparison. */
function opaqueTag(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag
}

/**
 * appendVary adds `names` (lower case) to a Vary header value, each once:
 * field names compare case-insensitively, and `*` stays `*` (RFC 9110
 * §12.5.5), as jshttp's `vary` does.
 */
function appendVary(header: string | undefined, names: readonly string[]): string {
  const fields = (header ?? '')
    .split(',')
    .map((field) => field.trim())
    .filter((field) => field !== '')
  if (fields.includes('*')) return '*'
  const seen = new Set(fields.map((field) => field.toLowerCase()))
  for (const name of names) {
    if (seen.has(name)) continue
    seen.add(name)
    fields.push(name)
  }
  return fields.join(', ')
}

/**
 * MAX_AGE_CAP_S caps the max-age sent with `cacheControl`: one year, the
 * longest a response is conventionally kept (RFC 9111 leaves larger values
 * to each cache). A route cached "for ever" (`ttlMs: Infinity`) is still
 * only kept until evicted here.
 */
export const MAX_AGE_CAP_S = 365 * 24 * 60 * 60

/**
 * reply builds the answer for a cached response as a shared cache in front
 * must see it: `Vary` names the headers the entry was chosen by (a CDN
 * would otherwise serve one language to every reader), `private` for
 * per-user entries, a max-age that is a number (at most MAX_AGE_CAP_S), and
 * a 304 for a matching If-None-Match, weak or strong (RFC 9110), or
 * If-Modified-Since. `Age` says how long ago the owner rendered
 * it, so that with `cacheControl` a downstream cache counts `max-age` (the
 * whole TTL) from the render, not from this answer (RFC 9111 §4.2.3); a
 * stale response has an Age past its max-age, and RFC 5861's
 * `stale-while-revalidate` and `stale-if-error` let such caches serve it
 * on, as this one does.
 */
function reply(entry: CachedResponse, source: 'hit' | 'miss' | 'peer' | 'stale', route: Resolved, req: RouteRequest): Decision {
  const headers: Record<string, string> = { ...entry.headers, etag: entry.etag, [SOURCE_HEADER]: source }
  if (route.vary.length > 0) headers.vary = appendVary(entry.headers.vary, route.vary)
  const now = Date.now()
  if (entry.rendered > 0) headers.age = String(Math.max(0, Math.floor((now - entry.rendered) / 1000)))
  if (route.cacheControl && entry.expires > 0) {
    const lifetime = entry.rendered > 0 ? entry.expires - entry.rendered : Math.max(0, entry.expires - now)
    let value = `${route.private ? 'private' : 'public'}, max-age=${Math.min(MAX_AGE_CAP_S, Math.floor(lifetime / 1000))}`
    if (route.staleMs > 0) {
      const stale = route.staleMs === Infinity ? STALE_FOREVER_S : Math.floor(route.staleMs / 1000)
      value += `, stale-while-revalidate=${stale}, stale-if-error=${stale}`
    }
    headers['cache-control'] = value
  }
  if (route.statuses.has(entry.status) && notModified(req.headers, entry)) {
    return { action: 'reply', status: 304, headers, body: undefined }
  }
  // HEAD gets the body too: Node's HTTP server never sends a body for HEAD,
  // and every framework then sets the length a GET would have.
  headers['content-length'] = String(entry.body.length)
  return { action: 'reply', status: entry.status, headers, body: entry.body }
}

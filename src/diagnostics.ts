import { channel, type TracingChannel, tracingChannel } from 'node:diagnostics_channel'

/**
 * GET_CHANNEL names the tracing channel of `group.get` (and
 * `getWithSource`): subscribe to `tracing:groupcache:get:start`, `:end`,
 * `:asyncStart`, `:asyncEnd` and `:error`, or pass the name to
 * `diagnostics_channel.tracingChannel`. The message is a GetMessage.
 */
export const GET_CHANNEL = 'groupcache:get'

/**
 * FETCH_CHANNEL names the tracing channel of one fetch from a key's owner
 * (a FetchMessage): the peer exchange, the owner's load included.
 */
export const FETCH_CHANNEL = 'groupcache:fetch'

/**
 * LOAD_CHANNEL names the tracing channel of one loader run on this node (a
 * LoadMessage). Its events are `tracing:groupcache:load:*`, so the plain
 * `groupcache:load` channel goes on as before beside it.
 */
export const LOAD_CHANNEL = 'groupcache:load'

/**
 * SERVE_CHANNEL names the tracing channel of the peer endpoint answering a
 * peer's `GET` for a value (a ServeMessage), once the request has passed
 * the secret and names a group of this node.
 */
export const SERVE_CHANNEL = 'groupcache:serve'

/**
 * FETCH_MANY_CHANNEL names the tracing channel of one batch fetch from an
 * owner (a FetchManyMessage): the keys of a `getMany`, or of gets batched
 * by `batchWindowMs`, that one owner is asked for together, in one batch
 * request per `MAX_BATCH_KEYS` keys (a Go owner: one GET each), the
 * owner's loads included.
 */
export const FETCH_MANY_CHANNEL = 'groupcache:fetchMany'

/**
 * SERVE_MANY_CHANNEL names the tracing channel of the peer endpoint
 * answering a peer's batch (`POST {group}`, a ServeManyMessage), once the
 * request has passed the secret and its keys have been read.
 */
export const SERVE_MANY_CHANNEL = 'groupcache:serveMany'

/**
 * PEER_CHANNEL names the plain channel of PeerEvents; LOAD_CHANNEL is also
 * the name of the plain channel of LoadEvents.
 */
export const PEER_CHANNEL = 'groupcache:peer'

/**
 * Logger is the part of a pino-compatible logger (`app.log` in Fastify,
 * pino, or `console`) that this library uses. It logs state changes only,
 * such as a peer's circuit opening or closing, never one line per request.
 */
export interface Logger {
  warn(obj: object, msg?: string): void
  info?(obj: object, msg?: string): void
}

/**
 * LoadEvent is published on `groupcache:load` each time a loader finishes
 * on this node, so APM tools can trace loads without a dependency.
 */
export interface LoadEvent {
  /** self is the URL of the node that ran the load. */
  self: string
  group: string
  key: string
  durationMs: number
  error?: unknown
}

/**
 * PeerEvent is published on `groupcache:peer` for each fetch from an owner:
 * `ok`, `verdict` (the owner's loader failed or said not found) or `error`
 * (the peer could not answer; the key then loads locally).
 */
export interface PeerEvent {
  /** self is the URL of the node that fetched. */
  self: string
  group: string
  key: string
  peer: string
  durationMs: number
  outcome: 'ok' | 'verdict' | 'error'
  error?: unknown
}

/** loadChannel is `groupcache:load`; subscribe with node:diagnostics_channel. */
export const loadChannel = channel(LOAD_CHANNEL)

/** peerChannel is `groupcache:peer`; subscribe with node:diagnostics_channel. */
export const peerChannel = channel(PEER_CHANNEL)

/**
 * TraceMessage is the context object of every tracing channel of this
 * library about one key (a BatchTraceMessage for several). Node's `tracePromise` adds `result` or `error` to it when the
 * operation settles; a subscriber may keep what it needs on it (a span) in
 * a WeakMap.
 */
export interface TraceMessage {
  /** self is the URL of the node that publishes, to tell instances in one process apart. */
  readonly self: string
  readonly group: string
  /** key is the cache key. It may be personal data: record it only when told to. */
  readonly key: string
  error?: unknown
  result?: unknown
  /**
   * wrap, when a `start` subscriber sets it, runs the operation: a tracer
   * whose context store it cannot bind to the start channel (`bindStore`)
   * makes its span current for the work inside this way, so that spans
   * started inside (a loader's database query) are its children.
   */
  wrap?: <R>(operation: () => R) => R
}

/**
 * BatchTraceMessage is the context object of a tracing channel about
 * several keys at once (a batch): a TraceMessage with `keys` in place of
 * `key`.
 */
export interface BatchTraceMessage extends Omit<TraceMessage, 'key'> {
  /** keys are the cache keys, each once. They may be personal data: record them only when told to. */
  readonly keys: readonly string[]
}

/**
 * GetSource says where a traced get found its value: the main cache
 * (`hit`), a hot copy (`hot`), a load on this node (`load`) or the key's
 * owner (`peer`); or that the value was past its TTL, served from its
 * `staleMs` window while it is refreshed (`stale`).
 */
export type GetSource = 'hit' | 'hot' | 'load' | 'peer' | 'stale'

/** GetMessage is the context of `groupcache:get`. */
export interface GetMessage extends TraceMessage {
  /** source is set once the value was found. */
  source?: GetSource
  /** owner is the URL of the key's owner, set on a miss. */
  owner?: string
}

/** FetchMessage is the context of `groupcache:fetch`. */
export interface FetchMessage extends TraceMessage {
  /** peer is the URL of the owner asked. */
  readonly peer: string
  /**
   * headers are sent with the request to the owner: a `start` subscriber
   * may add trace propagation headers (`traceparent`) here. They never
   * replace the library's own (the secret, the generation); a Go peer
   * ignores them.
   */
  readonly headers: Record<string, string>
}

/** FetchManyMessage is the context of `groupcache:fetchMany`. */
export interface FetchManyMessage extends BatchTraceMessage {
  /** peer is the URL of the owner asked. */
  readonly peer: string
  /** headers are sent with each request to the owner, as FetchMessage's are. */
  readonly headers: Record<string, string>
  /**
   * outcome is set once the answers are in, as `groupcache:peer` says it
   * for each key, the worst of them: `error` when the owner could not
   * answer some key (it loads here), else `verdict` when it reported some
   * key's loader failure or not-found, else `ok`.
   */
  outcome?: PeerEvent['outcome']
}

/** LoadMessage is the context of `groupcache:load`. */
export interface LoadMessage extends TraceMessage {
  /** forPeer is true when a peer's request started this load. */
  readonly forPeer: boolean
}

/** ServeMessage is the context of `groupcache:serve`. */
export interface ServeMessage extends TraceMessage {
  /**
   * headers are the peer's request headers (lower-case names), from which
   * a tracer may continue the peer's trace (`traceparent`).
   */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>
}

/** ServeManyMessage is the context of `groupcache:serveMany`. */
export interface ServeManyMessage extends BatchTraceMessage {
  /** headers are the peer's request headers, as ServeMessage's are. */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>
}

/** getTracing is the tracing channel named GET_CHANNEL. */
export const getTracing = tracingChannel<unknown, GetMessage>(GET_CHANNEL)

/** fetchTracing is the tracing channel named FETCH_CHANNEL. */
export const fetchTracing = tracingChannel<unknown, FetchMessage>(FETCH_CHANNEL)

/** loadTracing is the tracing channel named LOAD_CHANNEL. */
export const loadTracing = tracingChannel<unknown, LoadMessage>(LOAD_CHANNEL)

/** serveTracing is the tracing channel named SERVE_CHANNEL. */
export const serveTracing = tracingChannel<unknown, ServeMessage>(SERVE_CHANNEL)

/** fetchManyTracing is the tracing channel named FETCH_MANY_CHANNEL. */
export const fetchManyTracing = tracingChannel<unknown, FetchManyMessage>(FETCH_MANY_CHANNEL)

/** serveManyTracing is the tracing channel named SERVE_MANY_CHANNEL. */
export const serveManyTracing = tracingChannel<unknown, ServeManyMessage>(SERVE_MANY_CHANNEL)

/**
 * runTraced runs `operation` under a tracing channel: start, end, then
 * asyncStart and asyncEnd (or error) as it settles, honouring a `wrap` the
 * start subscribers set. `operation` must not throw synchronously (an async
 * function never does), or asyncEnd would never come. Callers check
 * `channel.hasSubscribers` first, so an untraced operation pays for one
 * property read.
 */
export function runTraced<M extends TraceMessage | BatchTraceMessage, R>(
  channel: TracingChannel<unknown, M>,
  message: M,
  operation: () => Promise<R>,
): Promise<R> {
  return channel.tracePromise(() => (message.wrap === undefined ? operation() : message.wrap(operation)), message)
}

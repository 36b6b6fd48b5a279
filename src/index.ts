export { BATCH_CONTENT_TYPE, MAX_BATCH_ANSWER_BYTES, MAX_BATCH_BODY_BYTES, MAX_BATCH_KEYS } from './batch.js'
export {
  type BreakerOptions,
  type BreakerState,
  DEFAULT_BREAKER_BACKOFF_MS,
  DEFAULT_BREAKER_FAILURES,
  DEFAULT_BREAKER_MAX_BACKOFF_MS,
} from './breaker.js'
export { type CacheKind, type CacheStats, ENTRY_OVERHEAD_BYTES, HOT_SHARE, MIN_HOT_COPIES } from './cache.js'
export { type Codec, type CodecName, DEFAULT_CODEC, type Frozen } from './codec.js'
export {
  type BatchTraceMessage,
  FETCH_CHANNEL,
  FETCH_MANY_CHANNEL,
  type FetchManyMessage,
  type FetchMessage,
  fetchManyTracing,
  fetchTracing,
  GET_CHANNEL,
  type GetMessage,
  type GetSource,
  getTracing,
  LOAD_CHANNEL,
  type LoadEvent,
  type LoadMessage,
  type Logger,
  loadChannel,
  loadTracing,
  PEER_CHANNEL,
  type PeerEvent,
  peerChannel,
  SERVE_CHANNEL,
  SERVE_MANY_CHANNEL,
  type ServeManyMessage,
  type ServeMessage,
  serveManyTracing,
  serveTracing,
  type TraceMessage,
} from './diagnostics.js'
export {
  DEFAULT_DNS_INTERVAL_MS,
  type DnsPeers,
  type DnsPeersOptions,
  type DnsPeersTarget,
  type DnsResolver,
  dnsPeers,
} from './discovery.js'
export {
  AbortedError,
  ClosedError,
  CodecError,
  DiscoveryError,
  type DiscoveryErrorReason,
  GroupcacheError,
  type GroupcacheErrorCode,
  InvalidKeyError,
  InvalidOptionError,
  LoadError,
  LoadTimeoutError,
  NotFoundError,
  OverloadedError,
  PeerError,
  TooLargeError,
  UnreachablePeersError,
} from './errors.js'
export {
  type BatchLoader,
  DEFAULT_BATCH_WINDOW_MS,
  DEFAULT_HOT_PROMOTION,
  DEFAULT_MAX_ENTRY_FRACTION,
  DEFAULT_MAX_PEER_LOADS,
  DEFAULT_REFRESH_RETRY_MS,
  type GetOptions,
  Group,
  type GroupOptions,
  type LoadContext,
  type Loader,
  MAX_REFRESH_RETRY_MS,
  type PeerValue,
  type Promote,
  type SetOptions,
  type Source,
  type Sourced,
} from './group.js'
export {
  type CloseOptions,
  DEFAULT_CLOSE_GRACE_MS,
  Groupcache,
  type GroupcacheOptions,
  type ListenOptions,
  type NodeStats,
} from './groupcache.js'
export type { PeerHandler, PeerRequest, PeerResponse } from './handler.js'
export { DEFAULT_HANDOFF_MS, DEFAULT_PEEK_TIMEOUT_MS } from './handoff.js'
export { DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_PEER_CONNECTIONS, DEFAULT_PEER_TIMEOUT_MS } from './http.js'
export { servePeerRequest, toPeerRequest, writePeerResponse } from './node-http.js'
export type { PeerHealth, PeerTransport } from './peers.js'
export {
  DEFAULT_BASE_PATH,
  DEFAULT_MAX_KEY_BYTES,
  ERROR_HEADER,
  GENERATION_HEADER,
  MAX_GENERATION_LEAD_MS,
  REFRESH_HEADER,
  STATS_PATH,
} from './protocol.js'
export { DEFAULT_REPLICAS } from './ring.js'
export type { GroupStats } from './stats.js'
export type { GetResponse } from './wire.js'

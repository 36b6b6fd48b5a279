export { DEFAULT_CLOSE_GRACE_MS, Groupcache, type CloseOptions, type GroupcacheOptions, type ListenOptions, type NodeStats } from './groupcache.js'
export {
  FETCH_CHANNEL,
  GET_CHANNEL,
  LOAD_CHANNEL,
  PEER_CHANNEL,
  SERVE_CHANNEL,
  fetchTracing,
  getTracing,
  loadChannel,
  loadTracing,
  peerChannel,
  serveTracing,
  type FetchMessage,
  type GetMessage,
  type GetSource,
  type LoadEvent,
  type LoadMessage,
  type Logger,
  type PeerEvent,
  type ServeMessage,
  type TraceMessage,
} from './diagnostics.js'
export {
  Group,
  DEFAULT_BATCH_WINDOW_MS,
  DEFAULT_HOT_PROMOTION,
  DEFAULT_MAX_ENTRY_FRACTION,
  DEFAULT_MAX_PEER_LOADS,
  DEFAULT_REFRESH_RETRY_MS,
  MAX_REFRESH_RETRY_MS,
  type BatchLoader,
  type GetOptions,
  type GroupOptions,
  type LoadContext,
  type Loader,
  type PeerValue,
  type Promote,
  type SetOptions,
  type Source,
  type Sourced,
} from './group.js'
export { ENTRY_OVERHEAD_BYTES, type CacheKind, type CacheStats } from './cache.js'
export { BATCH_CONTENT_TYPE, MAX_BATCH_ANSWER_BYTES, MAX_BATCH_BODY_BYTES, MAX_BATCH_KEYS } from './batch.js'
export type { GroupStats } from './stats.js'
export { DEFAULT_CODEC, type Codec, type CodecName, type Frozen } from './codec.js'
export { DEFAULT_REPLICAS } from './ring.js'
export {
  DEFAULT_BREAKER_BACKOFF_MS,
  DEFAULT_BREAKER_FAILURES,
  DEFAULT_BREAKER_MAX_BACKOFF_MS,
  type BreakerOptions,
  type BreakerState,
} from './breaker.js'
export { DEFAULT_BASE_PATH, DEFAULT_MAX_KEY_BYTES, ERROR_HEADER, GENERATION_HEADER, REFRESH_HEADER, STATS_PATH } from './protocol.js'
export { DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_PEER_CONNECTIONS, DEFAULT_PEER_TIMEOUT_MS } from './http.js'
export type { PeerHealth, PeerTransport } from './peers.js'
export type { PeerHandler, PeerRequest, PeerResponse } from './handler.js'
export { toPeerRequest, writePeerResponse } from './node-http.js'
export type { GetResponse } from './wire.js'
export {
  AbortedError,
  ClosedError,
  CodecError,
  DiscoveryError,
  GroupcacheError,
  InvalidKeyError,
  InvalidOptionError,
  LoadError,
  NotFoundError,
  OverloadedError,
  PeerError,
  TooLargeError,
  UnreachablePeersError,
  type DiscoveryErrorReason,
  type GroupcacheErrorCode,
} from './errors.js'
export {
  DEFAULT_DNS_INTERVAL_MS,
  dnsPeers,
  type DnsPeers,
  type DnsPeersOptions,
  type DnsPeersTarget,
  type DnsResolver,
} from './discovery.js'
export { DEFAULT_HANDOFF_MS, DEFAULT_PEEK_TIMEOUT_MS } from './handoff.js'

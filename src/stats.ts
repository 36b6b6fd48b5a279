/**
 * GroupStats are a group's counters, named as Go's groupcache names them
 * (camelCased) so dashboards read the same for Go and Node nodes.
 */
export interface GroupStats {
  /** gets counts every `get`, local or on behalf of a peer. */
  gets: number
  /** cacheHits counts gets answered from the main or hot cache. */
  cacheHits: number
  /** peerLoads counts values fetched from their owner. */
  peerLoads: number
  /** peerErrors counts failed peer fetches (each then loads locally). */
  peerErrors: number
  /** loads counts gets that missed the cache: `gets - cacheHits`. */
  loads: number
  /** loadsDeduped counts loads that were not merged into one in flight. */
  loadsDeduped: number
  /** localLoads counts successful runs of the loader on this node. */
  localLoads: number
  /** localLoadErrs counts failed runs of the loader on this node. */
  localLoadErrs: number
  /** serverRequests counts requests from peers for this group. */
  serverRequests: number
  /**
   * staleHits counts the cache hits (counted in `cacheHits` too) that found a
   * value past its TTL and served it from its `staleMs` window.
   */
  staleHits: number
  /**
   * refreshes counts the background refreshes of stale values this node
   * started: a loader run where it holds the key for the cluster, else a
   * request to the key's owner.
   */
  refreshes: number
  /**
   * refreshErrors counts the refreshes that failed; the stale value was kept
   * (stale-if-error) and the next attempt backs off.
   */
  refreshErrors: number
  /** peekHits counts moved keys a new owner got from their previous owner's cache instead of loading. */
  peekHits: number
  /** peekMisses counts peeks that found nothing usable (then the key loads). */
  peekMisses: number
  /** handoffsSent counts entries this node handed to their next owner on close. */
  handoffsSent: number
  /** handoffsReceived counts entries a leaving peer handed over that this node kept. */
  handoffsReceived: number
}

/** newGroupStats returns a zeroed set of counters. */
export function newGroupStats(): GroupStats {
  return {
    gets: 0,
    cacheHits: 0,
    peerLoads: 0,
    peerErrors: 0,
    loads: 0,
    loadsDeduped: 0,
    localLoads: 0,
    localLoadErrs: 0,
    serverRequests: 0,
    staleHits: 0,
    refreshes: 0,
    refreshErrors: 0,
    peekHits: 0,
    peekMisses: 0,
    handoffsSent: 0,
    handoffsReceived: 0,
  }
}

import { promises as dns } from 'node:dns'
import { isIP } from 'node:net'
import { DiscoveryError, errorMessage, InvalidOptionError } from './errors.js'
import type { Groupcache } from './groupcache.js'

/**
 * DEFAULT_DNS_INTERVAL_MS is how often `dnsPeers` resolves its hostname: 5 s,
 * the TTL CoreDNS gives a headless Service's records, so a new pod is a peer
 * within about one TTL of being published.
 */
export const DEFAULT_DNS_INTERVAL_MS = 5_000

/**
 * DnsResolver is the part of `dns.promises.Resolver` that `dnsPeers` uses; a
 * seam so that tests and unusual setups can bring their own.
 */
export interface DnsResolver {
  resolve4(hostname: string): Promise<string[]>
  resolve6(hostname: string): Promise<string[]>
}

/**
 * DnsPeersTarget is what `dnsPeers` needs of a node: a `Groupcache` is one.
 * Structural, so that an instance built from another copy of this package
 * (an adapter's, say) fits too.
 */
export type DnsPeersTarget = Pick<Groupcache, 'self' | 'peers' | 'closed' | 'setPeers'>

/** DnsPeersOptions configure `dnsPeers`; see README's "Operations" section. */
export interface DnsPeersOptions {
  /**
   * hostname is the name whose A/AAAA records list every node, like a
   * Kubernetes headless Service's `my-app.my-namespace.svc.cluster.local`.
   */
  hostname: string
  /** port is where every node serves peers; it goes into each peer URL. */
  port: number
  /** protocol of the peer URLs (default 'http'). */
  protocol?: 'http' | 'https' | undefined
  /**
   * intervalMs is the pause between two resolutions (default 5000,
   * `DEFAULT_DNS_INTERVAL_MS`). The next one is scheduled when the last one
   * ends, so a slow DNS server never stacks queries.
   */
  intervalMs?: number | undefined
  /** resolver answers the queries (default: a new `dns.promises.Resolver()`, the system's servers). */
  resolver?: DnsResolver | undefined
  /** family says which records to ask for: 4 (A), 6 (AAAA) or 'both' (default). */
  family?: 4 | 6 | 'both' | undefined
  /**
   * onError hears every refresh that kept the old peers: a failed lookup, or
   * a record set without this node. Default: a process warning
   * (`GROUPCACHE_DNS_DISCOVERY`), emitted again only when the message changes.
   */
  onError?: ((err: DiscoveryError) => void) | undefined
}

/**
 * DnsPeers is the handle `dnsPeers` returns: the peers it last applied, a way
 * to resolve now, and a way to stop.
 */
export interface DnsPeers {
  /**
   * refresh resolves the hostname now and applies the result, and resolves
   * to the peers in effect afterwards. It never rejects: a failure keeps the
   * old peers and goes to `onError`, so that a pod whose own record is not
   * published yet starts anyway (its keys load locally until it is).
   */
  refresh(): Promise<readonly string[]>
  /** stop ends the periodic refresh; a refresh in flight, or called later, applies nothing. */
  stop(): void
  /** peers is the sorted list the last successful refresh found (empty before one). */
  readonly peers: readonly string[]
}

// A DNS name: dot-separated labels of letters, digits, '-' and '_', at most
// 63 bytes each and 253 in all, with an optional final dot.
const DNS_NAME =
  /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/

/** peerUrl spells a peer URL the one way every node must agree on. */
function peerUrl(protocol: string, ip: string, port: number): string {
  return isIP(ip) === 6 ? `${protocol}://[${ip}]:${port}` : `${protocol}://${ip}:${port}`
}

/**
 * checkSelf fails at once when `self` could never be among the URLs built
 * from DNS answers (a pod hostname instead of its IP, another port), rather
 * than reporting "self missing" every few seconds forever.
 */
function checkSelf(self: unknown, protocol: string, port: number, family: 4 | 6 | 'both'): void {
  const expected = `${protocol}://<IP address>:${port}, the way dnsPeers spells peer URLs (IPv6 in brackets)`
  if (typeof self !== 'string') throw InvalidOptionError.expected('gc.self', expected, self)
  let url: URL
  try {
    url = new URL(self)
  } catch {
    throw InvalidOptionError.expected('gc.self', expected, self)
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const version = isIP(host)
  if (version === 0 || peerUrl(protocol, host, port) !== self) throw InvalidOptionError.expected('gc.self', expected, self)
  if (family !== 'both' && version !== family)
    throw InvalidOptionError.expected('gc.self', `an IPv${family} URL, since options.family is ${family}`, self)
}

/** noRecords tells "this name has no records of this family" from a failed lookup. */
function noRecords(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'ENODATA' || code === 'ENOTFOUND'
}

/**
 * warnOnChange is the default `onError`: a process warning, repeated only
 * when the message changes, so a DNS outage is visible without a line every
 * interval.
 */
function warnOnChange(): { report: (err: DiscoveryError) => void; reset: () => void } {
  let last: string | undefined
  return {
    report: (err) => {
      if (err.message === last) return
      last = err.message
      process.emitWarning(err.message, { code: 'GROUPCACHE_DNS_DISCOVERY' })
    },
    reset: () => {
      last = undefined
    },
  }
}

/**
 * dnsPeers keeps `gc`'s peer list equal to the addresses `hostname` resolves
 * to, for Kubernetes headless Services and other setups where DNS knows the
 * replicas. It resolves at once and then every `intervalMs` (on an
 * `unref()`ed timer), and calls `gc.setPeers` only when the sorted set of
 * peer URLs changes, since every change re-homes keys. A refresh that fails,
 * or whose answer lacks `gc.self`, keeps the old peers and is reported to
 * `onError`; nothing is ever thrown from the timer. Await `refresh()` once
 * before serving. It stops by itself once `gc` is closed.
 */
export function dnsPeers(gc: DnsPeersTarget, options: DnsPeersOptions): DnsPeers {
  if (typeof gc !== 'object' || gc === null || typeof gc.setPeers !== 'function')
    throw InvalidOptionError.expected('gc', 'a Groupcache instance', gc)
  if (typeof options !== 'object' || options === null) throw InvalidOptionError.expected('options', 'an object', options)
  const { hostname, port } = options
  if (typeof hostname !== 'string' || !DNS_NAME.test(hostname) || isIP(hostname) !== 0) {
    throw InvalidOptionError.expected('options.hostname', "a DNS name like 'my-app.default.svc.cluster.local'", hostname)
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw InvalidOptionError.expected('options.port', 'a port number', port)
  }
  const protocol = options.protocol ?? 'http'
  if (protocol !== 'http' && protocol !== 'https') throw InvalidOptionError.expected('options.protocol', "'http' or 'https'", protocol)
  const intervalMs = options.intervalMs ?? DEFAULT_DNS_INTERVAL_MS
  if (typeof intervalMs !== 'number' || !Number.isSafeInteger(intervalMs) || intervalMs <= 0) {
    throw InvalidOptionError.expected('options.intervalMs', 'a positive integer', intervalMs)
  }
  const family = options.family ?? 'both'
  if (family !== 4 && family !== 6 && family !== 'both') throw InvalidOptionError.expected('options.family', "4, 6 or 'both'", family)
  const resolver: DnsResolver = options.resolver ?? new dns.Resolver()
  if (
    typeof resolver !== 'object' ||
    resolver === null ||
    (family !== 6 && typeof resolver.resolve4 !== 'function') ||
    (family !== 4 && typeof resolver.resolve6 !== 'function')
  ) {
    throw InvalidOptionError.expected('options.resolver', 'an object with resolve4 and resolve6 methods', resolver)
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') {
    throw InvalidOptionError.expected('options.onError', 'a function', options.onError)
  }
  checkSelf(gc.self, protocol, port, family)

  const warnings = warnOnChange()
  const onError = options.onError ?? warnings.report
  let peers: readonly string[] = Object.freeze([])
  let stopped = false
  let inFlight: Promise<readonly string[]> | undefined
  let timer: NodeJS.Timeout | undefined

  const report = (err: DiscoveryError): void => {
    try {
      onError(err)
    } catch {
      // A throwing onError must not turn into an unhandled rejection on the timer.
    }
  }

  /** lookup asks for each wanted family; "no records" of one family is an empty answer, not a failure. */
  const lookup = async (): Promise<string[]> => {
    const queries: Array<Promise<string[]>> = []
    if (family !== 6) queries.push(resolver.resolve4(hostname))
    if (family !== 4) queries.push(resolver.resolve6(hostname))
    const answers = await Promise.allSettled(queries)
    const addresses: string[] = []
    let empty: unknown
    for (const answer of answers) {
      if (answer.status === 'fulfilled') addresses.push(...answer.value)
      else if (noRecords(answer.reason)) empty ??= answer.reason
      // Any other failure (a timeout, a refused query, SERVFAIL) might hide
      // half the cluster: better the old list than a partial one.
      else throw answer.reason
    }
    if (addresses.length === 0) throw empty ?? new Error('no addresses')
    return addresses
  }

  const once = async (): Promise<readonly string[]> => {
    let addresses: string[]
    try {
      addresses = await lookup()
    } catch (err) {
      if (!stopped) {
        report(
          new DiscoveryError(
            'resolve',
            hostname,
            `could not resolve ${hostname}: ${errorMessage(err)}; keeping ${gc.peers.length} peer(s)`,
            {
              cause: err,
            },
          ),
        )
      }
      return gc.peers
    }
    if (stopped || gc.closed) return gc.peers
    const found = Object.freeze([...new Set(addresses.map((ip) => peerUrl(protocol, ip, port)))].sort())
    if (!found.includes(gc.self)) {
      report(
        new DiscoveryError(
          'self-missing',
          hostname,
          `${hostname} resolved to ${found.join(', ')}, which does not include this node (${gc.self}); keeping ${gc.peers.length} peer(s)`,
          { peers: found },
        ),
      )
      return gc.peers
    }
    const current = gc.peers
    if (current.length !== found.length || current.some((peer, i) => peer !== found[i])) {
      try {
        gc.setPeers(found)
      } catch (err) {
        report(
          new DiscoveryError('resolve', hostname, `setPeers refused ${found.join(', ')}: ${errorMessage(err)}`, {
            cause: err,
            peers: found,
          }),
        )
        return gc.peers
      }
    }
    peers = found
    warnings.reset()
    return gc.peers
  }

  const refresh = (): Promise<readonly string[]> => {
    if (stopped) return Promise.resolve(gc.peers)
    // One lookup at a time: two overlapping ones could finish out of order
    // and put back the older answer.
    inFlight ??= once().finally(() => {
      inFlight = undefined
    })
    return inFlight
  }

  const schedule = (): void => {
    if (stopped) return
    timer = setTimeout(() => {
      timer = undefined
      if (gc.closed) {
        stop()
        return
      }
      void refresh().finally(schedule)
    }, intervalMs)
    timer.unref()
  }

  const stop = (): void => {
    stopped = true
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }

  void refresh().finally(schedule)
  return {
    refresh,
    stop,
    get peers() {
      return peers
    },
  }
}

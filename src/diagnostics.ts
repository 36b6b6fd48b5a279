import { channel } from 'node:diagnostics_channel'

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
  group: string
  key: string
  peer: string
  durationMs: number
  outcome: 'ok' | 'verdict' | 'error'
  error?: unknown
}

/** loadChannel is `groupcache:load`; subscribe with node:diagnostics_channel. */
export const loadChannel = channel('groupcache:load')

/** peerChannel is `groupcache:peer`; subscribe with node:diagnostics_channel. */
export const peerChannel = channel('groupcache:peer')

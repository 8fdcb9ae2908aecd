import { deadline as deadlineOf, linkSignals } from '../primitives/abort.ts'
import { DecodeError, FrameTooLargeError, MosaikError } from '../primitives/errors.ts'
import type { Timers } from '../primitives/time.ts'
import { CloseCode, LinkClosedError } from '../transport/close.ts'
import type { InboundLimit } from '../transport/limits.ts'
import type { Link, LinkOptions } from '../transport/link.ts'
import { EntryLimitError } from './entry.ts'

/**
 * Bounds on discovery's request/response protocols (catalog sync and ping), so a peer cannot hold a
 * stream open, stream bytes into it without end, or open many at once. Every inbound exchange has a
 * deadline for the whole exchange, a frame limit and a total byte limit fitted to what the protocol
 * carries, and a number of exchanges a peer, the peers of one remote host, and all peers together may
 * run at once. Whatever ends an exchange early, the remote learns why from the close code.
 */

/** Most entries in one catalog sync frame. */
export const SYNC_CHUNK = 256
/** A sender closes a sync frame before it grows past this many bytes. */
export const SYNC_FRAME_BYTES = 256 * 1024
/** Catalog syncs one peer may run against this node at once; more are closed with TooManyStreams. */
export const SYNCS_PER_PEER = 4
/** Catalog syncs all peers together may run against this node at once. */
export const SYNCS_TOTAL = 64
/**
 * Catalog syncs the peers of one remote host may run against this node at once: a quarter of the
 * total, so it takes four hosts, not one minting identities, to hold every slot.
 */
export const SYNCS_PER_HOST = SYNCS_TOTAL / 4
/** Pings one peer may run against this node at once. */
export const PINGS_PER_PEER = 2
/** Pings all peers together may run against this node at once. */
export const PINGS_TOTAL = 256
/** Pings the peers of one remote host may run against this node at once (a quarter of the total). */
export const PINGS_PER_HOST = PINGS_TOTAL / 4
/** A ping request is `[version, networkId]`: a few dozen bytes. */
const PING_REQUEST_BYTES = 256

/** Link options of a catalog sync, both ways: frames fit one chunk, the whole sync fits the budget. */
export function syncLinkOptions(maxEntryBytes: number, maxSyncBytes: number): LinkOptions {
  return {
    maxFrameSize: Math.max(SYNC_FRAME_BYTES, maxEntryBytes) + 4096,
    // Headers and framing on top of the entries and departures the sender counts.
    maxReceiveBytes: maxSyncBytes + 64 * 1024,
  }
}

/**
 * Link options of the ping server: it receives one small request and sends its entry (the frame limit
 * holds both ways, so it must fit the entry).
 */
export function pingServerLinkOptions(maxEntryBytes: number): LinkOptions {
  return { maxFrameSize: maxEntryBytes + 1024, maxReceiveBytes: PING_REQUEST_BYTES }
}

/** Link options of the ping client: it receives one signed entry. */
export function pingClientLinkOptions(maxEntryBytes: number): LinkOptions {
  return { maxFrameSize: maxEntryBytes + 1024, maxReceiveBytes: maxEntryBytes + 1024 }
}

/**
 * Serves one inbound exchange on `link` within a slot of `limit` and a deadline of `deadlineMs`.
 * Never throws: a failure closes the link with the code that says why, and waits (bounded by the
 * link's linger) for the close frame to flush before the stream goes.
 */
export async function serveExchange(
  link: Link,
  options: { limit: InboundLimit; deadlineMs: number; signal: AbortSignal; timers: Timers },
  exchange: (signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const slot = options.limit.enter(link.remotePeer, link.connection.remoteAddr)
  if (!slot.ok) {
    const from = slot.reached === 'host' ? ' from this host' : ''
    await link.close(CloseCode.TooManyStreams, `too many concurrent exchanges${from}`)
    return
  }
  const deadline = deadlineOf(options.deadlineMs, options.timers)
  const linked = linkSignals(options.signal, deadline.signal)
  try {
    await exchange(linked.signal)
  } catch (err) {
    const [code, reason] = closeCodeOf(err, deadline.signal, options.signal)
    await link.close(code, reason)
  } finally {
    linked.clear()
    deadline.clear()
    slot.release()
  }
}

/**
 * The close code for an exchange that failed with `err`. A link the SDK already closed keeps its
 * own code (close() then only waits for that close to finish).
 */
export function closeCodeOf(err: unknown, deadline: AbortSignal, shutdown?: AbortSignal): [number, string] {
  if (err instanceof LinkClosedError) return [err.closeCode, err.reason]
  if (deadline.aborted) return [CloseCode.Timeout, 'exchange took too long']
  if (shutdown?.aborted) return [CloseCode.GracefulShutdown, 'node closing']
  if (err instanceof EntryLimitError || err instanceof FrameTooLargeError) {
    return [CloseCode.FrameTooLarge, err.message]
  }
  if (err instanceof DecodeError) return [CloseCode.ProtocolViolation, err.message]
  return [CloseCode.UnexpectedClose, err instanceof MosaikError ? err.message : 'internal error']
}

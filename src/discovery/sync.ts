import { equalBytes } from '../primitives/bytes.ts'
import { encodeCanonical } from '../primitives/codec.ts'
import type { NetworkId } from '../primitives/digest.ts'
import { DecodeError, describeValue, MosaikError } from '../primitives/errors.ts'
import { CloseCode } from '../transport/close.ts'
import type { Link } from '../transport/link.ts'
import { SYNC_CHUNK, SYNC_FRAME_BYTES } from './limits.ts'

/**
 * The catalog sync wire protocol: each side sends a header `[version, network, entries, departures]`
 * and then its signed entries and departures in chunks of at most SYNC_CHUNK items and about
 * SYNC_FRAME_BYTES bytes. The initiator sends first; the acceptor answers with its own snapshot; the
 * initiator closes with Success once it has merged the answer.
 */

/**
 * The version that opens both of discovery's request-response exchanges: the catalog sync header
 * (`[version, network, entries, departures]`) and the ping request (`[version, network]`).
 */
export const DISCOVERY_WIRE_VERSION = 1

/** What one side sends: wire forms of signed entries (most valuable first) and departures. */
export interface SyncSnapshot {
  readonly entries: readonly unknown[]
  readonly departures: readonly unknown[]
}

/**
 * Sends a snapshot, cut to `maxBytes`: the receiver refuses a sync over its byte limit, so the sender
 * keeps to it and leaves the rest to gossip and later syncs. Entries come first (in the caller's
 * order), then departures.
 */
export async function sendSnapshot(
  link: Link,
  network: NetworkId,
  snapshot: SyncSnapshot,
  maxBytes: number,
  signal: AbortSignal,
): Promise<void> {
  let budget = maxBytes
  const withinBudget = (items: readonly unknown[]): Uint8Array[] => {
    const out: Uint8Array[] = []
    for (const item of items) {
      const bytes = encodeCanonical(item)
      if (bytes.length > budget) break
      budget -= bytes.length
      out.push(bytes)
    }
    return out
  }
  const entries = withinBudget(snapshot.entries)
  const departures = withinBudget(snapshot.departures)
  await link.send([DISCOVERY_WIRE_VERSION, network.bytes, entries.length, departures.length], { signal })
  for (const items of [entries, departures]) {
    let chunk: Uint8Array[] = []
    let size = 0
    for (const item of items) {
      if (chunk.length === SYNC_CHUNK || (chunk.length > 0 && size + item.length > SYNC_FRAME_BYTES)) {
        await link.sendBytes(encodeArray(chunk), { signal })
        chunk = []
        size = 0
      }
      chunk.push(item)
      size += item.length
    }
    if (chunk.length > 0) await link.sendBytes(encodeArray(chunk), { signal })
  }
}

/**
 * Receives a snapshot: checks the header, then hands each item to `ingest` in order. Returns how many
 * entries and departures the header announced.
 */
export async function receiveSnapshot(
  link: Link,
  options: { network: NetworkId; maxItems: number; signal: AbortSignal },
  ingest: {
    entry(wire: unknown): Promise<unknown>
    departure(wire: unknown): Promise<unknown>
    differentNetwork(): void
  },
): Promise<{ entries: number; departures: number }> {
  const { signal } = options
  const header = await link.recv({ signal })
  if (!Array.isArray(header) || header.length < 1) {
    link.beginClose(CloseCode.ProtocolViolation, 'bad sync header')
    throw new DecodeError('bad sync header')
  }
  if (header[0] !== DISCOVERY_WIRE_VERSION) {
    link.beginClose(CloseCode.UnsupportedVersion, `catalog sync version ${describeValue(header[0])}`)
    throw new UnsupportedVersionError('catalog sync', header[0])
  }
  if (header.length !== 4 || !Number.isSafeInteger(header[2]) || !Number.isSafeInteger(header[3])) {
    link.beginClose(CloseCode.ProtocolViolation, 'bad sync header')
    throw new DecodeError('bad sync header')
  }
  if (!(header[1] instanceof Uint8Array) || !equalBytes(header[1], options.network.bytes)) {
    link.beginClose(CloseCode.DifferentNetwork, 'different network')
    ingest.differentNetwork()
    throw new DifferentNetworkError(link.remotePeer)
  }
  const [, , entryCount, departureCount] = header as [number, Uint8Array, number, number]
  const limit = options.maxItems
  if (entryCount < 0 || departureCount < 0 || entryCount > limit || departureCount > limit) {
    link.beginClose(CloseCode.FrameTooLarge, `over ${limit} entries or departures`)
    throw new DecodeError(`sync of ${entryCount} entries and ${departureCount} departures exceeds ${limit}`)
  }
  await receiveItems(link, entryCount, signal, ingest.entry)
  await receiveItems(link, departureCount, signal, ingest.departure)
  return { entries: entryCount, departures: departureCount }
}

async function receiveItems(
  link: Link,
  total: number,
  signal: AbortSignal,
  ingest: (wire: unknown) => Promise<unknown>,
): Promise<void> {
  let received = 0
  while (received < total) {
    const chunk = await link.recv({ signal })
    if (
      !Array.isArray(chunk) ||
      chunk.length === 0 ||
      chunk.length > SYNC_CHUNK ||
      received + chunk.length > total
    ) {
      link.beginClose(CloseCode.ProtocolViolation, 'bad sync chunk')
      throw new DecodeError('bad sync chunk')
    }
    received += chunk.length
    for (const wire of chunk) await ingest(wire)
  }
}

/** A CBOR array of already encoded items (deterministic: the items are canonical themselves). */
function encodeArray(items: Uint8Array[]): Uint8Array {
  const head = encodeCanonical(new Array(items.length).fill(0))
  // The head of an array of n zeros is the array header followed by n one-byte zeros.
  const header = head.subarray(0, head.length - items.length)
  let size = header.length
  for (const item of items) size += item.length
  const out = new Uint8Array(size)
  out.set(header, 0)
  let at = header.length
  for (const item of items) {
    out.set(item, at)
    at += item.length
  }
  return out
}

export class SyncError extends MosaikError {
  constructor(peer: string, cause: Error) {
    super('SYNC_FAILED', `catalog sync with ${peer} failed: ${cause.message}`, { cause })
  }
}

export class DifferentNetworkError extends MosaikError {
  constructor(peer: string) {
    super('DIFFERENT_NETWORK', `${peer} belongs to a different network`)
  }
}

export class UnsupportedVersionError extends MosaikError {
  constructor(what: string, version: unknown) {
    super('UNSUPPORTED_VERSION', `unsupported ${what} protocol version ${describeValue(version)}`)
  }
}

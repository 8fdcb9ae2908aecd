import * as varint from 'uint8-varint'
import type { EntryVersion } from '../discovery/entry.ts'
import { equalBytes } from '../primitives/bytes.ts'
import type { Digest } from '../primitives/digest.ts'
import { CloseCode } from '../transport/close.ts'

/**
 * The streams wire protocol, `/mosaik/<network-short>/streams/1`, on one Link per subscription.
 *
 * 1. The consumer opens the link and sends the handshake, one canonical-CBOR message:
 *    `[version, networkId (32 bytes), streamId (32 bytes), criteria]`. `version` is 1; `criteria` is
 *    a map, as mosaik's placeholder Criteria, whose only key so far is `entry`: `[start, update]`, the
 *    version of the consumer's own entry as it subscribes. Any other value is accepted and ignored.
 * 2. The producer answers with a close code, or with StartStream. It checks, in order:
 *    malformed handshake → ProtocolViolation (400); another version → UnsupportedVersion (426);
 *    another network → DifferentNetwork (101); a consumer missing from its catalog → UnknownPeer (401,
 *    the consumer syncs catalogs and retries), or holding an older entry than `criteria.entry` names →
 *    UnknownPeer too (tickets and `require` must judge the entry the consumer subscribes with, not the
 *    one before a ticket it just added); no producer of that stream → StreamNotFound (10404);
 *    the consumer's peer or host already holds `maxSubscriptionsPerPeer` / `maxSubscriptionsPerHost`
 *    subscriptions → TooManyStreams (429); its peer lags and its next turn does not come within the
 *    handshake timeout → TooSlow (10413); `maxConsumers` reached → NoCapacity (10509); `require`
 *    fails → NotAllowed (10403). Before any of that: a handshake that has not arrived within the
 *    handshake timeout → Timeout (408); one over 1 KiB → FrameTooLarge (413); more than 8 handshakes
 *    of one peer, or 64 of one remote host, in progress → TooManyStreams (429).
 *    StartStream is one canonical-CBOR message `[networkId, streamId]`; the consumer checks both.
 * 3. Then data: each later message from the producer is a batch of one or more datums, each written as
 *    `varint(length) ‖ encoded datum`, back to back to the end of the message. Batching is what makes
 *    small datums cheap (one Link frame and one transport write carry hundreds); a datum too big to
 *    share a batch travels alone in one. The consumer never sends after its handshake; anything it
 *    sends is a ProtocolViolation (or FrameTooLarge, past the handshake's 1 KiB budget).
 * 4. Either side ends with a Link CLOSE frame: GracefulShutdown (204) when a producer closes, TooSlow
 *    (10413) when a consumer's queue overflowed, NotAllowed when `require` stops holding.
 */
export const STREAMS_PROTOCOL = 'streams/1'
export const STREAMS_VERSION = 1

export interface Handshake {
  version: number
  network: Uint8Array
  stream: Uint8Array
  /** The version of the consumer's entry as it subscribed, when its criteria say. */
  entry?: EntryVersion
}

/** The handshake; without `entry`, the empty criteria of consumers that predate it. */
export function handshakeMessage(network: Digest, stream: Digest, entry?: EntryVersion): unknown[] {
  const criteria = new Map(entry ? [['entry', [entry.start, entry.update]]] : [])
  return [STREAMS_VERSION, network.bytes, stream.bytes, criteria]
}

/**
 * Parses a decoded handshake. Returns a close code and reason when it is refused on its face (shape,
 * version, network), the handshake otherwise.
 */
export function parseHandshake(
  value: unknown,
  network: Digest,
): { ok: true; handshake: Handshake } | { ok: false; code: number; reason: string } {
  if (!Array.isArray(value) || value.length < 1 || typeof value[0] !== 'number') {
    return { ok: false, code: CloseCode.ProtocolViolation, reason: 'malformed handshake' }
  }
  if (value[0] !== STREAMS_VERSION) {
    return { ok: false, code: CloseCode.UnsupportedVersion, reason: `streams version ${value[0]}` }
  }
  const [, net, stream] = value
  if (value.length !== 4 || !isId(net) || !isId(stream)) {
    return { ok: false, code: CloseCode.ProtocolViolation, reason: 'malformed handshake' }
  }
  if (!equalBytes(net, network.bytes)) {
    return { ok: false, code: CloseCode.DifferentNetwork, reason: 'different network' }
  }
  const entry = entryVersionOf(value[3])
  return { ok: true, handshake: { version: value[0], network: net, stream, ...(entry && { entry }) } }
}

/** `criteria.entry` when it is a well-formed version; anything else in the criteria is ignored. */
function entryVersionOf(criteria: unknown): EntryVersion | undefined {
  const v = criteria instanceof Map ? criteria.get('entry') : undefined
  if (!Array.isArray(v) || v.length !== 2) return undefined
  const [start, update] = v as unknown[]
  const ok = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0
  return ok(start) && ok(update) ? { start, update } : undefined
}

export function startStreamMessage(network: Digest, stream: Digest): unknown[] {
  return [network.bytes, stream.bytes]
}

export function isStartStream(value: unknown, network: Digest, stream: Digest): boolean {
  return (
    Array.isArray(value) &&
    value.length === 2 &&
    isId(value[0]) &&
    isId(value[1]) &&
    equalBytes(value[0], network.bytes) &&
    equalBytes(value[1], stream.bytes)
  )
}

function isId(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length === 32
}

// ---- data batches --------------------------------------------------------------------------------

/** Bytes of the varint that prefixes a datum of `n` bytes. */
export function varintLength(n: number): number {
  return varint.encodingLength(n)
}

/**
 * Packs `datums[from..to)` (an array, or a subscription's queue) into one batch message. `size` is the
 * exact total of `varintLength(d.length) + d.length` over them.
 */
export function packBatch(
  datums: { at(i: number): Uint8Array | undefined },
  from: number,
  to: number,
  size: number,
): Uint8Array {
  const out = new Uint8Array(size)
  let off = 0
  for (let i = from; i < to; i++) {
    const d = datums.at(i)!
    varint.encode(d.length, out, off)
    off += varint.encodingLength(d.length)
    out.set(d, off)
    off += d.length
  }
  return out
}

/**
 * Splits a batch into its datums (views into `batch`, no copies) and hands each to `each`. Returns
 * false when the framing is broken: a truncated varint or a length past the end of the message.
 */
export function unpackBatch(batch: Uint8Array, each: (datum: Uint8Array) => void): boolean {
  const end = batch.length
  let off = 0
  while (off < end) {
    let len: number
    try {
      // Both throw RangeError: on a varint cut short, or one past 2^53 (its length cannot be encoded).
      len = varint.decode(batch, off)
      off += varint.encodingLength(len)
    } catch {
      return false
    }
    // Our encoder writes the shortest form; a longer one (a continuation bit left set) is refused.
    if (batch[off - 1]! >= 0x80) return false
    if (off + len > end) return false
    each(batch.subarray(off, off + len))
    off += len
  }
  return true
}

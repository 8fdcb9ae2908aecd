import type { PrivateKey } from '@libp2p/interface'
import { utf8 } from '../primitives/bytes.ts'
import { encodeCanonical } from '../primitives/codec.ts'
import { Digest, type NetworkId } from '../primitives/digest.ts'
import { signWith } from '../primitives/ed25519.ts'
import { DecodeError } from '../primitives/errors.ts'
import { type EntryVersion, isDigestBytes } from './entry.ts'
import { MAX_PEER_ID_LENGTH, SIGNATURE_LENGTH, signatureCheckOf, signingInput } from './signing.ts'

const DEPARTURE_DOMAIN = utf8('mosaik/departure/v1')

/** A signed notice that a node is leaving, so peers drop it at once instead of waiting for the purge. */
export interface Departure {
  /** The departing peer. */
  readonly peerId: string
  /** The network it leaves. */
  readonly network: NetworkId
  /** The version of its last entry: older entries of the peer are dropped with it. */
  readonly lastVersion: EntryVersion
  /** When it left, in ms since the epoch. */
  readonly timestamp: number
  /** The peer's signature over the other fields. */
  readonly signature: Uint8Array
}

function departureBytes(d: Omit<Departure, 'signature'>): Uint8Array {
  return encodeCanonical([d.network.bytes, d.peerId, d.lastVersion.start, d.lastVersion.update, d.timestamp])
}

export async function signDeparture(d: Omit<Departure, 'signature'>, key: PrivateKey): Promise<Departure> {
  return { ...d, signature: await signWith(key, signingInput(DEPARTURE_DOMAIN, departureBytes(d))) }
}

export async function verifyDeparture(d: Departure): Promise<boolean> {
  return signatureCheckOf(d.peerId)(signingInput(DEPARTURE_DOMAIN, departureBytes(d)), d.signature)
}

export function departureToWire(d: Departure): unknown {
  return [d.network.bytes, d.peerId, d.lastVersion.start, d.lastVersion.update, d.timestamp, d.signature]
}

export function departureFromWire(v: unknown): Departure {
  if (
    !Array.isArray(v) ||
    v.length !== 6 ||
    !isDigestBytes(v[0]) ||
    typeof v[1] !== 'string' ||
    v[1].length > MAX_PEER_ID_LENGTH ||
    !Number.isSafeInteger(v[2]) ||
    !Number.isSafeInteger(v[3]) ||
    !Number.isSafeInteger(v[4]) ||
    !(v[5] instanceof Uint8Array) ||
    v[5].length !== SIGNATURE_LENGTH
  ) {
    throw new DecodeError('malformed departure')
  }
  return {
    network: Digest.fromBytes(v[0]),
    peerId: v[1],
    lastVersion: { start: v[2], update: v[3] },
    timestamp: v[4],
    signature: v[5],
  }
}

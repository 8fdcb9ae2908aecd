import type { PublicKey } from '@libp2p/interface'
import { blake3 } from '@noble/hashes/blake3.js'
import { concatBytes } from '../primitives/bytes.ts'
import { type SignatureCheck, signatureCheckFor } from '../primitives/ed25519.ts'
import { DecodeError } from '../primitives/errors.ts'
import { peerIdOf } from '../transport/peer-ids.ts'

/** Longest peer id string (an Ed25519 id is 52 characters). */
export const MAX_PEER_ID_LENGTH = 128
/** An Ed25519 signature's length in bytes. */
export const SIGNATURE_LENGTH = 64

/** What is signed: a domain tag and the blake3 digest of the bytes, so no signature is valid twice. */
export function signingInput(domain: Uint8Array, bytes: Uint8Array): Uint8Array {
  return concatBytes(domain, blake3(bytes))
}

/** The public key embedded in an Ed25519 peer id; throws DecodeError for ids that carry none. */
export function publicKeyOf(peerId: string): PublicKey {
  let key: PublicKey | undefined
  try {
    key = peerIdOf(peerId).publicKey
  } catch (err) {
    throw new DecodeError(`invalid peer id ${peerId}`, { cause: err })
  }
  if (!key) throw new DecodeError(`peer id ${peerId} does not embed a public key`)
  return key
}

/**
 * The check of signatures by `peerId`'s key, kept with the key: a node checks every entry version of
 * every peer it learns, and building the check costs a third of one. The key belongs to the PeerId
 * that `peerIdOf` remembers, so a check lives as long as that (bounded) cache keeps its peer.
 * Throws like `publicKeyOf`.
 */
export function signatureCheckOf(peerId: string): SignatureCheck {
  const key = publicKeyOf(peerId)
  let check = signatureChecks.get(key)
  if (check === undefined) {
    check = signatureCheckFor(key)
    signatureChecks.set(key, check)
  }
  return check
}

const signatureChecks = new WeakMap<PublicKey, SignatureCheck>()

import type { PrivateKey, PublicKey } from '@libp2p/interface'

/** Checks signatures made by one key: true when `signature` signs `data`. */
export type SignatureCheck = (data: Uint8Array, signature: Uint8Array) => boolean | Promise<boolean>

/** Builds a check for one raw 32-byte Ed25519 public key, holding whatever the runtime parsed. */
type NativeEd25519 = (rawPublicKey: Uint8Array) => (data: Uint8Array, signature: Uint8Array) => boolean

let native: NativeEd25519 | undefined

/**
 * The signature check for `key`: the runtime's native Ed25519 with the key parsed once, where the
 * platform entry registered one, the key's own `verify` otherwise. Both accept exactly the same
 * signatures.
 *
 * Why: `PublicKey.verify` of @libp2p/crypto imports the key afresh on every call (a JWK import in
 * Node), a third of each check. A node verifies every entry version of every peer it learns, so the
 * caller keeps the check of each signer it meets again (`signatureCheckOf` in `discovery/entry.ts`).
 */
export function signatureCheckFor(key: PublicKey): SignatureCheck {
  if (native !== undefined && key.type === 'Ed25519') return native(key.raw)
  return (data, signature) => key.verify(data, signature)
}

/** Called by a platform entry module whose runtime verifies Ed25519 natively. */
export function registerNativeEd25519(fn: NativeEd25519): void {
  native = fn
}

/** Signs with one raw Ed25519 private key (its 32-byte seed, then its public key), parsed once. */
type NativeEd25519Signer = (rawPrivateKey: Uint8Array) => (data: Uint8Array) => Uint8Array

let nativeSigner: NativeEd25519Signer | undefined
const signers = new WeakMap<PrivateKey, (data: Uint8Array) => Uint8Array | Promise<Uint8Array>>()

/**
 * Signs `data` with `key`: through the runtime's native Ed25519 with the key parsed once, where the
 * platform entry registered it, through the key's own `sign` otherwise. Ed25519 is deterministic, so
 * both give the same signature.
 *
 * Why: `PrivateKey.sign` of @libp2p/crypto imports the key from JWK on every call in Node: 63-73 µs a
 * signature once warm, against 21-27 µs with the key parsed once. A node signs a new version of its
 * entry each time it joins or leaves a group or opens a producer.
 */
export function signWith(key: PrivateKey, data: Uint8Array): Uint8Array | Promise<Uint8Array> {
  let sign = signers.get(key)
  if (sign === undefined) {
    sign =
      nativeSigner !== undefined && key.type === 'Ed25519'
        ? nativeSigner(key.raw)
        : (d: Uint8Array) => key.sign(d)
    signers.set(key, sign)
  }
  return sign(data)
}

/** Called by a platform entry module whose runtime signs with Ed25519 natively. */
export function registerNativeEd25519Signer(fn: NativeEd25519Signer): void {
  nativeSigner = fn
}

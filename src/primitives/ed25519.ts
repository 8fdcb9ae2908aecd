import type { PublicKey } from '@libp2p/interface'

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

import { sha256 as portableSha256 } from '@noble/hashes/sha2.js'

let native: ((data: Uint8Array) => Uint8Array) | undefined

/**
 * SHA-256 of `data`, synchronous: the runtime's native implementation when its platform entry
 * registered one (Node's is some ten times faster on megabytes), a portable one otherwise. Both give
 * the same bytes, so nodes on different platforms agree.
 */
export function sha256(data: Uint8Array): Uint8Array {
  return native === undefined ? portableSha256(data) : native(data)
}

/** Called by a platform entry module whose runtime hashes natively. */
export function registerNativeSha256(fn: (data: Uint8Array) => Uint8Array): void {
  native = fn
}

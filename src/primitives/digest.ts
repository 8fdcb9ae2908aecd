import { blake3 } from '@noble/hashes/blake3.js'
import { compareBytes, concatBytes, equalBytes, fromHex, randomBytes, toHex, utf8 } from './bytes.ts'

/** Anything that names a Digest: a Digest, 32 raw bytes or other bytes (hashed), or a string. */
export type DigestLike = Digest | Uint8Array | string

/**
 * A 32-byte blake3 identifier. Networks, tags, streams, groups and stores are all Digests.
 *
 * `Digest.from(s)` decodes `s` directly when it is 64 hex characters and hashes it otherwise, so an id
 * printed by one node can be pasted into another's config and name the same thing.
 */
export class Digest {
  /** The 32 bytes of the digest. */
  readonly bytes: Uint8Array
  #hex: string | undefined

  private constructor(bytes: Uint8Array) {
    this.bytes = bytes
  }

  /** Digest of a name: 64-hex strings decode directly, other strings and byte strings are hashed. */
  static from(input: DigestLike): Digest {
    if (input instanceof Digest) return input
    if (typeof input === 'string') {
      if (input.length === 64) {
        const raw = fromHex(input)
        if (raw) return new Digest(raw)
      }
      return new Digest(blake3(utf8(input)))
    }
    return new Digest(blake3(input))
  }

  /** Wraps exactly 32 bytes without hashing them. */
  static fromBytes(bytes: Uint8Array): Digest {
    if (bytes.length !== 32) throw new RangeError(`a Digest is 32 bytes, got ${bytes.length}`)
    return new Digest(Uint8Array.from(bytes))
  }

  /** blake3 of the bytes, whatever their length. */
  static hash(bytes: Uint8Array): Digest {
    return new Digest(blake3(bytes))
  }

  /** blake3 of the concatenation of the parts. */
  static fromParts(...parts: readonly (Uint8Array | Digest | string)[]): Digest {
    return new Digest(blake3(concatBytes(...parts.map(partBytes))))
  }

  /** The all-zero digest. */
  static zero(): Digest {
    return new Digest(new Uint8Array(32))
  }

  /** A digest of 32 random bytes (e.g. a fresh, unguessable id). */
  static random(): Digest {
    return new Digest(randomBytes(32))
  }

  /** blake3(this ‖ info): a child id that cannot collide with the parent's other children. */
  derive(info: Uint8Array | Digest | string): Digest {
    return new Digest(blake3(concatBytes(this.bytes, partBytes(info))))
  }

  /** blake3(this). */
  hashed(): Digest {
    return new Digest(blake3(this.bytes))
  }

  /** True when both digests hold the same bytes. */
  equals(other: Digest): boolean {
    return equalBytes(this.bytes, other.bytes)
  }

  /** Orders digests by their bytes (negative, zero or positive), as sorting on the wire does. */
  compare(other: Digest): number {
    return compareBytes(this.bytes, other.bytes)
  }

  /** Lower-case hex, 64 characters. */
  toString(): string {
    this.#hex ??= toHex(this.bytes)
    return this.#hex
  }

  /** The first 8 hex characters, for logs and protocol ids. */
  short(): string {
    return this.toString().slice(0, 8)
  }

  /** The hex form, so digests serialize as strings in JSON. */
  toJSON(): string {
    return this.toString()
  }
}

function partBytes(part: Uint8Array | Digest | string): Uint8Array {
  if (part instanceof Digest) return part.bytes
  if (typeof part === 'string') return utf8(part)
  return part
}

/** The network a node belongs to: Digest.from(name). */
export type NetworkId = Digest
/** A role label in a peer entry: Digest.from(string). */
export type Tag = Digest
/** The id of a stream: Digest.from(name) unless the definition names it otherwise. */
export type StreamId = Digest
/** The id of a group: derived from its key, consensus settings, state machine and ticket validators. */
export type GroupId = Digest
/** The id of a collection (the group that replicates it): a Digest, or a name hashed with Digest.from. */
export type StoreId = Digest

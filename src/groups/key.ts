import { Digest, type DigestLike, type GroupId } from '../primitives/digest.ts'

/**
 * The secret that admits a node to a group. Members prove they hold it when they bond (the secret
 * itself never travels), and it is the root of the GroupId.
 *
 * Gotcha: `GroupKey.fromSecret('name')` hashes a name, so anyone who knows the name can join; use
 * `GroupKey.random()` and distribute it out of band for a private group.
 */
export class GroupKey {
  readonly secret: Digest

  private constructor(secret: Digest) {
    this.secret = secret
  }

  /** A key from a shared secret (a string, bytes, or a 64-hex digest). */
  static fromSecret(secret: DigestLike): GroupKey {
    return new GroupKey(Digest.from(secret))
  }

  static random(): GroupKey {
    return new GroupKey(Digest.random())
  }

  /** Never prints the secret. */
  toString(): string {
    return `GroupKey(${this.secret.hashed().short()}…)`
  }

  toJSON(): string {
    return this.toString()
  }
}

/**
 * The GroupId: blake3 of the secret, derived in turn with the consensus parameters every member must
 * share and with the state machine's signature, so nodes that differ in any of them never bond.
 */
export function deriveGroupId(
  key: GroupKey,
  consensusDigest: Digest,
  stateMachineSignature: Digest,
): GroupId {
  return key.secret.hashed().derive(consensusDigest).derive(stateMachineSignature)
}

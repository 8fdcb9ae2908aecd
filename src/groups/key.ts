import { Digest, type DigestLike, type GroupId } from '../primitives/digest.ts'
import type { TicketValidator } from '../tickets/ticket.ts'

/**
 * The secret that admits a node to a group. Members prove they hold it when they bond (the secret
 * itself never travels), and it is the root of the GroupId.
 *
 * Gotcha: `GroupKey.fromSecret('name')` hashes a name, so anyone who knows the name can join; use
 * `GroupKey.random()` and distribute it out of band for a private group.
 */
export class GroupKey {
  /** The secret itself: keep it out of logs (toString and toJSON never show it). */
  readonly secret: Digest

  private constructor(secret: Digest) {
    this.secret = secret
  }

  /** A key from a shared secret (a string, bytes, or a 64-hex digest). */
  static fromSecret(secret: DigestLike): GroupKey {
    return new GroupKey(Digest.from(secret))
  }

  /** A key with a fresh random secret, for a private group (distribute it out of band). */
  static random(): GroupKey {
    return new GroupKey(Digest.random())
  }

  /**
   * A key whose secret is the validator's signature (mosaik's `GroupKey::from(&validator)`): every node
   * configured with the same ticket policy derives the same key, and admission rests on the tickets.
   *
   * Gotcha: the signature is no secret (anyone who knows the policy can compute it), so such a group is
   * only as closed as its `requireTicket` validators make it: pass the validator there too.
   */
  static fromTicketValidator(validator: TicketValidator): GroupKey {
    return new GroupKey(validator.signature)
  }

  /** Never prints the secret. */
  toString(): string {
    return `GroupKey(${this.secret.hashed().short()}…)`
  }

  /** The same redacted form as toString, so JSON never carries the secret. */
  toJSON(): string {
    return this.toString()
  }
}

/**
 * The GroupId: blake3 of the secret, derived in turn with the consensus parameters every member must
 * share, with the state machine's signature and then with each required ticket validator's signature
 * in order (as mosaik), so nodes that differ in any of them never bond.
 */
export function deriveGroupId(
  key: GroupKey,
  consensusDigest: Digest,
  stateMachineSignature: Digest,
  ticketValidators: readonly TicketValidator[] = [],
): GroupId {
  let id = key.secret.hashed().derive(consensusDigest).derive(stateMachineSignature)
  for (const v of ticketValidators) id = id.derive(v.signature)
  return id
}

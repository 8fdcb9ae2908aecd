import type { PeerEntry, Ticket as TicketShape } from '../discovery/entry.ts'
import { equalBytes } from '../primitives/bytes.ts'
import { Digest, type DigestLike } from '../primitives/digest.ts'
import { MosaikError } from '../primitives/errors.ts'

/**
 * Tickets are credentials a node carries in its signed peer entry: `{ class, data }`, where `class`
 * names the kind of credential (and so the validator that understands it) and `data` is opaque to
 * everything but that validator (a JWT, an attestation...). Streams, groups and collections can require
 * tickets: a peer is admitted only while every required validator accepts one of its tickets.
 *
 * When to use: admission by an authority (an issuer signs who may join) instead of, or on top of,
 * predicates on tags. Tags are self-declared; a ticket is only as good as its validator's check.
 *
 * Gotchas:
 * - An entry is public: anyone who reads the catalog can copy a ticket. Validators must bind a ticket
 *   to the peer that carries it (the JWT validator checks `sub` = the carrier's peer id by default).
 * - An entry holds at most 16 tickets (MAX_TICKETS) within the entry's byte limit (8 KiB by default).
 */
export type Ticket = TicketShape

/** Helpers on tickets (a Ticket is a plain `{ class, data }` object). */
export const Ticket = {
  /** A ticket of `cls` (a Digest, or a name hashed with Digest.from) carrying `data`. */
  create(cls: DigestLike, data: Uint8Array): Ticket {
    return { class: Digest.from(cls), data: Uint8Array.from(data) }
  },
  /** The ticket's id: class.derive(data), as mosaik. Removing a ticket names it by this id. */
  id(ticket: Ticket): Digest {
    return ticket.class.derive(ticket.data)
  },
  /** True when both tickets have the same class and the same data. */
  equals(a: Ticket, b: Ticket): boolean {
    return a.class.equals(b.class) && equalBytes(a.data, b.data)
  },
} as const

/** Why a ticket (or a peer's set of tickets) was refused; the `code` of InvalidTicketError. */
export type TicketErrorCode =
  /** The peer carries no ticket of the validator's class. */
  | 'TICKET_MISSING'
  /** The data does not parse (not UTF-8, not three base64url parts, bad JSON...). */
  | 'TICKET_MALFORMED'
  /** The token's algorithm is not one of the configured keys'. */
  | 'TICKET_UNSUPPORTED_ALGORITHM'
  /** No configured key verifies the signature. */
  | 'TICKET_BAD_SIGNATURE'
  | 'TICKET_WRONG_ISSUER'
  | 'TICKET_WRONG_SUBJECT'
  | 'TICKET_WRONG_AUDIENCE'
  /** `nbf` is still in the future (beyond the clock-skew leeway). */
  | 'TICKET_NOT_YET_VALID'
  | 'TICKET_EXPIRED'
  /** No `exp` claim, and the validator does not allow non-expiring tickets. */
  | 'TICKET_NO_EXPIRY'
  /** exp − iat exceeds the validator's maximum lifetime. */
  | 'TICKET_LIFETIME_TOO_LONG'
  /** now − iat exceeds the validator's maximum age (or `iat` is missing). */
  | 'TICKET_TOO_OLD'
  /** A required custom claim is missing or has another value. */
  | 'TICKET_CLAIM_MISMATCH'
  /** Any other refusal (a custom validator threw something else). */
  | 'TICKET_INVALID'

/** A ticket was refused by a validator; `code` says why (stable, see TicketErrorCode). */
export class InvalidTicketError extends MosaikError {
  declare readonly code: TicketErrorCode
  constructor(code: TicketErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options)
  }
}

/**
 * When a ticket stops being valid: never, or at a point in time (ms since the epoch). Never compares
 * as the latest of all expirations.
 */
export class Expiration {
  /** Milliseconds since the epoch; undefined for never. */
  readonly at: number | undefined

  private constructor(at: number | undefined) {
    this.at = at
  }

  static readonly #never = new Expiration(undefined)

  /** An expiration that never comes. */
  static never(): Expiration {
    return Expiration.#never
  }

  /** At a Date or a time in ms since the epoch. */
  static at(time: Date | number): Expiration {
    const ms = typeof time === 'number' ? time : time.getTime()
    if (Number.isNaN(ms)) throw new RangeError('an expiration needs a valid time')
    return new Expiration(ms)
  }

  /** `ms` milliseconds from now. */
  static after(ms: number, now = Date.now()): Expiration {
    return new Expiration(now + ms)
  }

  /** `hours` hours from now. */
  static inHours(hours: number, now = Date.now()): Expiration {
    return new Expiration(now + hours * 3_600_000)
  }

  /** An expiration in the past (for tests and revocations). */
  static alreadyExpired(now = Date.now()): Expiration {
    return new Expiration(now - 1)
  }

  /** True when this never expires. */
  get isNever(): boolean {
    return this.at === undefined
  }

  /** True once `now` has reached the expiration (never for `never()`). */
  isExpired(now = Date.now()): boolean {
    return this.at !== undefined && now >= this.at
  }

  /** Milliseconds left (0 once expired, Infinity for never). */
  remaining(now = Date.now()): number {
    return this.at === undefined ? Number.POSITIVE_INFINITY : Math.max(0, this.at - now)
  }

  /** Negative when this expires before `other`. */
  compare(other: Expiration): number {
    const a = this.at ?? Number.POSITIVE_INFINITY
    const b = other.at ?? Number.POSITIVE_INFINITY
    return a === b ? 0 : a < b ? -1 : 1
  }

  /** The earlier of the two. */
  min(other: Expiration): Expiration {
    return this.compare(other) <= 0 ? this : other
  }

  /** The later of the two. */
  max(other: Expiration): Expiration {
    return this.compare(other) >= 0 ? this : other
  }

  /** The expiration as a Date; undefined for never. */
  toDate(): Date | undefined {
    return this.at === undefined ? undefined : new Date(this.at)
  }

  /** ISO 8601 time, or `never`. */
  toString(): string {
    return this.at === undefined ? 'never' : new Date(this.at).toISOString()
  }
}

/**
 * Checks one class of tickets. Streams, groups and collections take validators in `requireTicket`.
 *
 * When to use: implement it for your own credential; use `Jwt` for JSON Web Tokens.
 *
 * Gotchas:
 * - `signature` feeds into the GroupId of groups and collections that require the validator, so every
 *   member must configure the same policy; it must not depend on local state (clock, order of keys).
 * - `validate` is called again for every new version of a peer's entry and must not have side effects;
 *   it should return the time the ticket stops being valid, which schedules a re-check.
 */
export interface TicketValidator {
  /** The class of tickets it reads. */
  readonly class: Digest
  /** Digest of the validator's policy (class, keys, required claims...). */
  readonly signature: Digest
  /** Resolves with the ticket's expiry, or rejects with InvalidTicketError. */
  validate(data: Uint8Array, entry: PeerEntry): Promise<Expiration>
}

/** `requireTicket` as given (one validator or several) → a list; all must pass. */
export function validatorList(
  validators: TicketValidator | readonly TicketValidator[] | undefined,
): TicketValidator[] {
  if (validators === undefined) return []
  return isValidator(validators) ? [validators] : [...validators]
}

function isValidator(v: TicketValidator | readonly TicketValidator[]): v is TicketValidator {
  return !Array.isArray(v)
}

/**
 * Validates the entry's tickets of `validator.class`; resolves with the latest expiry among the valid
 * ones. Rejects with InvalidTicketError (TICKET_MISSING when the entry has none of that class; else the
 * refusal of the last ticket tried).
 */
export async function validateTicket(entry: PeerEntry, validator: TicketValidator): Promise<Expiration> {
  let best: Expiration | undefined
  let lastError: InvalidTicketError | undefined
  for (const ticket of entry.tickets) {
    if (!ticket.class.equals(validator.class)) continue
    try {
      const expiration = await validator.validate(ticket.data, entry)
      if (expiration.isExpired()) throw new InvalidTicketError('TICKET_EXPIRED', 'ticket has expired')
      best = best === undefined ? expiration : best.max(expiration)
    } catch (err) {
      lastError =
        err instanceof InvalidTicketError
          ? err
          : new InvalidTicketError('TICKET_INVALID', (err as Error)?.message ?? String(err), { cause: err })
    }
  }
  if (best) return best
  throw (
    lastError ??
    new InvalidTicketError(
      'TICKET_MISSING',
      `peer ${entry.peerId} has no ticket of class ${validator.class.short()}`,
    )
  )
}

/**
 * Validates the entry against every validator (all must accept one of its tickets); resolves with the
 * earliest of their expiries (never for no validators), rejects with the first refusal.
 */
export async function validateTickets(
  entry: PeerEntry,
  validators: readonly TicketValidator[],
): Promise<Expiration> {
  let earliest = Expiration.never()
  for (const v of validators) earliest = earliest.min(await validateTicket(entry, v))
  return earliest
}

import type { PeerEntry } from '../discovery/entry.ts'
import { systemTimers, type Timers } from '../primitives/time.ts'
import { Expiration, InvalidTicketError, type TicketValidator, validateTickets } from './ticket.ts'

/** Where a peer stands with a gate: its tickets pass, fail, or are being checked. */
export type TicketStatus = 'valid' | 'invalid' | 'pending'

export type TicketDecision =
  | { readonly ok: true; readonly expiration: Expiration }
  | { readonly ok: false; readonly error: InvalidTicketError }

interface PeerRecord {
  readonly entry: PeerEntry
  decision: TicketDecision | undefined
  promise: Promise<TicketDecision>
  /** Cancels the expiry timer, if one is armed. */
  cancelTimer: (() => void) | undefined
}

/** setTimeout's largest delay; longer expiries re-arm. */
const MAX_DELAY_MS = 2 ** 31 - 1
const NEVER_EXPIRES: TicketDecision = { ok: true, expiration: Expiration.never() }

/**
 * The ticket check of one producer, consumer or group: validates each peer's entry against the
 * required validators (all must pass), once per entry content, and tells its owner (`onChange`) when
 * a result arrives or a ticket expires, so the owner re-evaluates its peers: admits, drops or closes.
 *
 * Validators are asynchronous, so `status` answers 'pending' for an entry not checked yet and starts
 * the check; the owner hears `onChange` when it is done. `authorize` waits for the result instead.
 *
 * Gotcha: call `close()` when the owner closes, or expiry timers outlive it.
 */
export class TicketGate {
  readonly validators: readonly TicketValidator[]
  readonly #onChange: () => void
  readonly #records = new Map<string, PeerRecord>()
  #notifyScheduled = false
  #closed = false
  readonly #timers: Timers

  /** `timers` run the expiry timers (the expiries themselves are wall-clock). */
  constructor(validators: readonly TicketValidator[], onChange: () => void, timers: Timers = systemTimers) {
    this.validators = [...validators]
    this.#onChange = onChange
    this.#timers = timers
  }

  /** True when there is anything to check. */
  get required(): boolean {
    return this.validators.length > 0
  }

  /** The peer's standing now; starts a check of an entry not seen before. */
  status(entry: PeerEntry): TicketStatus {
    if (!this.required) return 'valid'
    const d = this.#record(entry).decision
    if (d === undefined) return 'pending'
    return isValid(d) ? 'valid' : 'invalid'
  }

  /** Waits for the check of `entry` and returns its decision (expired tickets count as refused). */
  async authorize(entry: PeerEntry): Promise<TicketDecision> {
    if (!this.required) return NEVER_EXPIRES
    const d = await this.#record(entry).promise
    if (d.ok && d.expiration.isExpired()) {
      return { ok: false, error: new InvalidTicketError('TICKET_EXPIRED', 'ticket has expired') }
    }
    return d
  }

  /** Forgets peers for which `keep` is false (they left the catalog). */
  prune(keep: (peerId: string) => boolean): void {
    for (const [id, rec] of this.#records) {
      if (keep(id)) continue
      rec.cancelTimer?.()
      this.#records.delete(id)
    }
  }

  close(): void {
    this.#closed = true
    for (const rec of this.#records.values()) rec.cancelTimer?.()
    this.#records.clear()
  }

  #record(entry: PeerEntry): PeerRecord {
    const known = this.#records.get(entry.peerId)
    if (known && (known.entry === entry || known.entry.sameContent(entry))) return known
    known?.cancelTimer?.()
    const rec: PeerRecord = { entry, decision: undefined, promise: undefined!, cancelTimer: undefined }
    rec.promise = validateTickets(entry, this.validators).then(
      (expiration): TicketDecision => this.#decided(rec, { ok: true, expiration }),
      (err: unknown): TicketDecision => this.#decided(rec, { ok: false, error: asInvalid(err) }),
    )
    if (!this.#closed) this.#records.set(entry.peerId, rec)
    return rec
  }

  #decided(rec: PeerRecord, d: TicketDecision): TicketDecision {
    rec.decision = d
    if (this.#closed || this.#records.get(rec.entry.peerId) !== rec) return d
    if (d.ok) this.#arm(rec, d.expiration)
    this.#notify()
    return d
  }

  /** Tells the owner once the ticket expires (then `status` says 'invalid'). */
  #arm(rec: PeerRecord, expiration: Expiration): void {
    if (expiration.isNever) return
    const wait = expiration.remaining()
    rec.cancelTimer = this.#timers.setTimeout(
      () => {
        rec.cancelTimer = undefined
        if (this.#closed || this.#records.get(rec.entry.peerId) !== rec) return
        if (expiration.isExpired()) this.#notify()
        else this.#arm(rec, expiration)
      },
      Math.min(wait, MAX_DELAY_MS),
    )
  }

  /** Coalesces results that arrive together into one re-evaluation. */
  #notify(): void {
    if (this.#notifyScheduled) return
    this.#notifyScheduled = true
    queueMicrotask(() => {
      this.#notifyScheduled = false
      if (!this.#closed) this.#onChange()
    })
  }
}

function isValid(d: TicketDecision): boolean {
  return d.ok && !d.expiration.isExpired()
}

function asInvalid(err: unknown): InvalidTicketError {
  if (err instanceof InvalidTicketError) return err
  return new InvalidTicketError('TICKET_INVALID', (err as Error)?.message ?? String(err), { cause: err })
}

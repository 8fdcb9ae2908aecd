import type { Timers } from '../primitives/time.ts'
import type { Probation } from './probation.ts'
import type { Subscription } from './subscription.ts'

/** What the lag watch is told to do with what it finds. */
export interface LagHandlers {
  /** A consumer fell behind at `now`: close it (or stop waiting for it), and put its peer on probation. */
  lagged(sub: Subscription, now: number, reason: string): void
  /** A lag check ran out of its timer (and may have made room): queued sends may go now. */
  checked(): void
}

/**
 * Finds the consumers that hold a producer back: full queues while another consumer keeps up, for
 * longer than their grace. It reads the sink's live list of subscriptions and keeps at most one timer.
 *
 * The grace depends on what the producer knows of the consumer:
 * - one that has read datums (its link's credit grants say so) gets the lag timeout: it reads, and
 *   may have fallen behind for a moment;
 * - one that has never read a datum gets `UNPROVEN_GRACE_MS` (at most the lag timeout). Its queue is
 *   full only once a whole link window and `bufferSize` datums went out unread, while an honest
 *   consumer reports its reads every quarter window, so a full queue with no read reported is a
 *   consumer that does not read. It must not hold the producer for a whole lag timeout: a stream of
 *   fresh identities that subscribe and never read would otherwise stall it one timeout each;
 * - one whose peer is on probation gets none (see probation.ts).
 */
export class LagWatch {
  readonly #subs: readonly Subscription[]
  readonly #bufferSize: number
  readonly #lagTimeoutMs: number
  readonly #unprovenGraceMs: number
  readonly #probation: Probation
  readonly #handlers: LagHandlers
  readonly #now: () => number
  readonly #timers: Timers
  /** Cancels the armed timer. */
  #lagTimer: (() => void) | undefined
  /** When the timer fires. */
  #lagTimerAt = 0
  #closed = false

  constructor(
    subs: readonly Subscription[],
    options: {
      bufferSize: number
      lagTimeoutMs: number
      probation: Probation
      /** The node's clock (the same one probation is kept in). */
      now: () => number
      /** The node's timers (its scope: cleared when it stops). */
      timers: Timers
    },
    handlers: LagHandlers,
  ) {
    this.#subs = subs
    this.#bufferSize = options.bufferSize
    this.#lagTimeoutMs = options.lagTimeoutMs
    this.#unprovenGraceMs = Math.min(options.lagTimeoutMs, UNPROVEN_GRACE_MS)
    this.#probation = options.probation
    this.#now = options.now
    this.#timers = options.timers
    this.#handlers = handlers
  }

  /**
   * True when every consumer that is not lagging has room, after dropping (or skipping) full ones on
   * probation; otherwise the lag clocks of the full queues run.
   */
  hasRoom(): boolean {
    if (this.hasCapacity()) return true
    return this.watch() && this.hasCapacity()
  }

  /** True while every consumer that is not lagging has room in its queue. */
  hasCapacity(): boolean {
    const subs = this.#subs
    const cap = this.#bufferSize
    for (let i = 0; i < subs.length; i++) {
      const s = subs[i]!
      if (s.queued >= cap && !s.lagging) return false
    }
    return true
  }

  /**
   * The producer is held back by full queues. While some other consumer keeps up, a full queue of a
   * peer on probation lags at once, and every other full queue starts its lag clock, checked when the
   * first clock runs out. Returns true when it found a consumer lagging (which may have made room).
   *
   * Keeping up means having room and having read: a new subscription has room because its link's
   * credit window is still filling, whether or not its consumer reads. A burst of new subscriptions
   * that never read must not make a consumer that reads, but is the slowest for a moment, look like
   * the laggard.
   */
  watch(): boolean {
    const subs = this.#subs
    const cap = this.#bufferSize
    const now = this.#now()
    let someoneKeepsUp = false
    let someoneMayRead = false
    for (let i = 0; i < subs.length; i++) {
      const s = subs[i]!
      if (s.queued >= cap || s.lagging) continue
      if (s.hasRead) {
        someoneKeepsUp = true
        break
      }
      someoneMayRead = true
    }
    if (!someoneKeepsUp) {
      // Look again once a new subscription with room has had time to read: nothing else may come to
      // wake the producer (a full queue that never drains schedules no flush).
      if (someoneMayRead) this.#schedule(now + this.#unprovenGraceMs, now)
      return false
    }
    let first: number | undefined
    let laggards: Subscription[] | undefined
    for (let i = 0; i < subs.length; i++) {
      const s = subs[i]!
      if (s.lagging || s.queued < cap) continue
      if (this.#probation.has(s.record.peerId, now)) {
        laggards ??= []
        laggards.push(s)
        continue
      }
      s.fullSince ??= now
      const due = s.fullSince + this.#graceOf(s)
      if (first === undefined || due < first) first = due
    }
    if (laggards) for (const s of laggards) this.#handlers.lagged(s, now, 'queue full while on probation')
    if (first !== undefined) this.#schedule(first, now)
    return laggards !== undefined
  }

  /** How long a full queue may hold the producer: see the class comment. */
  #graceOf(sub: Subscription): number {
    return sub.hasRead ? this.#lagTimeoutMs : this.#unprovenGraceMs
  }

  /** Arms the one timer for `at`, unless it already fires sooner. */
  #schedule(at: number, now: number): void {
    if (this.#lagTimer !== undefined) {
      if (this.#lagTimerAt <= at) return
      this.#lagTimer()
    }
    this.#lagTimerAt = at
    this.#lagTimer = this.#timers.setTimeout(this.#check, Math.max(0, at - now))
  }

  readonly #check = (): void => {
    this.#lagTimer = undefined
    if (this.#closed) return
    const now = this.#now()
    for (const sub of [...this.#subs]) {
      if (sub.fullSince === undefined) continue
      const grace = this.#graceOf(sub)
      if (now - sub.fullSince < grace) continue
      const why = sub.hasRead ? `queue full for ${grace} ms` : `queue full for ${grace} ms, never read`
      this.#handlers.lagged(sub, now, why)
    }
    this.#handlers.checked()
  }

  /** Stops the timer for good (the sink closed). */
  close(): void {
    this.#closed = true
    this.#lagTimer?.()
    this.#lagTimer = undefined
  }
}

/**
 * How long a full queue whose consumer has never read may hold the producer. Long enough for an
 * honest consumer's first read to come back (a round trip and a busy event loop), far shorter than
 * the lag timeout a reading consumer gets.
 */
const UNPROVEN_GRACE_MS = 100

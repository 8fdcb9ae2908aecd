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
 * longer than the lag timeout (at once for a peer on probation). It reads the sink's live list of
 * subscriptions and keeps at most one timer.
 */
export class LagWatch {
  readonly #subs: readonly Subscription[]
  readonly #bufferSize: number
  readonly #lagTimeoutMs: number
  readonly #probation: Probation
  readonly #handlers: LagHandlers
  #lagTimer: ReturnType<typeof setTimeout> | undefined
  #closed = false

  constructor(
    subs: readonly Subscription[],
    options: { bufferSize: number; lagTimeoutMs: number; probation: Probation },
    handlers: LagHandlers,
  ) {
    this.#subs = subs
    this.#bufferSize = options.bufferSize
    this.#lagTimeoutMs = options.lagTimeoutMs
    this.#probation = options.probation
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
   * (Why probation: see probation.ts.)
   *
   * A subscription younger than the lag timeout does not count as keeping up: its queue has room
   * because its link's credit window (1 MiB) is still filling, whether or not its consumer reads. A
   * burst of new subscriptions that never read must not make a consumer that reads, but is the
   * slowest for a moment, look like the laggard.
   */
  watch(): boolean {
    const subs = this.#subs
    const cap = this.#bufferSize
    const now = Date.now()
    const settled = now - this.#lagTimeoutMs
    let someoneKeepsUp = false
    let firstSettles: number | undefined
    for (let i = 0; i < subs.length; i++) {
      const s = subs[i]!
      if (s.queued >= cap || s.lagging) continue
      const connectedAt = s.record.connectedAt!
      if (connectedAt <= settled) {
        someoneKeepsUp = true
        break
      }
      if (firstSettles === undefined || connectedAt < firstSettles) firstSettles = connectedAt
    }
    if (!someoneKeepsUp) {
      // Look again once the oldest young subscription with room has settled: nothing else may come
      // to wake the producer (a full queue that never drains schedules no flush).
      if (firstSettles !== undefined && this.#lagTimer === undefined) {
        this.#lagTimer = setTimeout(this.#check, firstSettles + this.#lagTimeoutMs - now)
      }
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
      if (first === undefined || s.fullSince < first) first = s.fullSince
    }
    if (laggards) for (const s of laggards) this.#handlers.lagged(s, now, 'queue full while on probation')
    if (first !== undefined && this.#lagTimer === undefined) {
      this.#lagTimer = setTimeout(this.#check, Math.max(0, first + this.#lagTimeoutMs - now))
    }
    return laggards !== undefined
  }

  readonly #check = (): void => {
    this.#lagTimer = undefined
    if (this.#closed) return
    const now = Date.now()
    for (const sub of [...this.#subs]) {
      if (sub.fullSince === undefined || now - sub.fullSince < this.#lagTimeoutMs) continue
      this.#handlers.lagged(sub, now, `queue full for ${this.#lagTimeoutMs} ms`)
    }
    this.#handlers.checked()
  }

  /** Stops the timer for good (the sink closed). */
  close(): void {
    this.#closed = true
    clearTimeout(this.#lagTimer)
  }
}

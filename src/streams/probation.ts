/**
 * What a producer remembers about consumer peers it found lagging. Two costs follow from lagging:
 *
 * - **No grace.** While a peer is on probation, a full queue of any of its subscriptions lags at once
 *   instead of holding the producer back for `lagTimeoutMs`. The grace exists for a consumer that
 *   reads but fell behind for a moment; a subscription that never reads takes a whole grace to be
 *   found out, and without a memory of its peer, re-subscribing in a loop would hold the producer
 *   back nearly all the time.
 * - **Spaced re-subscriptions.** A peer on probation may open one subscription per turn, and its
 *   turns grow apart each time it lags again (the grace, doubled per strike, at most 30 s). Every
 *   subscription costs the producer a handshake and a credit window of data (up to 1 MiB) copied
 *   before a reader that never reads is found out; spacing them bounds what a peer that lags on
 *   purpose makes the producer spend, whatever the number of its links.
 *
 * An honest consumer that fell behind once loses only its grace for a while: it reconnects after its
 * own backoff (500 ms and growing), which its first turns already allow. Probation ends a minute after
 * the last strike. Keys are peer ids, so a machine minting identities gets one grace and one window
 * per identity; the per-host subscription limit bounds how many it holds at once.
 */
export class Probation {
  readonly #graceMs: number
  readonly #peers = new Map<string, PeerRecord>()

  /** `graceMs` is the producer's lag timeout: the first turn gap, doubled per further strike. */
  constructor(graceMs: number) {
    this.#graceMs = Math.max(1, graceMs)
  }

  /** Records that a subscription of `peer` lagged at `now`: probation starts or is renewed. */
  lagged(peer: string, now: number): void {
    const previous = this.#current(peer, now)
    const strikes = (previous?.strikes ?? 0) + 1
    const record: PeerRecord = {
      strikes,
      until: now + PROBATION_MS,
      nextTurn: Math.max(previous?.nextTurn ?? 0, now + this.#gap(strikes)),
    }
    // Re-inserted so the map stays in order of last strike: the oldest go first when it is full.
    this.#peers.delete(peer)
    this.#peers.set(peer, record)
    if (this.#peers.size > MAX_PEERS) this.#peers.delete(this.#peers.keys().next().value!)
  }

  /** True while `peer` is on probation: its full queues lag at once. */
  has(peer: string, now: number): boolean {
    return this.#current(peer, now) !== undefined
  }

  /**
   * Asks whether `peer` may subscribe at `now`. A peer not on probation always may; one on probation
   * takes its turn if it has come (the next one is a gap later). Returns 0 when admitted, else the
   * milliseconds until its next turn.
   */
  admit(peer: string, now: number): number {
    const record = this.#current(peer, now)
    if (!record) return 0
    if (now < record.nextTurn) return record.nextTurn - now
    record.nextTurn = now + this.#gap(record.strikes)
    return 0
  }

  #gap(strikes: number): number {
    return Math.min(MAX_TURN_GAP_MS, this.#graceMs * 2 ** Math.min(strikes - 1, 30))
  }

  #current(peer: string, now: number): PeerRecord | undefined {
    const record = this.#peers.get(peer)
    if (record === undefined) return undefined
    if (record.until > now) return record
    this.#peers.delete(peer)
    return undefined
  }
}

interface PeerRecord {
  strikes: number
  /** Probation ends then (a minute after the last strike). */
  until: number
  /** The peer may open its next subscription from then on. */
  nextTurn: number
}

/** How long probation lasts after the last strike. */
const PROBATION_MS = 60_000
/** The longest gap between a lagging peer's subscriptions. */
const MAX_TURN_GAP_MS = 30_000
/** Peers on probation remembered at most; past it the oldest strikes are forgotten first. */
const MAX_PEERS = 4096

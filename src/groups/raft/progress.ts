/**
 * How the leader replicates to one follower, after etcd's tracker:
 * - probe: the follower's log position is unknown; one AppendEntries at a time until one succeeds;
 * - replicate: the position is known; AppendEntries are pipelined, at most `maxInflight` unacknowledged;
 * - snapshot: the follower needs entries the leader compacted; it waits for the follower to install a
 *   snapshot;
 * - catchup: the follower pulls committed entries from its peers in parallel; the leader waits.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot' | 'catchup'

export class Progress {
  /** The highest index known to match the leader's log. */
  match = 0
  /** The next index to send. */
  next: number
  state: ProgressState = 'probe'
  /** Probe state: an AppendEntries is out and not yet answered. */
  probeSent = false
  /** Snapshot state: the snapshot index the follower was told to install. */
  pendingSnapshot = 0
  /** Last time any answer came from the follower (CheckQuorum, autopilot). */
  lastResponseAt: number
  /** Last time the match advanced, or pipelining (re)started (stall detection). */
  lastProgressAt: number
  /** Last time the follower was told to install a snapshot. */
  snapshotSentAt = Number.NEGATIVE_INFINITY
  /** The highest leader round (`seq`) the follower acknowledged in this term (ReadIndex). */
  ackedSeq = 0
  /** The commit index last sent in an AppendEntries, so commit advances are propagated once. */
  sentCommit = 0
  /**
   * Catch-up rounds (Raft dissertation §4.2.1): a round asks the follower to reach the leader's last
   * index as of the round's start. When its match does, the round ends and the next begins.
   */
  roundTarget: number
  roundStartedAt: number
  /** The current round's target was already reached when it began (nothing to catch up). */
  #roundEmpty = false
  /** The last round that ended took less than the limit. */
  #roundQuick = false
  /**
   * The follower keeps up: its last round ended within the limit and the current one is not overdue.
   * Refreshed by `updateRound`; the autopilot promotes only such a learner.
   */
  caughtUp = false
  /** Last index carried by each unacknowledged AppendEntries, oldest first. */
  readonly #inflight: number[] = []

  constructor(next: number, now: number) {
    this.next = next
    this.lastResponseAt = now
    this.lastProgressAt = now
    this.roundTarget = next - 1
    this.roundStartedAt = now
  }

  /**
   * Ends the current round if the match reached its target (the leader calls this on every advance
   * of the match, so the round ends at `now`), starts the next one at the leader's `lastIndex`, and
   * refreshes `caughtUp`. A round is quick when it took less than `limitMs` (an election timeout).
   */
  updateRound(lastIndex: number, now: number, limitMs: number): void {
    if (this.match >= this.roundTarget) {
      this.#roundQuick = this.#roundEmpty || now - this.roundStartedAt < limitMs
      this.roundTarget = lastIndex
      this.roundStartedAt = now
      this.#roundEmpty = this.match >= lastIndex
    }
    this.caughtUp =
      this.#roundQuick && (this.match >= this.roundTarget || now - this.roundStartedAt < limitMs)
  }

  get inflight(): number {
    return this.#inflight.length
  }

  /** Nothing more may be sent now (heartbeats still are). */
  isPaused(maxInflight: number): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent
      case 'replicate':
        return this.#inflight.length >= maxInflight
      default:
        return true
    }
  }

  becomeProbe(): void {
    // After a snapshot the follower holds at least the snapshot index.
    this.next = Math.max(this.match + 1, this.state === 'snapshot' ? this.pendingSnapshot + 1 : 0)
    this.state = 'probe'
    this.probeSent = false
    this.pendingSnapshot = 0
    this.#inflight.length = 0
  }

  becomeReplicate(now: number): void {
    this.state = 'replicate'
    this.next = this.match + 1
    this.probeSent = false
    this.lastProgressAt = now
    this.#inflight.length = 0
  }

  becomeSnapshot(index: number, now: number): void {
    this.state = 'snapshot'
    this.pendingSnapshot = index
    this.snapshotSentAt = now
    this.#inflight.length = 0
  }

  becomeCatchUp(now: number): void {
    this.state = 'catchup'
    this.lastProgressAt = now
    this.#inflight.length = 0
  }

  /** Records an AppendEntries carrying entries up to `last`. */
  sent(last: number, now: number): void {
    if (this.state === 'replicate') {
      if (this.#inflight.length === 0) this.lastProgressAt = now
      this.next = last + 1
      this.#inflight.push(last)
    } else {
      this.probeSent = true
    }
  }

  /** A successful answer up to `index`; true when the match advanced. */
  maybeUpdate(index: number, now: number): boolean {
    this.probeSent = false
    if (index > this.next - 1) this.next = index + 1
    if (index <= this.match) return false
    this.match = index
    this.lastProgressAt = now
    const inflight = this.#inflight
    let freed = 0
    while (freed < inflight.length && inflight[freed]! <= index) freed++
    if (freed > 0) inflight.splice(0, freed)
    return true
  }

  /**
   * A rejection of the AppendEntries whose prevIndex was `rejected`; `probeHint` is where the logs may
   * agree. Returns false for a stale rejection (the follower is past it already).
   */
  maybeDecrTo(rejected: number, probeHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false
      this.next = this.match + 1
      return true
    }
    // Otherwise only the answer to the latest probe counts.
    if (this.next - 1 !== rejected) return false
    this.next = Math.max(Math.min(rejected, probeHint + 1), this.match + 1)
    this.probeSent = false
    return true
  }
}

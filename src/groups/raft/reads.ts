/**
 * The leader's ReadIndex bookkeeping. A strong read is registered at the commit index and tagged with
 * a confirmation round (`seq`); every AppendEntries and heartbeat carries the current round and every
 * answer echoes it. Once a majority of voters acknowledged a round, the reads of that round (and of
 * earlier ones) are confirmed: no other leader can have committed anything past their index then.
 */

import type { ReadRequestId, ReadState } from './types.ts'

interface PendingRead {
  requestId: ReadRequestId
  index: number
  seq: number
}

export class ReadQueue {
  /** The leader's current confirmation round. Never decreases, across terms too. */
  seq = 0
  /** A new round was opened for reads and must be sent out (heartbeats to the voters). */
  #roundQueued = false
  #pending: PendingRead[] = []
  #head = 0

  /** Registers a read at `index`; it is confirmed by the next round to go out. */
  add(requestId: ReadRequestId, index: number): void {
    if (!this.#roundQueued) {
      this.seq++
      this.#roundQueued = true
    }
    this.#pending.push({ requestId, index, seq: this.seq })
  }

  get waiting(): boolean {
    return this.#head < this.#pending.length
  }

  /** True once per opened round: the caller sends it to the voters now. */
  takeRound(): boolean {
    const queued = this.#roundQueued
    this.#roundQueued = false
    return queued
  }

  /** A majority acknowledged round `confirmed`: moves the reads it confirms to `out`. */
  release(confirmed: number, out: ReadState[]): void {
    const pending = this.#pending
    let head = this.#head
    while (head < pending.length && pending[head]!.seq <= confirmed) {
      const read = pending[head++]!
      out.push({ requestId: read.requestId, index: read.index })
    }
    if (head === pending.length) {
      this.#pending = []
      head = 0
    }
    this.#head = head
  }

  /** Leadership is lost: every read still waiting goes to `out`, unconfirmed. */
  dropAll(out: ReadRequestId[]): void {
    for (let i = this.#head; i < this.#pending.length; i++) out.push(this.#pending[i]!.requestId)
    this.#pending = []
    this.#head = 0
    this.#roundQueued = false
  }
}

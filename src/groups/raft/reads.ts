/**
 * The leader's ReadIndex bookkeeping. A strong read is registered at the commit index and tagged with
 * a confirmation round (`seq`); every AppendEntries and heartbeat carries the current round and every
 * answer echoes it. Once a majority of voters acknowledged a round, the reads of that round (and of
 * earlier ones) are confirmed: no other leader can have committed anything past their index then.
 */

import { Fifo } from '../../primitives/fifo.ts'
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
  readonly #pending = new Fifo<PendingRead>()

  /** Registers a read at `index`; it is confirmed by the next round to go out. */
  add(requestId: ReadRequestId, index: number): void {
    if (!this.#roundQueued) {
      this.seq++
      this.#roundQueued = true
    }
    this.#pending.push({ requestId, index, seq: this.seq })
  }

  get waiting(): boolean {
    return this.#pending.length > 0
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
    for (let read = pending.peek(); read !== undefined && read.seq <= confirmed; read = pending.peek()) {
      pending.shift()
      out.push({ requestId: read.requestId, index: read.index })
    }
  }

  /** Leadership is lost: every read still waiting goes to `out`, unconfirmed. */
  dropAll(out: ReadRequestId[]): void {
    for (const read of this.#pending) out.push(read.requestId)
    this.#pending.clear()
    this.#roundQueued = false
  }
}

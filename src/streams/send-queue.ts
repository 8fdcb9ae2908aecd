import { abortable } from '../primitives/abort.ts'
import { Fifo } from '../primitives/fifo.ts'

/** A `send` waiting for the producer to be online with room; it owns its encoded datum. */
export interface SendWaiter {
  readonly bytes: Uint8Array
  readonly datum: unknown
  readonly handle: object
  readonly resolve: () => void
  readonly reject: (err: Error) => void
  done: boolean
}

/**
 * The sends waiting on a producer, in call order. A waiter is settled in place (`done`) and skipped
 * later, so aborting or rejecting one is O(1).
 */
export class SendQueue {
  readonly #waiters = new Fifo<SendWaiter>()

  /** True while some send waits (settled ones may still sit at the head). */
  get pending(): boolean {
    return this.#waiters.length > 0
  }

  /** The waiter at the head, settled or not. */
  peek(): SendWaiter | undefined {
    return this.#waiters.peek()
  }

  /** Moves past the head waiter. */
  advance(): void {
    this.#waiters.shift()
  }

  /** Queues a send; the promise settles when it is handed on, rejected or aborted. */
  push(handle: object, bytes: Uint8Array, datum: unknown, signal: AbortSignal | undefined): Promise<void> {
    return abortable<void>(signal, (resolve, reject) => {
      const waiter: SendWaiter = { bytes, datum, handle, resolve, reject, done: false }
      this.#waiters.push(waiter)
      return () => {
        waiter.done = true
        this.#skipDone()
      }
    })
  }

  /** Rejects every waiting send that `match` selects. */
  reject(match: (w: SendWaiter) => boolean, err: Error): void {
    for (const w of this.#waiters) {
      if (w.done || !match(w)) continue
      w.done = true
      w.reject(err)
    }
    this.#skipDone()
  }

  #skipDone(): void {
    const ws = this.#waiters
    while (ws.peek()?.done) ws.shift()
  }
}

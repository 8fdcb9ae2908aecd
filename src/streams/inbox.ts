import { abortable } from '../primitives/abort.ts'
import { Fifo } from '../primitives/fifo.ts'

interface PendingRead<T> {
  resolve(value: T): void
  reject(err: Error): void
  done: boolean
}

/**
 * A consumer's datums received and not yet read, and the reads waiting for one. It holds at most
 * `capacity` datums as far as the receivers look (`full`); `room()` resolves once it drained to half.
 */
export class Inbox<T> {
  readonly #capacity: number
  readonly #buffer = new Fifo<T>()
  readonly #readers = new Fifo<PendingRead<T>>()
  #room: PromiseWithResolvers<void> | undefined

  constructor(capacity: number) {
    this.#capacity = capacity
  }

  /** Datums received and not yet read. */
  get buffered(): number {
    return this.#buffer.length
  }

  /** True when `capacity` datums wait: the receivers stop reading their links. */
  get full(): boolean {
    return this.#buffer.length >= this.#capacity
  }

  /** Resolves once the buffer drained to half its capacity (or the inbox closed). */
  room(): Promise<void> {
    this.#room ??= Promise.withResolvers<void>()
    return this.#room.promise
  }

  /** Takes the oldest buffered datum; only call it while `buffered > 0`. */
  take(): T {
    const buffer = this.#buffer
    const value = buffer.shift()!
    if (this.#room !== undefined && buffer.length <= this.#capacity >> 1) {
      const room = this.#room
      this.#room = undefined
      room.resolve()
    }
    return value
  }

  /** Waits for the next datum pushed (the buffer is empty); rejects as `abortable` does on abort. */
  wait(signal: AbortSignal | undefined): Promise<T> {
    return abortable<T>(signal, (resolve, reject) => {
      const read: PendingRead<T> = { resolve, reject, done: false }
      this.#readers.push(read)
      return () => {
        read.done = true
      }
    })
  }

  /** Hands a valid datum to the oldest waiting reader, or buffers it. */
  push(value: T): void {
    const readers = this.#readers
    for (let r = readers.shift(); r !== undefined; r = readers.shift()) {
      if (r.done) continue
      r.done = true
      r.resolve(value)
      return
    }
    this.#buffer.push(value)
  }

  /** Discards what is buffered, rejects the waiting reads with `err` and releases the receivers. */
  close(err: Error): void {
    this.#buffer.clear()
    for (const r of this.#readers) {
      if (r.done) continue
      r.done = true
      r.reject(err)
    }
    this.#readers.clear()
    this.#room?.resolve()
    this.#room = undefined
  }
}

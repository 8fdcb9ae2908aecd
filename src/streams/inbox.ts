import { abortReason } from '../primitives/errors.ts'

interface PendingRead<T> {
  resolve(value: T): void
  reject(err: Error): void
  done: boolean
  cleanup: (() => void) | undefined
}

/**
 * A consumer's datums received and not yet read, and the reads waiting for one. It holds at most
 * `capacity` datums as far as the receivers look (`full`); `room()` resolves once it drained to half.
 */
export class Inbox<T> {
  readonly #capacity: number
  #buffer: T[] = []
  #head = 0
  readonly #readers: PendingRead<T>[] = []
  #readHead = 0
  #room: PromiseWithResolvers<void> | undefined

  constructor(capacity: number) {
    this.#capacity = capacity
  }

  /** Datums received and not yet read. */
  get buffered(): number {
    return this.#buffer.length - this.#head
  }

  /** True when `capacity` datums wait: the receivers stop reading their links. */
  get full(): boolean {
    return this.#buffer.length - this.#head >= this.#capacity
  }

  /** Resolves once the buffer drained to half its capacity (or the inbox closed). */
  room(): Promise<void> {
    this.#room ??= Promise.withResolvers<void>()
    return this.#room.promise
  }

  /** Takes the oldest buffered datum; only call it while `buffered > 0`. */
  take(): T {
    const buffer = this.#buffer
    const value = buffer[this.#head]!
    buffer[this.#head++] = undefined as T
    if (this.#head === buffer.length) {
      buffer.length = 0
      this.#head = 0
    } else if (this.#head > 1024 && this.#head * 2 > buffer.length) {
      buffer.splice(0, this.#head)
      this.#head = 0
    }
    if (this.#room !== undefined && buffer.length - this.#head <= this.#capacity >> 1) {
      const room = this.#room
      this.#room = undefined
      room.resolve()
    }
    return value
  }

  /** Waits for the next datum pushed (the buffer is empty); rejects with the signal's reason. */
  wait(signal: AbortSignal | undefined): Promise<T> {
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    const { promise, resolve, reject } = Promise.withResolvers<T>()
    const read: PendingRead<T> = { resolve, reject, done: false, cleanup: undefined }
    if (signal) {
      const onAbort = () => {
        if (read.done) return
        read.done = true
        reject(abortReason(signal))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      read.cleanup = () => signal.removeEventListener('abort', onAbort)
    }
    this.#readers.push(read)
    return promise
  }

  /** Hands a valid datum to the oldest waiting reader, or buffers it. */
  push(value: T): void {
    const readers = this.#readers
    while (this.#readHead < readers.length) {
      const r = readers[this.#readHead++]!
      if (r.done) continue
      if (this.#readHead === readers.length) {
        readers.length = 0
        this.#readHead = 0
      }
      r.done = true
      r.cleanup?.()
      r.resolve(value)
      return
    }
    if (readers.length > 0) {
      readers.length = 0
      this.#readHead = 0
    }
    this.#buffer.push(value)
  }

  /** Discards what is buffered, rejects the waiting reads with `err` and releases the receivers. */
  close(err: Error): void {
    this.#buffer = []
    this.#head = 0
    for (let i = this.#readHead; i < this.#readers.length; i++) {
      const r = this.#readers[i]!
      if (r.done) continue
      r.done = true
      r.cleanup?.()
      r.reject(err)
    }
    this.#readers.length = 0
    this.#readHead = 0
    this.#room?.resolve()
    this.#room = undefined
  }
}

import { type AbortOptions, raceSignal } from './abort.ts'
import { ClosedError } from './errors.ts'

/**
 * A value that changes over time and can be awaited: the building block of every `when` condition.
 *
 * `until(pred)` resolves as soon as the predicate holds (immediately if it already does); `changed()`
 * resolves on the next change. Both reject with ClosedError once the watch is closed.
 */
export class Watch<T> {
  #value: T
  #waiters = new Set<Waiter<T>>()
  #closed: Error | undefined
  readonly #equals: (a: T, b: T) => boolean

  constructor(initial: T, equals: (a: T, b: T) => boolean = Object.is) {
    this.#value = initial
    this.#equals = equals
  }

  get value(): T {
    return this.#value
  }

  get closed(): boolean {
    return this.#closed !== undefined
  }

  /** Sets the value; waiters run only when it differs from the current one. */
  set(value: T): void {
    if (this.#closed || this.#equals(this.#value, value)) return
    this.#value = value
    // most values change with nobody waiting (a group's applied index, every commit): no copy then
    if (this.#waiters.size === 0) return
    for (const w of [...this.#waiters]) w.check(value)
  }

  until(predicate: (value: T) => boolean, options?: AbortOptions): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closed)
    if (predicate(this.#value)) return Promise.resolve(this.#value)
    return this.#wait(predicate, options)
  }

  changed(options?: AbortOptions): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closed)
    return this.#wait(() => true, options)
  }

  close(reason: Error = new ClosedError()): void {
    if (this.#closed) return
    this.#closed = reason
    for (const w of [...this.#waiters]) w.reject(reason)
    this.#waiters.clear()
  }

  #wait(predicate: (value: T) => boolean, options?: AbortOptions): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>()
    const waiter: Waiter<T> = {
      check: (v) => {
        if (!predicate(v)) return
        this.#waiters.delete(waiter)
        resolve(v)
      },
      reject: (e) => {
        this.#waiters.delete(waiter)
        reject(e)
      },
    }
    this.#waiters.add(waiter)
    const signal = options?.signal
    if (!signal) return promise
    return raceSignal(promise, signal).finally(() => this.#waiters.delete(waiter))
  }
}

interface Waiter<T> {
  check(value: T): void
  reject(err: Error): void
}

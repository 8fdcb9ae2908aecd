/** The dead prefix is dropped in bulk once it is this long and more than half of the array. */
const COMPACT_AT = 1024

/**
 * A first-in first-out queue: `push` at the back, `shift` from the front, both amortised O(1). It is an
 * array with a head index: taking from the front clears the slot and advances the head, and the dead
 * prefix is dropped in bulk (once it is both long and more than half the array), or at once when the
 * queue empties. Positions (`at`, `slice`, `drop`, `truncate`) count from the front, so it also serves
 * as an indexed log that is compacted at the front and cut at the back.
 *
 * When to use: any buffer or waiter list that is drained in arrival order, on a hot path or not.
 * `Array.prototype.shift` is O(n) per call, and a hand-written head index needs the same compaction
 * every time; this is that code, once.
 *
 * Gotchas: `remove` is O(n) (meant for rare cancellations; for frequent ones, mark entries settled and
 * skip them as they reach the front). The queue never holds `undefined` meaningfully: `shift` and
 * `peek` return undefined when it is empty. Iterating while pushing sees the new entries; do not shift
 * while iterating.
 */
export class Fifo<T> implements Iterable<T> {
  #items: T[] = []
  #head = 0

  /** Entries queued. */
  get length(): number {
    return this.#items.length - this.#head
  }

  /** Appends `value` at the back. */
  push(value: T): void {
    this.#items.push(value)
  }

  /** Takes the front entry; undefined when empty. */
  shift(): T | undefined {
    const items = this.#items
    const head = this.#head
    if (head >= items.length) return undefined
    const value = items[head]!
    items[head] = undefined as T
    this.#advance(head + 1)
    return value
  }

  /** The front entry, left in place; undefined when empty. */
  peek(): T | undefined {
    return this.#head < this.#items.length ? this.#items[this.#head] : undefined
  }

  /** The entry `i` places from the front; undefined outside `0 ≤ i < length`. */
  at(i: number): T | undefined {
    return i >= 0 && i < this.#items.length - this.#head ? this.#items[this.#head + i] : undefined
  }

  /** The last entry; undefined when empty. */
  last(): T | undefined {
    const items = this.#items
    return items.length > this.#head ? items[items.length - 1] : undefined
  }

  /** The entries at positions `from ≤ i < to` (clamped), as a new array. */
  slice(from: number, to: number = this.length): T[] {
    const head = this.#head
    const end = Math.min(head + to, this.#items.length)
    return this.#items.slice(head + Math.max(0, from), Math.max(head, end))
  }

  /** Drops the first `n` entries (all of them when `n ≥ length`). */
  drop(n: number): void {
    if (n <= 0) return
    const items = this.#items
    const head = Math.min(this.#head + n, items.length)
    items.fill(undefined as T, this.#head, head)
    this.#advance(head)
  }

  /** Keeps the first `n` entries and drops the rest. */
  truncate(n: number): void {
    if (n >= this.length) return
    if (n <= 0) this.clear()
    else this.#items.length = this.#head + n
  }

  /** Removes the first entry identical to `value`; false when there is none. O(n). */
  remove(value: T): boolean {
    const i = this.#items.indexOf(value, this.#head)
    if (i < 0) return false
    if (i === this.#head) this.shift()
    else this.#items.splice(i, 1)
    return true
  }

  /** Empties the queue. */
  clear(): void {
    this.#items = []
    this.#head = 0
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) yield this.#items[i]!
  }

  #advance(head: number): void {
    const items = this.#items
    if (head === items.length) {
      items.length = 0
      this.#head = 0
    } else if (head > COMPACT_AT && head * 2 > items.length) {
      items.splice(0, head)
      this.#head = 0
    } else {
      this.#head = head
    }
  }
}

import { InvalidArgumentError } from '../../primitives/errors.ts'
import { Fifo } from '../../primitives/fifo.ts'
import type { LogEntry } from './log-store.ts'
import { checkEntries } from './log-store.ts'

/**
 * The in-memory index of a log: the compaction point (`offset`, with its term) and, for each entry after
 * it, its term and an item chosen by the store (the encoded bytes in memory, a file position on disk).
 * Log stores share it so that they agree on what append, truncate and compact mean.
 *
 * Compaction drops a prefix of two FIFO queues (terms and items, kept in step), so it is amortised O(1)
 * per entry.
 */
export class LogView<T> {
  #offset = 0
  #offsetTerm: number | undefined = 0
  readonly #terms = new Fifo<number>()
  readonly #items = new Fifo<T>()

  /** The compaction point: every index ≤ it is gone. */
  get offset(): number {
    return this.#offset
  }

  /** The term at the compaction point, if known. */
  get offsetTerm(): number | undefined {
    return this.#offsetTerm
  }

  get length(): number {
    return this.#terms.length
  }

  firstIndex(): number {
    return this.#offset + 1
  }

  lastIndex(): number {
    return this.#offset + this.#terms.length
  }

  term(index: number): number | undefined {
    if (index === this.#offset) return this.#offsetTerm
    if (index < this.#offset || index > this.lastIndex()) return undefined
    return this.#terms.at(index - this.#offset - 1)
  }

  item(index: number): T | undefined {
    if (index <= this.#offset || index > this.lastIndex()) return undefined
    return this.#items.at(index - this.#offset - 1)
  }

  /** `from ..= to` clamped to the entries in the log (empty when `first > last`). */
  clamp(from: number, to: number): { first: number; last: number } {
    return { first: Math.max(from, this.#offset + 1), last: Math.min(to, this.lastIndex()) }
  }

  /** The last index the log would have after `truncateFrom(index)`. */
  lastAfterTruncate(index: number | undefined): number {
    const last = this.lastIndex()
    if (index === undefined || index > last) return last
    return Math.max(index - 1, this.#offset)
  }

  /** Throws unless `entries` can follow the log once truncated from `truncateFrom`. Changes nothing. */
  checkWrite(entries: readonly LogEntry[] | undefined, truncateFrom?: number): void {
    if (entries === undefined || entries.length === 0) return
    checkEntries(entries, this.lastAfterTruncate(truncateFrom) + 1)
  }

  truncateFrom(index: number): void {
    const last = this.lastIndex()
    if (index > last) return
    const keep = Math.max(index - 1, this.#offset) - this.#offset
    this.#terms.truncate(keep)
    this.#items.truncate(keep)
  }

  /** Appends the entry after the last one. */
  push(term: number, item: T): void {
    this.#terms.push(term)
    this.#items.push(item)
  }

  /**
   * Drops the entries ≤ `upTo`. Past the end the log empties and restarts after `upTo`, whose term is
   * then `termHint` (undefined when unknown). Returns false when there was nothing to do.
   */
  compact(upTo: number, termHint?: number): boolean {
    if (upTo <= this.#offset) return false
    const term = this.term(upTo) ?? termHint
    if (upTo >= this.lastIndex()) {
      this.#clear()
    } else {
      this.#terms.drop(upTo - this.#offset)
      this.#items.drop(upTo - this.#offset)
    }
    this.#offset = upTo
    this.#offsetTerm = term
    return true
  }

  /** Corrects the term of the compaction point (replay learns it from a later record). */
  setOffsetTerm(term: number | undefined): void {
    this.#offsetTerm = term
  }

  /** Empties the log and sets the compaction point (used on reset and when replaying a store). */
  resetTo(offset: number, term: number | undefined): void {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`bad offset ${offset}`)
    this.#clear()
    this.#offset = offset
    this.#offsetTerm = term
  }

  #clear(): void {
    this.#terms.clear()
    this.#items.clear()
  }
}

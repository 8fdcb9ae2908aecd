/**
 * The ordered half of a PriorityQueue replica: buckets of equal priority, kept sorted, each a doubly
 * linked list of its entries in insertion order.
 *
 * Why chunks: one sorted array of buckets costs a move of half the array per new priority, which made
 * 100k random priorities take seconds on every replica. Chunks of at most {@link CHUNK} buckets bound a
 * move to one chunk, and a lookup is two binary searches (the chunk, then the bucket in it).
 *
 * Why linked entries: a bucket held its entries in a JS Map, one Map per distinct priority (most of
 * them, when priorities are timestamps or random), and finding the newest entry (the one evicted past
 * capacity) copied the whole bucket. A list gives both ends at once and unlinks in O(1).
 *
 * Gotchas: an entry is in at most one bucket at a time; {@link BucketList.unlink} keeps the entry's own
 * `next` so an iteration that stands on it when it leaves goes on to what followed it.
 */

/** An entry as the buckets link it. */
export interface Linked<P> {
  priority: P
  prev: this | undefined
  next: this | undefined
}

/** Entries of one priority, oldest first. */
export interface Bucket<P, E extends Linked<P>> {
  readonly priority: P
  head: E | undefined
  tail: E | undefined
}

/** Most buckets in one chunk: a split leaves two halves. */
export const CHUNK = 512

export class BucketList<P, E extends Linked<P>> {
  #chunks: Bucket<P, E>[][] = []
  readonly #compare: (a: P, b: P) => number

  constructor(compare: (a: P, b: P) => number) {
    this.#compare = compare
  }

  get isEmpty(): boolean {
    return this.#chunks.length === 0
  }

  /** The bucket of lowest priority. */
  get first(): Bucket<P, E> | undefined {
    return this.#chunks[0]?.[0]
  }

  /** The bucket of highest priority. */
  get last(): Bucket<P, E> | undefined {
    const chunk = this.#chunks[this.#chunks.length - 1]
    return chunk?.[chunk.length - 1]
  }

  /** Appends `entry` to the bucket of its priority, creating the bucket if needed. */
  link(entry: E): void {
    const bucket = this.#bucketFor(entry.priority)
    entry.prev = bucket.tail
    entry.next = undefined
    if (bucket.tail) bucket.tail.next = entry
    else bucket.head = entry
    bucket.tail = entry
  }

  /** Takes `entry` out of its bucket, dropping the bucket when it empties. */
  unlink(entry: E): void {
    if (this.#chunks.length === 0) return
    const [c, i] = this.#locate(entry.priority)
    if (i < 0) return
    const chunk = this.#chunks[c]!
    const bucket = chunk[i]!
    if (entry.prev) entry.prev.next = entry.next
    else bucket.head = entry.next
    if (entry.next) entry.next.prev = entry.prev
    else bucket.tail = entry.prev
    entry.prev = undefined
    if (bucket.head !== undefined) return
    chunk.splice(i, 1)
    if (chunk.length === 0) this.#chunks.splice(c, 1)
  }

  /** Drops every bucket whose priority `drop` selects; returns the entries they held. */
  removeWhere(drop: (priority: P) => boolean): E[] {
    const removed: E[] = []
    const kept: Bucket<P, E>[][] = []
    for (const chunk of this.#chunks) {
      const keep = chunk.filter((bucket) => {
        if (!drop(bucket.priority)) return true
        for (let e = bucket.head; e; e = e.next) removed.push(e)
        return false
      })
      if (keep.length > 0) kept.push(keep)
    }
    this.#chunks = kept
    return removed
  }

  clear(): void {
    this.#chunks = []
  }

  /** Calls `fn` on every entry, by ascending priority, the oldest first among equals (no generator). */
  forEachEntry(fn: (entry: E) => void): void {
    for (const chunk of this.#chunks)
      for (const bucket of chunk) for (let e = bucket.head; e; e = e.next) fn(e)
  }

  /** Buckets by ascending priority. */
  *ascending(): IterableIterator<Bucket<P, E>> {
    for (const chunk of this.#chunks) yield* chunk
  }

  /** Buckets by descending priority. */
  *descending(): IterableIterator<Bucket<P, E>> {
    for (let c = this.#chunks.length - 1; c >= 0; c--) {
      const chunk = this.#chunks[c]!
      for (let i = chunk.length - 1; i >= 0; i--) yield chunk[i]!
    }
  }

  #bucketFor(priority: P): Bucket<P, E> {
    if (this.#chunks.length === 0) {
      const bucket: Bucket<P, E> = { priority, head: undefined, tail: undefined }
      this.#chunks.push([bucket])
      return bucket
    }
    // Priorities at or past the highest (a restore, which goes in order; timestamps): no search.
    const c0 = this.#chunks.length - 1
    const tail = this.#chunks[c0]!
    const order = this.#compare(tail[tail.length - 1]!.priority, priority)
    if (order === 0) return tail[tail.length - 1]!
    const [c, i] = order < 0 ? [c0, ~tail.length] : this.#locate(priority)
    const chunk = this.#chunks[c]!
    if (i >= 0) return chunk[i]!
    const bucket: Bucket<P, E> = { priority, head: undefined, tail: undefined }
    chunk.splice(~i, 0, bucket)
    if (chunk.length > CHUNK) this.#chunks.splice(c + 1, 0, chunk.splice(CHUNK >> 1))
    return bucket
  }

  /**
   * The chunk that holds `priority` or would take it, and the bucket's index in it (or the bitwise
   * complement of where it would go). Needs at least one chunk.
   */
  #locate(priority: P): [number, number] {
    const chunks = this.#chunks
    // The first chunk whose last bucket is not below `priority`; past the end, the last chunk.
    let lo = 0
    let hi = chunks.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      const chunk = chunks[mid]!
      if (this.#compare(chunk[chunk.length - 1]!.priority, priority) < 0) lo = mid + 1
      else hi = mid
    }
    const chunk = chunks[lo]!
    let a = 0
    let b = chunk.length - 1
    while (a <= b) {
      const mid = (a + b) >> 1
      const c = this.#compare(chunk[mid]!.priority, priority)
      if (c === 0) return [lo, mid]
      if (c < 0) a = mid + 1
      else b = mid - 1
    }
    return [lo, ~a]
  }
}

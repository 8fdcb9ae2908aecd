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

/** Up to {@link CHUNK} consecutive buckets, with their priorities alongside in the same order. */
interface Chunk<P, E extends Linked<P>> {
  readonly priorities: P[]
  readonly buckets: Bucket<P, E>[]
}

export class BucketList<P, E extends Linked<P>> {
  #chunks: Chunk<P, E>[] = []
  /**
   * Each chunk's highest priority. The searches read priorities from these arrays rather than from the
   * buckets: numbers sit unboxed side by side there, where each bucket is one more object to fetch from
   * memory, and with 100k random priorities those fetches were most of an insert's time.
   */
  #lasts: P[] = []
  readonly #compare: (a: P, b: P) => number
  /** Where the last `#locate` landed: the chunk's index (its bucket's index is what it returns). */
  #at = 0

  constructor(compare: (a: P, b: P) => number) {
    this.#compare = compare
  }

  get isEmpty(): boolean {
    return this.#chunks.length === 0
  }

  /** The bucket of lowest priority. */
  get first(): Bucket<P, E> | undefined {
    return this.#chunks[0]?.buckets[0]
  }

  /** The bucket of highest priority. */
  get last(): Bucket<P, E> | undefined {
    const buckets = this.#chunks[this.#chunks.length - 1]?.buckets
    return buckets?.[buckets.length - 1]
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
    const i = this.#locate(entry.priority)
    if (i < 0) return
    const c = this.#at
    const chunk = this.#chunks[c]!
    const bucket = chunk.buckets[i]!
    if (entry.prev) entry.prev.next = entry.next
    else bucket.head = entry.next
    if (entry.next) entry.next.prev = entry.prev
    else bucket.tail = entry.prev
    entry.prev = undefined
    if (bucket.head !== undefined) return
    chunk.priorities.splice(i, 1)
    chunk.buckets.splice(i, 1)
    if (chunk.buckets.length === 0) {
      this.#chunks.splice(c, 1)
      this.#lasts.splice(c, 1)
    } else if (i === chunk.buckets.length) {
      this.#lasts[c] = chunk.priorities[i - 1]!
    }
  }

  /** Drops every bucket whose priority `drop` selects; returns the entries they held. */
  removeWhere(drop: (priority: P) => boolean): E[] {
    const removed: E[] = []
    const kept: Chunk<P, E>[] = []
    for (const chunk of this.#chunks) {
      const buckets = chunk.buckets.filter((bucket) => {
        if (!drop(bucket.priority)) return true
        for (let e = bucket.head; e; e = e.next) removed.push(e)
        return false
      })
      if (buckets.length > 0) kept.push({ priorities: buckets.map((b) => b.priority), buckets })
    }
    this.#chunks = kept
    this.#lasts = kept.map((chunk) => chunk.priorities[chunk.priorities.length - 1]!)
    return removed
  }

  clear(): void {
    this.#chunks = []
    this.#lasts = []
  }

  /** Calls `fn` on every entry, by ascending priority, the oldest first among equals (no generator). */
  forEachEntry(fn: (entry: E) => void): void {
    for (const chunk of this.#chunks)
      for (const bucket of chunk.buckets) for (let e = bucket.head; e; e = e.next) fn(e)
  }

  /** Buckets by ascending priority. */
  *ascending(): IterableIterator<Bucket<P, E>> {
    for (const chunk of this.#chunks) yield* chunk.buckets
  }

  /** Buckets by descending priority. */
  *descending(): IterableIterator<Bucket<P, E>> {
    for (let c = this.#chunks.length - 1; c >= 0; c--) {
      const buckets = this.#chunks[c]!.buckets
      for (let i = buckets.length - 1; i >= 0; i--) yield buckets[i]!
    }
  }

  #bucketFor(priority: P): Bucket<P, E> {
    const chunks = this.#chunks
    if (chunks.length === 0) {
      const bucket: Bucket<P, E> = { priority, head: undefined, tail: undefined }
      chunks.push({ priorities: [priority], buckets: [bucket] })
      this.#lasts.push(priority)
      return bucket
    }
    // Priorities at or past the highest (a restore, which goes in order; timestamps): no search.
    const c0 = chunks.length - 1
    const order = this.#compare(this.#lasts[c0]!, priority)
    if (order === 0) return chunks[c0]!.buckets[chunks[c0]!.buckets.length - 1]!
    let i: number
    if (order < 0) {
      this.#at = c0
      i = ~chunks[c0]!.buckets.length
    } else {
      i = this.#locate(priority)
    }
    const c = this.#at
    const chunk = chunks[c]!
    if (i >= 0) return chunk.buckets[i]!
    const bucket: Bucket<P, E> = { priority, head: undefined, tail: undefined }
    const at = ~i
    chunk.priorities.splice(at, 0, priority)
    chunk.buckets.splice(at, 0, bucket)
    if (at === chunk.buckets.length - 1) this.#lasts[c] = priority
    if (chunk.buckets.length > CHUNK) {
      const half: Chunk<P, E> = {
        priorities: chunk.priorities.splice(CHUNK >> 1),
        buckets: chunk.buckets.splice(CHUNK >> 1),
      }
      chunks.splice(c + 1, 0, half)
      this.#lasts.splice(
        c,
        1,
        chunk.priorities[chunk.priorities.length - 1]!,
        half.priorities[half.priorities.length - 1]!,
      )
    }
    return bucket
  }

  /**
   * The index in its chunk of the bucket of `priority`, or the bitwise complement of where it would
   * go; the chunk's index is left in `#at`. Needs at least one chunk.
   */
  #locate(priority: P): number {
    const lasts = this.#lasts
    // The first chunk whose highest priority is not below `priority`; past the end, the last chunk.
    let lo = 0
    let hi = lasts.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.#compare(lasts[mid]!, priority) < 0) lo = mid + 1
      else hi = mid
    }
    this.#at = lo
    const priorities = this.#chunks[lo]!.priorities
    let a = 0
    let b = priorities.length - 1
    while (a <= b) {
      const mid = (a + b) >> 1
      const c = this.#compare(priorities[mid]!, priority)
      if (c === 0) return mid
      if (c < 0) a = mid + 1
      else b = mid - 1
    }
    return ~a
  }
}

/**
 * Entries by their `id` string, for a replica that holds each entry as an object of its own (the
 * PriorityQueue's slots): an open-addressing table of entry numbers, probed linearly.
 *
 * Why not a JS Map: a replica catching up adds its entries in one go, and a Map of 100k strings took
 * a third of a PriorityQueue's catch-up. It looks a key up twice (`get`, then `set`) and rebuilds its
 * ordered table in new memory at every doubling. Here the table is two typed arrays and a plain array,
 * a lookup is one probe sequence whose hash is kept per entry, and growing reuses those hashes.
 *
 * Gotchas: an entry's `id` must not change while it is indexed. Removed entries leave tombstones
 * until the next rebuild, which `add` runs when tombstones and live entries fill half the table.
 */
export class StringIndex<E extends { readonly id: string }> {
  /** Entry number + 1 per slot; EMPTY or DELETED where none. */
  #slots = new Int32Array(MIN_SLOTS)
  #entries: (E | undefined)[] = []
  #hashes = new Int32Array(MIN_SLOTS >> 1)
  /** Entry numbers freed by `delete`, reused by `add`. */
  #free: number[] = []
  #size = 0
  /** Slots not EMPTY (live or DELETED): probing stays short while this is under half. */
  #filled = 0

  get size(): number {
    return this.#size
  }

  get(id: string): E | undefined {
    const n = this.#find(id, hashOf(id))
    return n < 0 ? undefined : this.#entries[n]
  }

  /** Indexes `entry`, whose id must not be indexed yet. */
  add(entry: E): void {
    if ((this.#filled + 1) * 2 > this.#slots.length) this.#rebuild(this.#size + 1)
    const hash = hashOf(entry.id)
    let n = this.#free.pop()
    if (n === undefined) {
      n = this.#entries.length
      this.#entries.push(entry)
      if (n >= this.#hashes.length) {
        const grown = new Int32Array(this.#hashes.length * 2)
        grown.set(this.#hashes)
        this.#hashes = grown
      }
    } else {
      this.#entries[n] = entry
    }
    this.#hashes[n] = hash
    const mask = this.#slots.length - 1
    let i = hash & mask
    while (this.#slots[i]! > EMPTY) i = (i + 1) & mask
    if (this.#slots[i] === EMPTY) this.#filled++
    this.#slots[i] = n + 1
    this.#size++
  }

  /** Removes the entry with `id`; true when there was one. */
  delete(id: string): boolean {
    const hash = hashOf(id)
    const mask = this.#slots.length - 1
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const s = this.#slots[i]!
      if (s === EMPTY) return false
      if (s > 0 && this.#hashes[s - 1] === hash && this.#entries[s - 1]!.id === id) {
        this.#slots[i] = DELETED
        this.#entries[s - 1] = undefined
        this.#free.push(s - 1)
        this.#size--
        return true
      }
    }
  }

  clear(): void {
    this.#slots = new Int32Array(MIN_SLOTS)
    this.#entries = []
    this.#hashes = new Int32Array(MIN_SLOTS >> 1)
    this.#free = []
    this.#size = 0
    this.#filled = 0
  }

  /** The entry number of `id`, or -1. */
  #find(id: string, hash: number): number {
    const slots = this.#slots
    const mask = slots.length - 1
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const s = slots[i]!
      if (s === EMPTY) return -1
      if (s > 0 && this.#hashes[s - 1] === hash && this.#entries[s - 1]!.id === id) return s - 1
    }
  }

  /** A table for `live` entries with room to grow, without tombstones; entry numbers stay. */
  #rebuild(live: number): void {
    let size = MIN_SLOTS
    while (size < live * 4) size *= 2
    const slots = new Int32Array(size)
    const mask = size - 1
    for (let n = 0; n < this.#entries.length; n++) {
      if (this.#entries[n] === undefined) continue
      let i = this.#hashes[n]! & mask
      while (slots[i] !== EMPTY) i = (i + 1) & mask
      slots[i] = n + 1
    }
    this.#slots = slots
    this.#filled = this.#size
  }
}

const EMPTY = 0
const DELETED = -1
const MIN_SLOTS = 16

/** FNV-1a over the string's char codes, with a final mix so that the low bits (the slot) vary. */
function hashOf(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  return h ^ (h >>> 13)
}

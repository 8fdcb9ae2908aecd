/**
 * A hash table from byte strings to byte strings (or of byte strings alone), in insertion order,
 * kept in typed arrays: the replica of a collection Map (or Set).
 *
 * Why not a JS `Map<string, string>`: a replica catching up on 100k entries spent most of its time
 * in `Map.set` (about 350 ns per entry on a 2-core server, 40 ms for 100k, four times the transfer of
 * the same bytes) and in the 200k strings it built for it. Here the bytes stay in one buffer in the
 * collections' snapshot format, indexed by offset: restoring a snapshot reads it in place and only
 * builds the index, and taking one is a view of that buffer while no entry was replaced or removed.
 *
 * Layout:
 * - `#arena`: the snapshot header `[format][arity]`, then one record per entry,
 *   `[varint key length][key][varint value length][value]` (arity 2, a Map) or
 *   `[varint key length][key]` (arity 1, a Set: every value is empty), appended. Replacing a value appends a new
 *   record; removing leaves a gap. Both count as garbage, which compacting the arena (copying the live
 *   records in entry order) reclaims.
 * - Entry `i` (insertion order, never reordered): `#at[i]` its record's offset, `#keyLength[i]`
 *   (-1 once removed), `#valueLength[i]`, `#hash[i]`.
 * - `#slots`: open addressing with linear probing over entry numbers + 1 (0 empty, -1 removed).
 *
 * Gotchas:
 * - Keys and values are bytes, given as buffers or ranges of one; the table copies them.
 * - The table never writes below the end of its arena: a restored snapshot is read in place, and must
 *   not change afterwards.
 * - Removed entries keep their number until `compacted()` returns a new table; iterators of the old
 *   table then see it as it was at that moment (a JS Map's iterators would see later changes).
 *   `close()` (a cleared map) makes them stop.
 */
import * as varint from 'uint8-varint'
import { SNAPSHOT_FORMAT, scanItems, varintLength, writeVarint } from './machine.ts'
import { latin1 } from './values.ts'

const EMPTY = 0
const DELETED = -1
const MIN_SLOTS = 16
const HEADER = 2

export class ByteTable {
  /** 2: keys and values; 1: keys alone. */
  readonly #arity: 1 | 2
  #arena: Uint8Array
  #used = HEADER
  /** Arena bytes of records no entry refers to (replaced or removed). */
  #garbage = 0
  #at = new Int32Array(16)
  #keyLength = new Int32Array(16)
  #valueLength = new Int32Array(16)
  #hash = new Int32Array(16)
  /** Entry numbers given out (live and removed). */
  #count = 0
  #live = 0
  #slots = new Int32Array(MIN_SLOTS)
  /** Slots that are not EMPTY (live or DELETED): probing stays short while this is under half. */
  #filled = 0
  /** Decoded keys and values kept per entry (objects, so reads return the same one). */
  readonly keys = new Map<number, unknown>()
  readonly values = new Map<number, unknown>()
  /** Set when this table was cleared: iterators over it stop. */
  #closed = false

  constructor(arity: 1 | 2 = 2) {
    this.#arity = arity
    this.#arena = Uint8Array.of(SNAPSHOT_FORMAT, arity)
  }

  /**
   * The table a packed snapshot (see `snapshot()`) holds, read in place. Throws DecodeError (from
   * `scanItems`) on bytes that are not one. A key listed twice keeps its first place and its last
   * value, as setting it twice does.
   */
  static fromSnapshot(snapshot: Uint8Array, arity: 1 | 2 = 2): ByteTable {
    const t = new ByteTable(arity)
    if (snapshot.length === 0) return t
    // Read in place when the bytes are a whole buffer; a view would keep a larger one alive.
    const bytes = snapshot.byteLength === snapshot.buffer.byteLength ? snapshot : snapshot.slice()
    // The first pass checks the format and counts; the second builds the index.
    t.reserve(scanItems(arity, bytes) / arity, 0)
    t.#arena = bytes
    t.#used = bytes.length
    for (let record = HEADER; record < bytes.length; ) {
      const keyLength = readLength(bytes, record)
      const keyStart = record + varintLength(keyLength)
      const keyEnd = keyStart + keyLength
      const valueLength = arity === 2 ? readLength(bytes, keyEnd) : 0
      t.#restoreRecord(record, keyStart, keyEnd, valueLength)
      record = keyEnd + (arity === 2 ? varintLength(valueLength) + valueLength : 0)
    }
    return t
  }

  /**
   * Indexes the arena's record at `record` while restoring: one probe both finds a key listed again
   * (the later record holds the value, the entry keeps its place) and the empty slot of a new one
   * (no slot is DELETED yet, and `reserve` made room).
   */
  #restoreRecord(record: number, keyStart: number, keyEnd: number, valueLength: number): void {
    const arena = this.#arena
    const h = hashBytes(arena, keyStart, keyEnd)
    const mask = this.#slots.length - 1
    let s = h & mask
    for (let e = this.#slots[s]!; e !== EMPTY; e = this.#slots[s]!) {
      if (this.#hash[e - 1] === h && this.#keyEquals(e - 1, arena, keyStart, keyEnd)) {
        this.#moveTo(e - 1, record, valueLength)
        return
      }
      s = (s + 1) & mask
    }
    const i = this.#count++
    this.#at[i] = record
    this.#keyLength[i] = keyEnd - keyStart
    this.#valueLength[i] = valueLength
    this.#hash[i] = h
    this.#live++
    this.#slots[s] = i + 1
    this.#filled++
  }

  get size(): number {
    return this.#live
  }

  /** One past the highest entry number (iterate `0 ..< end`, skipping `!isLive`). */
  get end(): number {
    return this.#count
  }

  get closed(): boolean {
    return this.#closed
  }

  isLive(i: number): boolean {
    return i < this.#count && this.#keyLength[i]! >= 0
  }

  /** The entry of the key `key[start..end)`, or -1. */
  find(key: Uint8Array, start = 0, end = key.length): number {
    return this.#find(key, start, end, hashBytes(key, start, end))
  }

  /** Sets `key` to `value` (none in a table of keys alone); a key already held keeps its place. */
  set(key: Uint8Array, value: Uint8Array = EMPTY_BYTES): void {
    this.setRanges(key, 0, key.length, value, 0, value.length)
  }

  /**
   * Sets the key `key[ks..ke)` to the value `value[vs..ve)` (often the same buffer). In a table of
   * keys alone the value is ignored, and a key already held stays as it is.
   */
  setRanges(key: Uint8Array, ks: number, ke: number, value: Uint8Array, vs: number, ve: number): void {
    const h = hashBytes(key, ks, ke)
    const i = this.#find(key, ks, ke, h)
    if (i >= 0 && this.#arity === 1) return
    const valueLength = this.#arity === 2 ? ve - vs : 0
    let at = this.#record(i, ke - ks, valueLength)
    if (i < 0) this.#insert(at, ke - ks, valueLength, h)
    at = writeVarint(this.#arena, at, ke - ks)
    copy(key, ks, ke, this.#arena, at)
    if (this.#arity === 1) return
    at = writeVarint(this.#arena, at + ke - ks, valueLength)
    copy(value, vs, ve, this.#arena, at)
  }

  /** Makes room for `entries` more entries and `bytes` more arena bytes (a batch about to be set). */
  reserve(entries: number, bytes: number): void {
    if (this.#count + entries > this.#at.length) {
      this.#growEntries(Math.max(this.#count + entries, Math.ceil(this.#at.length * 1.5)))
    }
    if ((this.#filled + entries) * 2 > this.#slots.length) this.#rehash(this.#live + entries)
    this.#ensureArena(bytes)
  }

  /** Removes entry `i` (from `find`). */
  delete(i: number): void {
    const mask = this.#slots.length - 1
    for (let s = this.#hash[i]! & mask; ; s = (s + 1) & mask) {
      if (this.#slots[s] === i + 1) {
        this.#slots[s] = DELETED
        break
      }
    }
    this.#garbage += this.#recordLength(i)
    this.#keyLength[i] = -1
    this.#live--
    this.keys.delete(i)
    this.values.delete(i)
  }

  /**
   * Entry `i`'s key decoded by `codec`, kept when it decodes to an object (so reads return the same
   * object until the entry changes).
   */
  decodedKey<T>(i: number, codec: KeyDecoder<T>): T {
    const kept = this.keys.get(i)
    if (kept !== undefined) return kept as T
    const key = codec.decodeKey(this.keyString(i))
    if (isObject(key)) this.keys.set(i, key)
    return key
  }

  /** Entry `i`'s value decoded by `codec`, kept like `decodedKey`'s (until the value is replaced). */
  decodedValue<T>(i: number, codec: KeyDecoder<T>): T {
    const kept = this.values.get(i)
    if (kept !== undefined) return kept as T
    const value = codec.decodeKey(this.valueString(i))
    if (isObject(value)) this.values.set(i, value)
    return value
  }

  keyString(i: number): string {
    const at = this.#keyStart(i)
    return latin1(this.#arena, at, at + this.#keyLength[i]!)
  }

  valueString(i: number): string {
    const at = this.#valueStart(i)
    return latin1(this.#arena, at, at + this.#valueLength[i]!)
  }

  /** Whether entry `i`'s value is `value`. */
  valueEquals(i: number, value: Uint8Array): boolean {
    const n = this.#valueLength[i]!
    if (n !== value.length) return false
    const at = this.#valueStart(i)
    for (let k = 0; k < n; k++) if (this.#arena[at + k] !== value[k]) return false
    return true
  }

  /**
   * The entries in the collections' snapshot format: `[format][arity 2]` and, in entry order,
   * `[varint key length][key][varint value length][value]` each. While no entry was replaced or
   * removed since the arena was last compacted, that is the arena itself: a view, which stays as it
   * is because the table never writes below its end (it keeps the arena alive while held).
   */
  snapshot(): Uint8Array {
    if (this.#garbage === 0) return this.#arena.subarray(0, this.#used)
    const out = new Uint8Array(this.#used - this.#garbage)
    this.#copyLive(out, false)
    return out
  }

  /** This table without its removed entries, when they are most of it: a new table, or this one. */
  compacted(): ByteTable {
    if (this.#count - this.#live <= Math.max(64, this.#live)) return this
    const next = ByteTable.fromSnapshot(this.snapshot(), this.#arity)
    // Live entries keep their order, so entry `i` becomes the number of live entries before it.
    for (let i = 0, n = 0; i < this.#count; i++) {
      if (this.#keyLength[i]! < 0) continue
      const key = this.keys.get(i)
      if (key !== undefined) next.keys.set(n, key)
      const value = this.values.get(i)
      if (value !== undefined) next.values.set(n, value)
      n++
    }
    return next
  }

  /** Marks this table cleared: iterators over it stop. */
  close(): void {
    this.#closed = true
  }

  #keyStart(i: number): number {
    return this.#at[i]! + varintLength(this.#keyLength[i]!)
  }

  #valueStart(i: number): number {
    const k = this.#keyLength[i]!
    return this.#at[i]! + varintLength(k) + k + varintLength(this.#valueLength[i]!)
  }

  #recordLength(i: number): number {
    return this.#recordBytes(this.#keyLength[i]!, this.#valueLength[i]!)
  }

  /** Bytes of a record with a key of `k` bytes and a value of `v`. */
  #recordBytes(k: number, v: number): number {
    return varintLength(k) + k + (this.#arity === 2 ? varintLength(v) + v : 0)
  }

  #find(key: Uint8Array, start: number, end: number, h: number): number {
    const mask = this.#slots.length - 1
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const e = this.#slots[s]!
      if (e === EMPTY) return -1
      if (e > 0 && this.#hash[e - 1] === h && this.#keyEquals(e - 1, key, start, end)) return e - 1
    }
  }

  /**
   * Room at the arena's end for a record of this key and value; returns where it goes. For an entry
   * already held (`i >= 0`), points it there (its old record is garbage now) and forgets its decoded
   * value; the caller writes the record.
   */
  #record(i: number, keyLength: number, valueLength: number): number {
    const length = this.#recordBytes(keyLength, valueLength)
    this.#ensureArena(length)
    const at = this.#used
    this.#used += length
    if (i >= 0) this.#moveTo(i, at, valueLength)
    return at
  }

  /** Points entry `i` at a new record of its key with a value of `valueLength`; the old one is garbage. */
  #moveTo(i: number, at: number, valueLength: number): void {
    this.#garbage += this.#recordLength(i)
    this.#at[i] = at
    this.#valueLength[i] = valueLength
    this.values.delete(i)
  }

  /** Adds a new entry whose record is at `at`. */
  #insert(at: number, keyLength: number, valueLength: number, hash: number): void {
    if (this.#count === this.#at.length) this.#growEntries(Math.ceil(this.#count * 1.5))
    if ((this.#filled + 1) * 2 > this.#slots.length) this.#rehash(this.#live + 1)
    const i = this.#count++
    this.#at[i] = at
    this.#keyLength[i] = keyLength
    this.#valueLength[i] = valueLength
    this.#hash[i] = hash
    this.#live++
    const mask = this.#slots.length - 1
    let s = hash & mask
    while (this.#slots[s] !== EMPTY) s = (s + 1) & mask
    this.#slots[s] = i + 1
    this.#filled++
  }

  #growEntries(capacity: number): void {
    const grow = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(capacity)
      b.set(a.subarray(0, this.#count))
      return b
    }
    this.#at = grow(this.#at)
    this.#keyLength = grow(this.#keyLength)
    this.#valueLength = grow(this.#valueLength)
    this.#hash = grow(this.#hash)
  }

  /** Rebuilds the slots for `live` entries at under half load, dropping the removed marks. */
  #rehash(live: number): void {
    let size = MIN_SLOTS
    while (size < live * 2) size *= 2
    const slots = new Int32Array(size)
    const mask = size - 1
    for (let i = 0; i < this.#count; i++) {
      if (this.#keyLength[i]! < 0) continue
      let s = this.#hash[i]! & mask
      while (slots[s] !== EMPTY) s = (s + 1) & mask
      slots[s] = i + 1
    }
    this.#slots = slots
    this.#filled = this.#live
  }

  /**
   * Room for `n` more arena bytes: a new arena half as large again as needed, compacted when it holds
   * garbage.
   */
  #ensureArena(n: number): void {
    if (this.#used + n <= this.#arena.length) return
    const arena = new Uint8Array(Math.max(256, Math.ceil((this.#used - this.#garbage + n) * 1.5)))
    if (this.#garbage === 0) arena.set(this.#arena.subarray(0, this.#used))
    else {
      this.#used = this.#copyLive(arena, true)
      this.#garbage = 0
    }
    this.#arena = arena
  }

  /**
   * Writes the header and the live records in entry order to `out`; returns the length written. With
   * `move`, points the entries at their new places.
   */
  #copyLive(out: Uint8Array, move: boolean): number {
    out[0] = SNAPSHOT_FORMAT
    out[1] = this.#arity
    let to = HEADER
    for (let i = 0; i < this.#count; i++) {
      if (this.#keyLength[i]! < 0) continue
      const from = this.#at[i]!
      const length = this.#recordLength(i)
      copy(this.#arena, from, from + length, out, to)
      if (move) this.#at[i] = to
      to += length
    }
    return to
  }

  #keyEquals(i: number, bytes: Uint8Array, start: number, end: number): boolean {
    const n = this.#keyLength[i]!
    if (n !== end - start) return false
    const at = this.#keyStart(i)
    for (let k = 0; k < n; k++) if (this.#arena[at + k] !== bytes[start + k]) return false
    return true
  }
}

const EMPTY_BYTES = new Uint8Array(0)

/** What decodes a key or value from its `bytesKey` string (a ValueCodec). */
interface KeyDecoder<T> {
  decodeKey(key: string): T
}

const isObject = (v: unknown): boolean => (typeof v === 'object' && v !== null) || typeof v === 'function'

/** The varint at `at` of bytes `scanItems` accepted. */
const readLength = (bytes: Uint8Array, at: number): number =>
  bytes[at]! < 0x80 ? bytes[at]! : varint.decode(bytes, at)

/** Copies `from[start..end)` to `to` at `at`: short ranges byte by byte (no view to allocate). */
function copy(from: Uint8Array, start: number, end: number, to: Uint8Array, at: number): void {
  if (end - start > 64) to.set(from.subarray(start, end), at)
  else for (let i = start; i < end; i++) to[at++] = from[i]!
}

/** FNV-1a over the bytes, then murmur3's finalizer so that linear probing sees spread-out values. */
function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193)
  return finish(h)
}

function finish(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return (h ^ (h >>> 16)) & 0x7fffffff
}

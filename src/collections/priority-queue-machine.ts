/**
 * The PriorityQueue replica: its commands, how they are read from the log, and the machine that applies
 * them (see priority-queue.ts for the handles users hold).
 */
import { compareBytes, u64be } from '../primitives/bytes.ts'
import type { StoreId } from '../primitives/digest.ts'
import { bytesKey, CollectionMachine, type ValueCodec } from './base.ts'
import {
  type ArgShape,
  type ByteRanges,
  bytesArg,
  bytesOrNullArg,
  type CommandReader,
  commandCodec,
  itemArg,
  listOf,
  packStrings,
  readRanges,
  unpackStrings,
} from './machine.ts'
import { BucketList, type Linked } from './priority-buckets.ts'
import { StringIndex } from './string-index.ts'
import { latin1 } from './values.ts'

export type Bound = readonly [Uint8Array, boolean] | null
type DecodedBound<P> = readonly [P, boolean] | null

type PqCommand =
  | readonly ['insert', Uint8Array, Uint8Array, Uint8Array]
  | readonly ['extend', (readonly [Uint8Array, Uint8Array, Uint8Array])[] | ByteRanges]
  | readonly ['updatePriority', Uint8Array, Uint8Array]
  | readonly ['updateValue', Uint8Array, Uint8Array]
  | readonly ['cas', Uint8Array, Uint8Array, Uint8Array | null]
  | readonly ['remove', Uint8Array[]]
  | readonly ['removeRange', Bound, Bound]
  | readonly ['clear']

/** A range bound: null (unbounded) or `[priority bytes, inclusive]`. */
const boundArg: ArgShape = (v) =>
  v === null || (Array.isArray(v) && v.length === 2 && bytesArg(v[0]) && typeof v[1] === 'boolean')

/**
 * PriorityQueue commands: canonical CBOR whose inserts are read as views or ranges of the command's
 * bytes, without a general decoder (see CommandReader); the rarer commands go to the strict decoder.
 */
const pqCommands = commandCodec<PqCommand>(
  3,
  {
    insert: [bytesArg, bytesArg, bytesArg],
    extend: [listOf(itemArg(3))],
    updatePriority: [bytesArg, bytesArg],
    updateValue: [bytesArg, bytesArg],
    cas: [bytesArg, bytesArg, bytesOrNullArg],
    remove: [listOf(bytesArg)],
    removeRange: [boundArg, boundArg],
    clear: [],
  },
  readPqCommand,
)

function readPqCommand(r: CommandReader): PqCommand {
  const n = r.head(4)
  const name = r.name()
  if (name === 'insert' && n === 4) return ['insert', r.byteString(), r.byteString(), r.byteString()]
  if (name === 'extend' && n === 2) return ['extend', readRanges(r, 3)]
  return r.unusual()
}

export type Codecs<P, K, V> = { p: ValueCodec<P>; k: ValueCodec<K>; v: ValueCodec<V> }

const UNDECODED: unique symbol = Symbol('undecoded')

/**
 * One entry. Its bytes are kept as latin1 strings (one byte per character: a fraction of a typed
 * array's overhead), the key and value decoded when first read; the priority is decoded at once, as
 * the order needs it.
 */
export class Slot<P, K, V> implements Linked<P> {
  prev: this | undefined = undefined
  next: this | undefined = undefined
  #key: K | typeof UNDECODED = UNDECODED
  #value: V | typeof UNDECODED = UNDECODED

  /** The decoded priority. */
  priority: P
  /** The priority's bytes. */
  p: string
  /** The key's bytes: the entry's id in `byKey`. */
  readonly id: string
  /** The value's bytes. */
  v: string
  readonly codecs: Codecs<P, K, V>

  constructor(priority: P, p: string, id: string, v: string, codecs: Codecs<P, K, V>) {
    this.priority = priority
    this.p = p
    this.id = id
    this.v = v
    this.codecs = codecs
  }

  get key(): K {
    if (this.#key === UNDECODED) this.#key = this.codecs.k.decodeKey(this.id)
    return this.#key
  }

  get value(): V {
    if (this.#value === UNDECODED) this.#value = this.codecs.v.decodeKey(this.v)
    return this.#value
  }

  setValue(v: string): void {
    this.v = v
    this.#value = UNDECODED
  }
}

export function defaultCompare(a: unknown, b: unknown): number {
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) {
    return a < b ? -1 : a > b ? 1 : 0
  }
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0
  return Number.NaN
}

/**
 * The PriorityQueue replica (mosaik's DEPQ): unique keys, each with a priority and a value, ordered by
 * priority. Buckets of equal priority keep insertion order; over capacity, the most recently inserted
 * entry of the lowest bucket is evicted (possibly the one just inserted), the same on every replica.
 */
export class PriorityQueueMachine<P, K, V> extends CollectionMachine<PqCommand> {
  readonly codecs = { command: pqCommands }
  readonly byKey = new StringIndex<Slot<P, K, V>>()
  /** Buckets in ascending priority. */
  readonly buckets: BucketList<P, Slot<P, K, V>>
  readonly capacity: number
  protected readonly arity = 3
  readonly #codecs: Codecs<P, K, V>
  readonly #compare: (a: P, b: P) => number

  constructor(
    storeId: StoreId,
    codecs: Codecs<P, K, V>,
    capacity: number,
    compare: ((a: P, b: P) => number) | undefined,
  ) {
    // The capacity is part of the signature: replicas that evict differently must never share a group.
    super('depq', storeId, u64be(Number.isFinite(capacity) ? capacity : Number.MAX_SAFE_INTEGER))
    this.capacity = capacity
    this.#codecs = codecs
    const codec = codecs.p
    this.#compare = (a, b) => {
      const c = compare ? compare(a, b) : defaultCompare(a, b)
      return Number.isNaN(c) ? compareBytes(codec.encodeUnchecked(a), codec.encodeUnchecked(b)) : c
    }
    this.buckets = new BucketList(this.#compare)
  }

  /**
   * Inserts or replaces an entry given as its bytes' `bytesKey` strings. The priority is decoded before
   * anything changes: one that does not decode refuses the command, leaving the queue as it was.
   */
  #insert(p: string, id: string, v: string, priority: P = this.#codecs.p.decodeKey(p)): void {
    let slot = this.byKey.get(id)
    if (slot) {
      // Inserting a held key moves it to the end of its (new) bucket, with the new value.
      this.buckets.unlink(slot)
      slot.priority = priority
      slot.p = p
      slot.setValue(v)
    } else {
      slot = new Slot(priority, p, id, v, this.#codecs)
      this.byKey.add(slot)
    }
    this.buckets.link(slot)
    // Past capacity, the newest entry of the lowest bucket goes.
    while (this.byKey.size > this.capacity) this.#remove(this.buckets.first!.tail!.id)
  }

  #remove(id: string): void {
    const slot = this.byKey.get(id)
    if (!slot) return
    this.byKey.delete(id)
    this.buckets.unlink(slot)
  }

  #inRange(p: P, low: DecodedBound<P>, high: DecodedBound<P>): boolean {
    if (low) {
      const c = this.#compare(p, low[0])
      if (c < 0 || (c === 0 && !low[1])) return false
    }
    if (high) {
      const c = this.#compare(p, high[0])
      if (c > 0 || (c === 0 && !high[1])) return false
    }
    return true
  }

  #decodeBound(b: Bound): DecodedBound<P> {
    return b && [this.#codecs.p.decode(b[0]), b[1]]
  }

  applyCommand(c: PqCommand): unknown {
    switch (c[0]) {
      case 'insert':
        this.#insert(bytesKey(c[1]), bytesKey(c[2]), bytesKey(c[3]))
        return
      case 'extend': {
        // Every priority decodes before the first insert: an extend is refused whole or applied whole.
        if (Array.isArray(c[1])) {
          const items = c[1].map(([p, k, v]) => [bytesKey(p), bytesKey(k), bytesKey(v)] as const)
          const priorities = items.map(([p]) => this.#codecs.p.decodeKey(p))
          for (let i = 0; i < items.length; i++) this.#insert(...items[i]!, priorities[i])
          return
        }
        const { bytes, ranges } = c[1] as ByteRanges
        const ps: string[] = []
        const priorities: P[] = []
        for (let j = 0; j < ranges.length; j += 6) {
          const p = latin1(bytes, ranges[j]!, ranges[j + 1]!)
          ps.push(p)
          priorities.push(this.#codecs.p.decodeKey(p))
        }
        for (let j = 0, i = 0; j < ranges.length; j += 6, i++) {
          this.#insert(
            ps[i]!,
            latin1(bytes, ranges[j + 2]!, ranges[j + 3]!),
            latin1(bytes, ranges[j + 4]!, ranges[j + 5]!),
            priorities[i],
          )
        }
        return
      }
      case 'updatePriority': {
        const slot = this.byKey.get(bytesKey(c[1]))
        if (!slot) return false
        const p = bytesKey(c[2])
        const priority = this.#codecs.p.decodeKey(p)
        this.buckets.unlink(slot)
        slot.p = p
        slot.priority = priority
        this.buckets.link(slot)
        return true
      }
      case 'updateValue': {
        const slot = this.byKey.get(bytesKey(c[1]))
        if (!slot) return false
        slot.setValue(bytesKey(c[2]))
        return true
      }
      case 'cas': {
        const slot = this.byKey.get(bytesKey(c[1]))
        if (!slot || slot.v !== bytesKey(c[2])) return false
        if (c[3] === null) this.#remove(slot.id)
        else slot.setValue(bytesKey(c[3]))
        return true
      }
      case 'remove':
        for (const kb of c[1]) this.#remove(bytesKey(kb))
        return
      case 'removeRange': {
        const low = this.#decodeBound(c[1])
        const high = this.#decodeBound(c[2])
        for (const slot of this.buckets.removeWhere((p) => this.#inRange(p, low, high)))
          this.byKey.delete(slot.id)
        return
      }
      case 'clear':
        this.byKey.clear()
        this.buckets.clear()
        return
    }
  }

  /** Entries by ascending priority, the oldest first among equals. */
  *ascending(): IterableIterator<Slot<P, K, V>> {
    for (const b of this.buckets.ascending()) for (let s = b.head; s; s = s.next) yield s
  }

  /** Entries by descending priority, the newest first among equals. */
  *descending(): IterableIterator<Slot<P, K, V>> {
    for (const b of this.buckets.descending()) for (let s = b.tail; s; s = s.prev) yield s
  }

  /** The entries in ascending order, packed (`packItems` of their bytes) straight from their strings. */
  override snapshot(): Uint8Array {
    return packStrings(this.arity, (field) =>
      this.buckets.forEachEntry((s) => {
        field(s.p)
        field(s.id)
        field(s.v)
      }),
    )
  }

  /** Reads a snapshot's byte strings as strings (no view per byte string). */
  protected override restoreSnapshot(snapshot: Uint8Array): void {
    const fields = unpackStrings(this.arity, snapshot)
    this.byKey.clear()
    this.buckets.clear()
    for (let i = 0; i < fields.length; i += 3) this.#insert(fields[i]!, fields[i + 1]!, fields[i + 2]!)
  }
}

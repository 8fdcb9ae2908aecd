import type { AbortOptions } from '../primitives/abort.ts'
import { compareBytes, u64be } from '../primitives/bytes.ts'
import type { DigestLike, StoreId } from '../primitives/digest.ts'
import { InvalidArgumentError } from '../primitives/errors.ts'
import {
  bytesKey,
  CollectionHandle,
  CollectionMachine,
  type CollectionOptions,
  type CollectionRole,
  type CollectionsComponents,
  ValueCodec,
  type ValueType,
  type Version,
} from './base.ts'
import { BucketList, type Linked } from './priority-buckets.ts'
import { keyBytes } from './values.ts'

export interface PriorityQueueOptions<P, K, V> extends CollectionOptions {
  /** How priorities are encoded and validated (default: canonical CBOR). */
  priority?: ValueType<P>
  /** How keys are encoded and validated (default: canonical CBOR); keys compare by encoded bytes. */
  key?: ValueType<K>
  /** How values are encoded and validated (default: canonical CBOR). */
  value?: ValueType<V>
  /**
   * The most entries kept; inserting past it evicts from the lowest priority (part of the group id, so
   * every replica agrees). Default: unbounded.
   */
  capacity?: number
  /**
   * Orders priorities (default: numbers and bigints numerically, strings lexically, anything else by
   * encoded bytes). Must be deterministic: every replica orders the same way.
   */
  compare?: (a: P, b: P) => number
}

/** Bounds of a priority range; omitted bounds are open. */
export interface PriorityRange<P> {
  /** Priorities greater than or equal to this. */
  gte?: P
  /** Priorities greater than this. */
  gt?: P
  /** Priorities less than or equal to this. */
  lte?: P
  /** Priorities less than this. */
  lt?: P
}

/** One entry of the queue. */
export interface QueueEntry<P, K, V> {
  /** The entry's priority. */
  priority: P
  /** The entry's key, unique in the queue. */
  key: K
  /** The entry's value. */
  value: V
}

type Bound = readonly [Uint8Array, boolean] | null
type PqCommand =
  | readonly ['insert', Uint8Array, Uint8Array, Uint8Array]
  | readonly ['extend', (readonly [Uint8Array, Uint8Array, Uint8Array])[]]
  | readonly ['updatePriority', Uint8Array, Uint8Array]
  | readonly ['updateValue', Uint8Array, Uint8Array]
  | readonly ['cas', Uint8Array, Uint8Array, Uint8Array | null]
  | readonly ['remove', Uint8Array[]]
  | readonly ['removeRange', Bound, Bound]
  | readonly ['clear']

type Codecs<P, K, V> = { p: ValueCodec<P>; k: ValueCodec<K>; v: ValueCodec<V> }

const UNDECODED: unique symbol = Symbol('undecoded')

/**
 * One entry. Its bytes are kept as latin1 strings (one byte per character: a fraction of a typed
 * array's overhead), the key and value decoded when first read; the priority is decoded at once, as
 * the order needs it.
 */
class Slot<P, K, V> implements Linked<P> {
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
  readonly byKey = new Map<string, Slot<P, K, V>>()
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

  #insert(pb: Uint8Array, kb: Uint8Array, vb: Uint8Array): void {
    const id = bytesKey(kb)
    const priority = this.#codecs.p.decode(pb)
    let slot = this.byKey.get(id)
    if (slot) {
      // Inserting a held key moves it to the end of its (new) bucket, with the new value.
      this.buckets.unlink(slot)
      slot.priority = priority
      slot.p = bytesKey(pb)
      slot.setValue(bytesKey(vb))
    } else {
      slot = new Slot(priority, bytesKey(pb), id, bytesKey(vb), this.#codecs)
      this.byKey.set(id, slot)
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

  #inRange(p: P, low: Bound, high: Bound): boolean {
    if (low) {
      const c = this.#compare(p, this.#codecs.p.decode(low[0]))
      if (c < 0 || (c === 0 && !low[1])) return false
    }
    if (high) {
      const c = this.#compare(p, this.#codecs.p.decode(high[0]))
      if (c > 0 || (c === 0 && !high[1])) return false
    }
    return true
  }

  applyCommand(c: PqCommand): unknown {
    switch (c[0]) {
      case 'insert':
        this.#insert(c[1], c[2], c[3])
        return
      case 'extend':
        for (const [p, k, v] of c[1]) this.#insert(p, k, v)
        return
      case 'updatePriority': {
        const slot = this.byKey.get(bytesKey(c[1]))
        if (!slot) return false
        const priority = this.#codecs.p.decode(c[2])
        this.buckets.unlink(slot)
        slot.p = bytesKey(c[2])
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
        const [, low, high] = c
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

  protected snapshotItems(): Uint8Array[][] {
    return [...this.ascending()].map((s) => [keyBytes(s.p), keyBytes(s.id), keyBytes(s.v)])
  }

  protected restoreItems(items: Uint8Array[][]): void {
    this.byKey.clear()
    this.buckets.clear()
    for (const [pb, kb, vb] of items) this.#insert(pb!, kb!, vb!)
  }
}

const toEntry = <P, K, V>(s: Slot<P, K, V>): QueueEntry<P, K, V> => ({
  priority: s.priority,
  key: s.key,
  value: s.value,
})

/** Read access to a replicated PriorityQueue. */
export class PriorityQueueReader<P, K, V> extends CollectionHandle<PriorityQueueMachine<P, K, V>> {
  protected readonly codecs: { p: ValueCodec<P>; k: ValueCodec<K>; v: ValueCodec<V> }

  constructor(
    net: CollectionsComponents,
    storeId: DigestLike,
    role: CollectionRole,
    options: PriorityQueueOptions<P, K, V> = {},
  ) {
    const capacity = options.capacity ?? Number.POSITIVE_INFINITY
    if (!(capacity >= 1)) throw new InvalidArgumentError('capacity must be at least 1')
    const codecs = {
      p: new ValueCodec(options.priority),
      k: new ValueCodec(options.key),
      v: new ValueCodec(options.value),
    }
    super(
      net,
      storeId,
      role,
      (id) => new PriorityQueueMachine(id, codecs, capacity, options.compare),
      options,
    )
    this.codecs = codecs
  }

  /** Number of entries. */
  get size(): number {
    return this.machine.byKey.size
  }

  /** True when the queue has no entries. */
  get isEmpty(): boolean {
    return this.size === 0
  }

  /** The most entries kept (Infinity when unbounded). */
  get capacity(): number {
    return this.machine.capacity
  }

  /** True when the queue holds `key`. */
  has(key: K): boolean {
    return this.#slot(key) !== undefined
  }

  /** The value of `key`, or undefined. */
  get(key: K): V | undefined {
    return this.#slot(key)?.value
  }

  /** The priority of `key`, or undefined. */
  getPriority(key: K): P | undefined {
    return this.#slot(key)?.priority
  }

  /** The entry of lowest priority (the first inserted among equals). */
  getMin(): QueueEntry<P, K, V> | undefined {
    const slot = this.machine.buckets.first?.head
    return slot && toEntry(slot)
  }

  /** The entry of highest priority (the first inserted among equals). */
  getMax(): QueueEntry<P, K, V> | undefined {
    const slot = this.machine.buckets.last?.head
    return slot && toEntry(slot)
  }

  /** The lowest priority in the queue, or undefined when empty. */
  get minPriority(): P | undefined {
    return this.machine.buckets.first?.priority
  }

  /** The highest priority in the queue, or undefined when empty. */
  get maxPriority(): P | undefined {
    return this.machine.buckets.last?.priority
  }

  /**
   * Entries by ascending priority, the first inserted first among equals.
   *
   * Gotchas: an iteration that spans a change to the queue (it awaits between entries while commands
   * apply) may skip or repeat entries; take `[...queue.ascending()]` first when the loop awaits.
   */
  *ascending(): IterableIterator<QueueEntry<P, K, V>> {
    for (const s of this.machine.ascending()) yield toEntry(s)
  }

  /**
   * Entries by descending priority, the last inserted first among equals.
   *
   * Gotchas: as for `ascending()`, an iteration that spans a change may skip or repeat entries.
   */
  *descending(): IterableIterator<QueueEntry<P, K, V>> {
    for (const s of this.machine.descending()) yield toEntry(s)
  }

  /** The same as `ascending()`. */
  [Symbol.iterator](): IterableIterator<QueueEntry<P, K, V>> {
    return this.ascending()
  }

  #slot(key: K) {
    return this.machine.byKey.get(bytesKey(this.codecs.k.encodeUnchecked(key)))
  }
}

/** A replicated PriorityQueue this node writes. */
export class PriorityQueueWriter<P, K, V> extends PriorityQueueReader<P, K, V> {
  /** Inserts or replaces `key` with this priority and value (may evict past capacity). */
  async insert(priority: P, key: K, value: V, options?: AbortOptions): Promise<Version> {
    const { p, k, v } = this.codecs
    return this.mutate(
      ['insert', await p.encode(priority), await k.encode(key), await v.encode(value)],
      value,
      options,
    )
  }

  /**
   * Inserts or replaces many `[priority, key, value]` entries in one command (may evict past
   * capacity); an empty input returns the current version.
   */
  async extend(entries: Iterable<readonly [P, K, V]>, options?: AbortOptions): Promise<Version> {
    const list = [...entries]
    if (list.length === 0) return this.version
    const { p, k, v } = this.codecs
    const encoded = await Promise.all(
      list.map(async ([pp, kk, vv]) => [await p.encode(pp), await k.encode(kk), await v.encode(vv)] as const),
    )
    return this.mutate(['extend', encoded], list, options)
  }

  /** Moves `key` to a new priority; a missing key is a committed no-op. */
  async updatePriority(key: K, priority: P, options?: AbortOptions): Promise<Version> {
    return this.mutate(
      ['updatePriority', await this.codecs.k.encode(key), await this.codecs.p.encode(priority)],
      priority,
      options,
    )
  }

  /** Replaces the value of `key`, keeping its priority; a missing key is a committed no-op. */
  async updateValue(key: K, value: V, options?: AbortOptions): Promise<Version> {
    return this.mutate(
      ['updateValue', await this.codecs.k.encode(key), await this.codecs.v.encode(value)],
      value,
      options,
    )
  }

  /**
   * Replaces the value of `key` if it equals `expected` (by encoded bytes), keeping the priority;
   * `next` undefined removes the entry. A mismatch or a missing key is a committed no-op.
   */
  async compareExchangeValue(
    key: K,
    expected: V,
    next: V | undefined,
    options?: AbortOptions,
  ): Promise<Version> {
    const { k, v } = this.codecs
    const command = [
      'cas',
      await k.encode(key),
      await v.encode(expected),
      next === undefined ? null : await v.encode(next),
    ] as const
    return this.mutate(command, next, options)
  }

  /** Removes `key`. */
  async remove(key: K, options?: AbortOptions): Promise<Version> {
    return this.mutate(['remove', [await this.codecs.k.encode(key)]], key, options)
  }

  /** Removes many keys in one command; an empty input returns the current version. */
  async removeKeys(keys: Iterable<K>, options?: AbortOptions): Promise<Version> {
    const list = [...keys]
    if (list.length === 0) return this.version
    return this.mutate(
      ['remove', await Promise.all(list.map((key) => this.codecs.k.encode(key)))],
      list,
      options,
    )
  }

  /** Removes every entry whose priority lies in the range (omitted bounds are open). */
  async removeRange(range: PriorityRange<P>, options?: AbortOptions): Promise<Version> {
    const p = this.codecs.p
    const bound = async (inclusive: P | undefined, exclusive: P | undefined): Promise<Bound> =>
      inclusive !== undefined
        ? [await p.encode(inclusive), true]
        : exclusive !== undefined
          ? [await p.encode(exclusive), false]
          : null
    const command = [
      'removeRange',
      await bound(range.gte, range.gt),
      await bound(range.lte, range.lt),
    ] as const
    return this.mutate(command, range, options)
  }

  /** Removes every entry. */
  clear(options?: AbortOptions): Promise<Version> {
    return this.mutate(['clear'], undefined, options)
  }
}

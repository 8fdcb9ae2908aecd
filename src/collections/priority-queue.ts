import type { AbortOptions } from '../primitives/abort.ts'
import type { DigestLike } from '../primitives/digest.ts'
import { InvalidArgumentError } from '../primitives/errors.ts'
import {
  bytesKey,
  CollectionHandle,
  type CollectionOptions,
  type CollectionRole,
  type CollectionsComponents,
  ValueCodec,
  type ValueType,
  type Version,
} from './base.ts'
import { type Bound, PriorityQueueMachine, type Slot } from './priority-queue-machine.ts'

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

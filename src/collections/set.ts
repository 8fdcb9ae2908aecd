import type { AbortOptions } from '../primitives/abort.ts'
import type { DigestLike, StoreId } from '../primitives/digest.ts'
import {
  bytesKey,
  CollectionHandle,
  CollectionMachine,
  type CollectionOptions,
  type CollectionRole,
  type CollectionsComponents,
  Lazy,
  ValueCodec,
  type ValueType,
  type Version,
} from './base.ts'

export interface SetOptions<T> extends CollectionOptions {
  /** How members are encoded and validated (default: canonical CBOR); members compare by encoded bytes. */
  value?: ValueType<T>
}

type SetCommand =
  | readonly ['add', Uint8Array]
  | readonly ['extend', Uint8Array[]]
  | readonly ['remove', Uint8Array[]]
  | readonly ['clear']

/** The Set replica: members keyed by canonical bytes, in insertion order. */
export class SetMachine<T> extends CollectionMachine<SetCommand> {
  readonly members = new Map<string, Lazy<T>>()
  protected readonly arity = 1
  readonly #codec: ValueCodec<T>

  constructor(storeId: StoreId, codec: ValueCodec<T>) {
    super('set', storeId)
    this.#codec = codec
  }

  #add(bytes: Uint8Array): void {
    const id = bytesKey(bytes)
    if (!this.members.has(id)) this.members.set(id, new Lazy(bytes, this.#codec))
  }

  applyCommand(c: SetCommand): unknown {
    switch (c[0]) {
      case 'add':
        this.#add(c[1])
        return
      case 'extend':
        for (const b of c[1]) this.#add(b)
        return
      case 'remove':
        for (const b of c[1]) this.members.delete(bytesKey(b))
        return
      case 'clear':
        this.members.clear()
        return
    }
  }

  protected snapshotItems(): Uint8Array[][] {
    return [...this.members.values()].map((m) => [m.bytes])
  }

  protected restoreItems(items: Uint8Array[][]): void {
    this.members.clear()
    for (const [b] of items) this.#add(b!)
  }
}

/** Read access to a replicated Set. */
export class SetReader<T> extends CollectionHandle<SetMachine<T>> implements Iterable<T> {
  protected readonly codec: ValueCodec<T>

  constructor(
    net: CollectionsComponents,
    storeId: DigestLike,
    role: CollectionRole,
    options: SetOptions<T> = {},
  ) {
    const codec = new ValueCodec(options.value)
    super(net, storeId, role, (id) => new SetMachine(id, codec), options)
    this.codec = codec
  }

  /** Number of members. */
  get size(): number {
    return this.machine.members.size
  }

  /** True when the set has no members. */
  get isEmpty(): boolean {
    return this.size === 0
  }

  /** True when `value` is a member (compared by encoded bytes). */
  has(value: T): boolean {
    return this.machine.members.has(bytesKey(this.codec.encodeUnchecked(value)))
  }

  /** True when every member of this set is in `other` (compared by encoded bytes). */
  isSubsetOf(other: Iterable<T> | SetReader<T>): boolean {
    const theirs =
      other instanceof SetReader
        ? (other as SetReader<T>).machine.members
        : new Map([...other].map((v) => [bytesKey(this.codec.encodeUnchecked(v)), true]))
    for (const id of this.machine.members.keys()) if (!theirs.has(id)) return false
    return true
  }

  /** The members, in insertion order (the same on every replica). */
  *values(): IterableIterator<T> {
    for (const m of this.machine.members.values()) yield m.value
  }

  /** The same as `values()`. */
  [Symbol.iterator](): IterableIterator<T> {
    return this.values()
  }
}

/** A replicated Set this node writes. */
export class SetWriter<T> extends SetReader<T> {
  /** Adds a member. */
  async add(value: T, options?: AbortOptions): Promise<Version> {
    return this.mutate(['add', await this.codec.encode(value)], value, options)
  }

  /** Adds many members in one command; an empty input returns the current version. */
  async extend(values: Iterable<T>, options?: AbortOptions): Promise<Version> {
    const list = [...values]
    if (list.length === 0) return this.version
    return this.mutate(['extend', await Promise.all(list.map((v) => this.codec.encode(v)))], list, options)
  }

  /** Removes a member. */
  async delete(value: T, options?: AbortOptions): Promise<Version> {
    return this.mutate(['remove', [await this.codec.encode(value)]], value, options)
  }

  /** Removes many members in one command; an empty input returns the current version. */
  async removeMany(values: Iterable<T>, options?: AbortOptions): Promise<Version> {
    const list = [...values]
    if (list.length === 0) return this.version
    return this.mutate(['remove', await Promise.all(list.map((v) => this.codec.encode(v)))], list, options)
  }

  /** Removes every member. */
  clear(options?: AbortOptions): Promise<Version> {
    return this.mutate(['clear'], undefined, options)
  }
}

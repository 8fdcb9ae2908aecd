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
  OutOfRangeError,
  ValueCodec,
  type ValueType,
  type Version,
} from './base.ts'
import {
  type ByteRanges,
  bytesArg,
  type CommandReader,
  commandCodec,
  listOf,
  numberArg,
  packStrings,
  readRanges,
  unpackStrings,
} from './machine.ts'
import { latin1 } from './values.ts'

export interface VecOptions<T> extends CollectionOptions {
  /** How elements are encoded and validated (default: canonical CBOR, no schema). */
  value?: ValueType<T>
}

type VecCommand =
  | readonly ['pushBack' | 'pushFront', Uint8Array]
  | readonly ['insert', number, Uint8Array]
  | readonly ['extend', Uint8Array[] | ByteRanges]
  | readonly ['popBack' | 'popFront' | 'clear']
  | readonly ['remove', number]
  | readonly ['swap', number, number]
  | readonly ['truncate', number]

const INSERT_OUT_OF_RANGE = 'insert-out-of-range'

/**
 * Vec commands: canonical CBOR whose pushes and extends are read as views or ranges of the command's
 * bytes, without a general decoder (see CommandReader); the others go to the strict decoder.
 */
const vecCommands = commandCodec<VecCommand>(
  1,
  {
    pushBack: [bytesArg],
    pushFront: [bytesArg],
    insert: [numberArg, bytesArg],
    extend: [listOf(bytesArg)],
    popBack: [],
    popFront: [],
    clear: [],
    remove: [numberArg],
    swap: [numberArg, numberArg],
    truncate: [numberArg],
  },
  readVecCommand,
)

function readVecCommand(r: CommandReader): VecCommand {
  const n = r.head(4)
  const name = r.name()
  if ((name === 'pushBack' || name === 'pushFront') && n === 2) return [name, r.byteString()]
  if (name === 'extend' && n === 2) return ['extend', readRanges(r, 1)]
  return r.unusual()
}

/** The Vec replica: an array of values with their bytes, each decoded when first read. */
export class VecMachine<T> extends CollectionMachine<VecCommand> {
  readonly codecs = { command: vecCommands }
  items: Lazy<T>[] = []
  protected readonly arity = 1
  readonly #codec: ValueCodec<T>

  constructor(storeId: StoreId, codec: ValueCodec<T>) {
    super('vec', storeId)
    this.#codec = codec
  }

  #item(bytes: Uint8Array): Lazy<T> {
    return new Lazy(bytesKey(bytes), this.#codec)
  }

  applyCommand(c: VecCommand): unknown {
    const items = this.items
    switch (c[0]) {
      case 'pushBack':
        items.push(this.#item(c[1]))
        return
      case 'pushFront':
        items.unshift(this.#item(c[1]))
        return
      case 'insert':
        // mosaik corrupts the replica here (im::Vector panics past the end); we refuse, on every replica.
        if (!Number.isSafeInteger(c[1]) || c[1] < 0 || c[1] > items.length) return INSERT_OUT_OF_RANGE
        items.splice(c[1], 0, this.#item(c[2]))
        return
      case 'extend': {
        if (Array.isArray(c[1])) {
          for (const b of c[1]) items.push(this.#item(b))
          return
        }
        const { bytes, ranges } = c[1] as ByteRanges
        for (let j = 0; j < ranges.length; j += 2)
          items.push(new Lazy(latin1(bytes, ranges[j]!, ranges[j + 1]!), this.#codec))
        return
      }
      case 'popBack':
        items.pop()
        return
      case 'popFront':
        items.shift()
        return
      case 'remove':
        if (Number.isSafeInteger(c[1]) && c[1] >= 0 && c[1] < items.length) items.splice(c[1], 1)
        return
      case 'swap': {
        const [, i, j] = c
        if (!inRange(i, items.length) || !inRange(j, items.length)) return
        const a = items[i]!
        items[i] = items[j]!
        items[j] = a
        return
      }
      case 'truncate':
        if (Number.isSafeInteger(c[1]) && c[1] >= 0 && c[1] < items.length) items.length = c[1]
        return
      case 'clear':
        this.items = []
        return
    }
  }

  /** The elements, packed (`packItems` of their bytes) straight from their strings. */
  override snapshot(): Uint8Array {
    return packStrings(this.arity, (field) => {
      for (const item of this.items) field(item.text)
    })
  }

  /** Reads a snapshot's byte strings as strings (no view per element). */
  protected override restoreSnapshot(snapshot: Uint8Array): void {
    this.items = unpackStrings(this.arity, snapshot).map((text) => new Lazy(text, this.#codec))
  }
}

function inRange(i: number, length: number): boolean {
  return Number.isSafeInteger(i) && i >= 0 && i < length
}

/** Read access to a replicated Vec. */
export class VecReader<T> extends CollectionHandle<VecMachine<T>> implements Iterable<T> {
  protected readonly codec: ValueCodec<T>

  constructor(
    net: CollectionsComponents,
    storeId: DigestLike,
    role: CollectionRole,
    options: VecOptions<T> = {},
  ) {
    const codec = new ValueCodec(options.value)
    super(net, storeId, role, (id) => new VecMachine(id, codec), options)
    this.codec = codec
  }

  /** Number of elements. */
  get length(): number {
    return this.machine.items.length
  }

  /** The same as `length`. */
  get size(): number {
    return this.length
  }

  /** True when the vec has no elements. */
  get isEmpty(): boolean {
    return this.length === 0
  }

  /** The element at `index`, or undefined when out of range. */
  get(index: number): T | undefined {
    return this.machine.items[index]?.value
  }

  /** The first element (mosaik's `front` / `head`). */
  front(): T | undefined {
    return this.machine.items[0]?.value
  }

  /** The last element (mosaik's `back` / `last`). */
  back(): T | undefined {
    return this.machine.items[this.machine.items.length - 1]?.value
  }

  /** True when some element equals `value` (by encoded bytes). */
  includes(value: T): boolean {
    return this.indexOf(value) >= 0
  }

  /** The first index holding a value equal (by encoded bytes) to `value`, or -1. */
  indexOf(value: T): number {
    const text = bytesKey(this.codec.encodeUnchecked(value))
    return this.machine.items.findIndex((i) => i.text === text)
  }

  /** The elements, first to last. */
  *values(): IterableIterator<T> {
    for (const i of this.machine.items) yield i.value
  }

  /** The same as `values()`. */
  [Symbol.iterator](): IterableIterator<T> {
    return this.values()
  }

  /** A copy of the elements as an array. */
  toArray(): T[] {
    return this.machine.items.map((i) => i.value)
  }
}

/** A replicated Vec this node writes. */
export class VecWriter<T> extends VecReader<T> {
  /** Appends an element. */
  async pushBack(value: T, options?: AbortOptions): Promise<Version> {
    return this.mutate(['pushBack', await this.codec.encode(value)], value, options)
  }

  /** Prepends an element. */
  async pushFront(value: T, options?: AbortOptions): Promise<Version> {
    return this.mutate(['pushFront', await this.codec.encode(value)], value, options)
  }

  /**
   * Inserts at `index` (0 ..= length). Past the end it is an error (OutOfRangeError carrying the
   * value), decided when the command applies, so every replica agrees.
   */
  async insert(index: number, value: T, options?: AbortOptions): Promise<Version> {
    const { version, result } = await this.core.mutate(
      ['insert', index, await this.codec.encode(value)],
      value,
      options,
    )
    if (result === INSERT_OUT_OF_RANGE) {
      throw new OutOfRangeError(value, version, `insert at ${index} is past the end of the vec`)
    }
    return version
  }

  /** Appends many elements in one command; an empty input returns the current version. */
  async extend(values: Iterable<T>, options?: AbortOptions): Promise<Version> {
    const list = [...values]
    if (list.length === 0) return this.version
    return this.mutate(['extend', await Promise.all(list.map((v) => this.codec.encode(v)))], list, options)
  }

  /** Removes the last element; resolves with the version only (read the value before if needed). */
  popBack(options?: AbortOptions): Promise<Version> {
    return this.mutate(['popBack'], undefined, options)
  }

  /** Removes the first element; resolves with the version only (read the value before if needed). */
  popFront(options?: AbortOptions): Promise<Version> {
    return this.mutate(['popFront'], undefined, options)
  }

  /** Removes the element at `index`; out of range is a committed no-op. */
  remove(index: number, options?: AbortOptions): Promise<Version> {
    return this.mutate(['remove', index], index, options)
  }

  /** Swaps two elements; out of range is a committed no-op. */
  swap(i: number, j: number, options?: AbortOptions): Promise<Version> {
    return this.mutate(['swap', i, j], [i, j], options)
  }

  /** Keeps the first `length` elements; a length beyond the end is a committed no-op. */
  truncate(length: number, options?: AbortOptions): Promise<Version> {
    return this.mutate(['truncate', length], length, options)
  }

  /** Removes every element. */
  clear(options?: AbortOptions): Promise<Version> {
    return this.mutate(['clear'], undefined, options)
  }
}

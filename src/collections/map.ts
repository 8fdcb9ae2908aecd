import type { AbortOptions } from '../primitives/abort.ts'
import type { DigestLike, StoreId } from '../primitives/digest.ts'
import {
  CollectionHandle,
  type CollectionOptions,
  type CollectionRole,
  type CollectionsComponents,
  ValueCodec,
  type ValueType,
  type Version,
} from './base.ts'
import type { ByteTable } from './byte-table.ts'
import {
  type ByteRanges,
  bytesArg,
  bytesOrNullArg,
  type CommandReader,
  commandCodec,
  itemArg,
  listOf,
  readRanges,
} from './machine.ts'
import { TableMachine } from './table-machine.ts'

/** Options of a replicated Map: codecs (and schemas) for keys and values. */
export interface MapOptions<K, V> extends CollectionOptions {
  /** How keys are encoded and validated (default: canonical CBOR); keys compare by their encoded bytes. */
  key?: ValueType<K>
  /** How values are encoded and validated (default: canonical CBOR). */
  value?: ValueType<V>
}

type MapCommand =
  | readonly ['set', Uint8Array, Uint8Array]
  | readonly ['extend', (readonly [Uint8Array, Uint8Array])[] | ByteRanges]
  | readonly ['remove', Uint8Array[]]
  | readonly ['cas', Uint8Array, Uint8Array | null, Uint8Array | null]
  | readonly ['clear']

/**
 * Map commands: canonical CBOR whose byte strings are read as views or ranges of the command's bytes,
 * without a general decoder (see CommandReader).
 */
const mapCommands = commandCodec<MapCommand>(
  2,
  {
    set: [bytesArg, bytesArg],
    extend: [listOf(itemArg(2))],
    remove: [listOf(bytesArg)],
    cas: [bytesArg, bytesOrNullArg, bytesOrNullArg],
    clear: [],
  },
  readMapCommand,
)

function readMapCommand(r: CommandReader): MapCommand {
  const n = r.head(4)
  const name = r.name()
  if (name === 'set' && n === 3) return ['set', r.byteString(), r.byteString()]
  if (name === 'extend' && n === 2) return ['extend', readRanges(r, 2)]
  if (name === 'remove' && n === 2) {
    const count = r.head(4)
    const keys: Uint8Array[] = []
    for (let i = 0; i < count; i++) keys.push(r.byteString())
    return ['remove', keys]
  }
  if (name === 'cas' && n === 4) return ['cas', r.byteString(), r.byteStringOrNull(), r.byteStringOrNull()]
  if (name === 'clear' && n === 1) return ['clear']
  return r.unusual()
}

/**
 * The Map replica: entries keyed by canonical key bytes, iterated in insertion order (the same on
 * every replica, since every replica applies the same commands in the same order). Entries are bytes
 * in a ByteTable; keys and values are decoded when read, and kept when they decode to objects, so
 * reads return the same object until the entry changes.
 */
export class MapMachine<K, V> extends TableMachine<MapCommand> {
  readonly codecs = { command: mapCommands }
  readonly #keys: ValueCodec<K>
  readonly #values: ValueCodec<V>

  constructor(storeId: StoreId, keys: ValueCodec<K>, values: ValueCodec<V>) {
    super('map', storeId, 2)
    this.#keys = keys
    this.#values = values
  }

  applyCommand(c: MapCommand): unknown {
    const t = this.table
    switch (c[0]) {
      case 'set':
        t.set(c[1], c[2])
        return
      case 'extend': {
        const pairs = c[1]
        if (Array.isArray(pairs)) for (const [k, v] of pairs) t.set(k, v)
        else {
          const { bytes, ranges } = pairs as ByteRanges
          t.reserve(this.entriesIn(pairs as ByteRanges), bytes.length)
          for (let j = 0; j < ranges.length; j += 4) {
            t.setRanges(bytes, ranges[j]!, ranges[j + 1]!, bytes, ranges[j + 2]!, ranges[j + 3]!)
          }
        }
        return
      }
      case 'remove':
        // Each removal may compact the table into a new one: look every key up in the current one.
        for (const k of c[1]) {
          const i = this.table.find(k)
          if (i >= 0) this.removeAt(i)
        }
        return
      case 'cas': {
        // Compare-and-swap on encoded bytes: (none, none) no-op; (none, v) insert if absent;
        // (e, v) replace if equal; (e, none) delete if equal. Returns whether it applied.
        const [, k, expected, next] = c
        const i = t.find(k)
        const matches = expected === null ? i < 0 : i >= 0 && t.valueEquals(i, expected)
        if (!matches) return false
        if (next !== null) t.set(k, next)
        else if (i >= 0) this.removeAt(i)
        return true
      }
      case 'clear':
        this.clearTable()
        return
    }
  }

  /** The decoded value of entry `i` of `table`. */
  valueAt(table: ByteTable, i: number): V {
    return table.decodedValue(i, this.#values)
  }

  /** The decoded key of entry `i` of `table`. */
  keyAt(table: ByteTable, i: number): K {
    return table.decodedKey(i, this.#keys)
  }
}

/** Read access to a replicated Map, on any replica. Reads are synchronous and local. */
export class MapReader<K, V> extends CollectionHandle<MapMachine<K, V>> implements Iterable<[K, V]> {
  protected readonly keyCodec: ValueCodec<K>
  protected readonly valueCodec: ValueCodec<V>

  constructor(
    net: CollectionsComponents,
    storeId: DigestLike,
    role: CollectionRole,
    options: MapOptions<K, V> = {},
  ) {
    const keyCodec = new ValueCodec(options.key)
    const valueCodec = new ValueCodec(options.value)
    super(net, storeId, role, (id) => new MapMachine(id, keyCodec, valueCodec), options)
    this.keyCodec = keyCodec
    this.valueCodec = valueCodec
  }

  /** Number of entries. */
  get size(): number {
    return this.machine.table.size
  }

  /** True when the map has no entries. */
  get isEmpty(): boolean {
    return this.size === 0
  }

  /** The value of `key`, or undefined. */
  get(key: K): V | undefined {
    const table = this.machine.table
    // Keys compare by canonical bytes: objects are fine as keys.
    const i = table.find(this.keyCodec.encodeUnchecked(key))
    return i < 0 ? undefined : this.machine.valueAt(table, i)
  }

  /** True when the map holds `key`. */
  has(key: K): boolean {
    return this.machine.table.find(this.keyCodec.encodeUnchecked(key)) >= 0
  }

  /**
   * Keys in insertion order (the same on every replica).
   *
   * Gotchas: like a JS Map's, iterators see entries set and deleted while they run, until a `clear`
   * (they stop) or until enough deletions compact the table (they go on over the entries as they
   * were then).
   */
  *keys(): IterableIterator<K> {
    const m = this.machine
    const table = m.table
    for (let i = 0; i < table.end && !table.closed; i++) if (table.isLive(i)) yield m.keyAt(table, i)
  }

  /** Values in the insertion order of their keys. */
  *values(): IterableIterator<V> {
    const m = this.machine
    const table = m.table
    for (let i = 0; i < table.end && !table.closed; i++) if (table.isLive(i)) yield m.valueAt(table, i)
  }

  /** `[key, value]` pairs in insertion order. */
  *entries(): IterableIterator<[K, V]> {
    const m = this.machine
    const table = m.table
    for (let i = 0; i < table.end && !table.closed; i++) {
      if (table.isLive(i)) yield [m.keyAt(table, i), m.valueAt(table, i)]
    }
  }

  /** The same as `entries()`. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries()
  }

  /** Calls `fn` for every entry, in insertion order. */
  forEach(fn: (value: V, key: K) => void): void {
    for (const [key, value] of this.entries()) fn(value, key)
  }
}

/** A replicated Map that this node writes (and votes for). Every mutation resolves with its Version. */
export class MapWriter<K, V> extends MapReader<K, V> {
  /** Inserts or replaces `key`. */
  async set(key: K, value: V, options?: AbortOptions): Promise<Version> {
    const command = ['set', await this.keyCodec.encode(key), await this.valueCodec.encode(value)] as const
    return this.mutate(command, value, options)
  }

  /** Inserts or replaces many entries in one command; an empty input returns the current version. */
  async extend(entries: Iterable<readonly [K, V]>, options?: AbortOptions): Promise<Version> {
    const list = [...entries]
    if (list.length === 0) return this.version
    const encoded = await Promise.all(
      list.map(async ([k, v]) => [await this.keyCodec.encode(k), await this.valueCodec.encode(v)] as const),
    )
    return this.mutate(['extend', encoded], list, options)
  }

  /** Removes `key`. */
  async delete(key: K, options?: AbortOptions): Promise<Version> {
    return this.mutate(['remove', [await this.keyCodec.encode(key)]], key, options)
  }

  /** Removes many keys in one command; an empty input returns the current version. */
  async removeMany(keys: Iterable<K>, options?: AbortOptions): Promise<Version> {
    const list = [...keys]
    if (list.length === 0) return this.version
    const encoded = await Promise.all(list.map((k) => this.keyCodec.encode(k)))
    return this.mutate(['remove', encoded], list, options)
  }

  /**
   * Compare-and-swap on the encoded value: `expected` undefined means "absent", `next` undefined
   * means "delete". A mismatch is a committed no-op (as in mosaik): read the key at the returned
   * version to see which happened.
   */
  async compareExchange(
    key: K,
    expected: V | undefined,
    next: V | undefined,
    options?: AbortOptions,
  ): Promise<Version> {
    const command = [
      'cas',
      await this.keyCodec.encode(key),
      expected === undefined ? null : await this.valueCodec.encode(expected),
      next === undefined ? null : await this.valueCodec.encode(next),
    ] as const
    return this.mutate(command, next, options)
  }

  /** Removes every entry. */
  async clear(options?: AbortOptions): Promise<Version> {
    return this.mutate(['clear'], undefined, options)
  }
}

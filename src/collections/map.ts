import type { Network } from '../network/network.ts'
import type { AbortOptions } from '../primitives/abort.ts'
import { equalBytes } from '../primitives/bytes.ts'
import type { DigestLike, StoreId } from '../primitives/digest.ts'
import {
  bytesKey,
  CollectionHandle,
  CollectionMachine,
  type CollectionOptions,
  Lazy,
  type Role,
  ValueCodec,
  type ValueType,
  type Version,
} from './base.ts'

/** Options of a replicated Map: codecs (and schemas) for keys and values. */
export interface MapOptions<K, V> extends CollectionOptions {
  key?: ValueType<K>
  value?: ValueType<V>
}

type MapCommand =
  | readonly ['set', Uint8Array, Uint8Array]
  | readonly ['extend', (readonly [Uint8Array, Uint8Array])[]]
  | readonly ['remove', Uint8Array[]]
  | readonly ['cas', Uint8Array, Uint8Array | null, Uint8Array | null]
  | readonly ['clear']

interface Slot<K, V> {
  key: Lazy<K>
  value: Lazy<V>
}

/**
 * The Map replica: entries keyed by canonical key bytes, iterated in insertion order (the same on
 * every replica, since every replica applies the same commands in the same order).
 */
export class MapMachine<K, V> extends CollectionMachine<MapCommand> {
  readonly entries = new Map<string, Slot<K, V>>()
  protected readonly arity = 2
  readonly #keys: ValueCodec<K>
  readonly #values: ValueCodec<V>

  constructor(storeId: StoreId, keys: ValueCodec<K>, values: ValueCodec<V>) {
    super('map', storeId)
    this.#keys = keys
    this.#values = values
  }

  applyCommand(c: MapCommand): unknown {
    switch (c[0]) {
      case 'set':
        this.#set(c[1], c[2])
        return
      case 'extend':
        for (const [k, v] of c[1]) this.#set(k, v)
        return
      case 'remove':
        for (const k of c[1]) this.entries.delete(bytesKey(k))
        return
      case 'cas': {
        // Compare-and-swap on encoded bytes: (none, none) no-op; (none, v) insert if absent;
        // (e, v) replace if equal; (e, none) delete if equal. Returns whether it applied.
        const [, k, expected, next] = c
        const id = bytesKey(k)
        const current = this.entries.get(id)
        const matches =
          expected === null
            ? current === undefined
            : current !== undefined && equalBytes(current.value.bytes, expected)
        if (!matches) return false
        if (next === null) this.entries.delete(id)
        else this.#set(k, next)
        return true
      }
      case 'clear':
        this.entries.clear()
        return
    }
  }

  #set(keyBytes: Uint8Array, valueBytes: Uint8Array): void {
    const id = bytesKey(keyBytes)
    const slot = this.entries.get(id)
    const value = new Lazy(valueBytes, this.#values)
    if (slot) slot.value = value
    else this.entries.set(id, { key: new Lazy(keyBytes, this.#keys), value })
  }

  protected snapshotItems(): Uint8Array[][] {
    const out: Uint8Array[][] = []
    for (const s of this.entries.values()) out.push([s.key.bytes, s.value.bytes])
    return out
  }

  protected restoreItems(items: Uint8Array[][]): void {
    this.entries.clear()
    for (const [k, v] of items) this.#set(k!, v!)
  }
}

/** Read access to a replicated Map, on any replica. Reads are synchronous and local. */
export class MapReader<K, V> extends CollectionHandle<MapMachine<K, V>> implements Iterable<[K, V]> {
  protected readonly keyCodec: ValueCodec<K>
  protected readonly valueCodec: ValueCodec<V>

  constructor(net: Network, storeId: DigestLike, role: Role, options: MapOptions<K, V> = {}) {
    const keyCodec = new ValueCodec(options.key)
    const valueCodec = new ValueCodec(options.value)
    super(net, storeId, role, (id) => new MapMachine(id, keyCodec, valueCodec), options)
    this.keyCodec = keyCodec
    this.valueCodec = valueCodec
  }

  get size(): number {
    return this.machine.entries.size
  }

  get isEmpty(): boolean {
    return this.size === 0
  }

  get(key: K): V | undefined {
    return this.#slot(key)?.value.value
  }

  has(key: K): boolean {
    return this.#slot(key) !== undefined
  }

  /** Keys in insertion order (the same on every replica). */
  *keys(): IterableIterator<K> {
    for (const s of this.machine.entries.values()) yield s.key.value
  }

  *values(): IterableIterator<V> {
    for (const s of this.machine.entries.values()) yield s.value.value
  }

  *entries(): IterableIterator<[K, V]> {
    for (const s of this.machine.entries.values()) yield [s.key.value, s.value.value]
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries()
  }

  forEach(fn: (value: V, key: K) => void): void {
    for (const s of this.machine.entries.values()) fn(s.value.value, s.key.value)
  }

  #slot(key: K) {
    // Keys compare by canonical bytes: objects are fine as keys.
    return this.machine.entries.get(bytesKey(this.keyCodec.encodeUnchecked(key)))
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

  async clear(options?: AbortOptions): Promise<Version> {
    return this.mutate(['clear'], undefined, options)
  }
}

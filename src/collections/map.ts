import type { AbortOptions } from '../primitives/abort.ts'
import { type Codec, encodeCanonical } from '../primitives/codec.ts'
import type { DigestLike, StoreId } from '../primitives/digest.ts'
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
import {
  type CommandReader,
  decodeCommand,
  SNAPSHOT_FORMAT,
  scanItems,
  varintLength,
  writeVarint,
} from './machine.ts'
import { keyBytes, Latin1Slicer } from './values.ts'

/** Options of a replicated Map: codecs (and schemas) for keys and values. */
export interface MapOptions<K, V> extends CollectionOptions {
  /** How keys are encoded and validated (default: canonical CBOR); keys compare by their encoded bytes. */
  key?: ValueType<K>
  /** How values are encoded and validated (default: canonical CBOR). */
  value?: ValueType<V>
}

/**
 * A byte string of a command: as writers propose it, or (decoded from the log) already as its
 * `bytesKey` string, which is all the replica keeps of it.
 */
type Bin = Uint8Array | string

type MapCommand =
  | readonly ['set', Bin, Bin]
  | readonly ['extend', (readonly [Bin, Bin])[]]
  | readonly ['remove', Bin[]]
  | readonly ['cas', Bin, Bin | null, Bin | null]
  | readonly ['clear']

/**
 * Map commands: canonical CBOR whose byte strings are read straight into strings, without a general
 * decoder and without a Uint8Array per byte string (see CommandReader).
 */
const mapCommands: Codec<MapCommand> = {
  encode: (c) => encodeCanonical(c.map((x, i) => (i === 0 ? x : binBytes(x)))),
  decode: (bytes) => decodeCommand(bytes, readMapCommand),
}

/** Byte strings held as strings go back to bytes (writers propose bytes: this is for completeness). */
function binBytes(x: unknown): unknown {
  if (typeof x === 'string') return keyBytes(x)
  return Array.isArray(x) ? x.map(binBytes) : x
}

function readMapCommand(r: CommandReader): MapCommand {
  const n = r.head(4)
  const name = r.name()
  if (name === 'set' && n === 3) return ['set', r.bytesString(), r.bytesString()]
  if (name === 'extend' && n === 2) {
    const count = r.head(4)
    const list: (readonly [Bin, Bin])[] = []
    for (let i = 0; i < count; i++) {
      r.array(2)
      list.push([r.bytesString(), r.bytesString()])
    }
    return ['extend', list]
  }
  if (name === 'remove' && n === 2) {
    const count = r.head(4)
    const keys: Bin[] = []
    for (let i = 0; i < count; i++) keys.push(r.bytesString())
    return ['remove', keys]
  }
  if (name === 'cas' && n === 4) return ['cas', r.bytesString(), r.bytesStringOrNull(), r.bytesStringOrNull()]
  if (name === 'clear' && n === 1) return ['clear']
  return r.unusual()
}

/** The `bytesKey` string of a command's byte string. */
const keyOf = (b: Bin): string => (typeof b === 'string' ? b : bytesKey(b))

const NONE: unique symbol = Symbol('none')

/**
 * An entry whose key or value was read as an object: kept so that reads return the same object until
 * the entry changes (as a value decoded once would). Other entries are just their value's bytes.
 */
class Decoded {
  /** The value's canonical bytes, as a `bytesKey` string. */
  readonly bytes: string
  value: unknown
  key: unknown

  constructor(bytes: string, value: unknown, key: unknown) {
    this.bytes = bytes
    this.value = value
    this.key = key
  }
}

/** One entry: its value's canonical bytes as a `bytesKey` string, or those bytes with decoded parts. */
type Slot = string | Decoded

const isObject = (v: unknown): boolean => (typeof v === 'object' && v !== null) || typeof v === 'function'

/**
 * The Map replica: entries keyed by canonical key bytes, iterated in insertion order (the same on
 * every replica, since every replica applies the same commands in the same order). An entry holds
 * only its key's and value's bytes as strings; keys and values are decoded when read, and kept when
 * they decode to objects.
 */
export class MapMachine<K, V> extends CollectionMachine<MapCommand> {
  /** Canonical key bytes (`bytesKey`) to the entry. */
  entries = new Map<string, Slot>()
  readonly codecs = { command: mapCommands }
  protected readonly arity = 2
  /** Whether some entry may keep a decoded key (until then, setting an entry needs no lookup). */
  #keysKept = false
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
        this.#set(keyOf(c[1]), keyOf(c[2]))
        return
      case 'extend':
        for (const [k, v] of c[1]) this.#set(keyOf(k), keyOf(v))
        return
      case 'remove':
        for (const k of c[1]) this.entries.delete(keyOf(k))
        return
      case 'cas': {
        // Compare-and-swap on encoded bytes: (none, none) no-op; (none, v) insert if absent;
        // (e, v) replace if equal; (e, none) delete if equal. Returns whether it applied.
        const [, k, expected, next] = c
        const id = keyOf(k)
        const current = this.entries.get(id)
        const matches =
          expected === null
            ? current === undefined
            : current !== undefined && valueBytes(current) === keyOf(expected)
        if (!matches) return false
        if (next === null) this.entries.delete(id)
        else this.#set(id, keyOf(next))
        return true
      }
      case 'clear':
        this.entries.clear()
        this.#keysKept = false
        return
    }
  }

  #set(id: string, value: string): void {
    if (this.#keysKept) {
      // A key read as an object stays the same object; the value is new.
      const slot = this.entries.get(id)
      if (slot instanceof Decoded && slot.key !== NONE) {
        this.entries.set(id, new Decoded(value, NONE, slot.key))
        return
      }
    }
    this.entries.set(id, value)
  }

  /** The decoded value of the entry `id`, whose slot is `slot`. */
  valueAt(id: string, slot: Slot): V {
    if (slot instanceof Decoded) {
      if (slot.value === NONE) slot.value = this.#values.decodeKey(slot.bytes)
      return slot.value as V
    }
    const value = this.#values.decodeKey(slot)
    if (isObject(value)) this.entries.set(id, new Decoded(slot, value, NONE))
    return value
  }

  /** The decoded key of the entry `id`, whose slot is `slot`. */
  keyAt(id: string, slot: Slot): K {
    if (slot instanceof Decoded) {
      if (slot.key === NONE) {
        slot.key = this.#keys.decodeKey(id)
        this.#keysKept = true
      }
      return slot.key as K
    }
    const key = this.#keys.decodeKey(id)
    if (isObject(key)) {
      this.entries.set(id, new Decoded(slot, NONE, key))
      this.#keysKept = true
    }
    return key
  }

  /** Packs the entries straight from their strings: the same bytes as `packItems` of the items. */
  override snapshot(): Uint8Array {
    let size = 2
    for (const [id, slot] of this.entries) {
      const v = valueBytes(slot)
      size += varintLength(id.length) + id.length + varintLength(v.length) + v.length
    }
    const out = new Uint8Array(size)
    out[0] = SNAPSHOT_FORMAT
    out[1] = this.arity
    let at = 2
    for (const [id, slot] of this.entries) {
      at = writeString(out, at, id)
      at = writeString(out, at, valueBytes(slot))
    }
    return out
  }

  protected snapshotItems(): Uint8Array[][] {
    const out: Uint8Array[][] = []
    for (const [id, slot] of this.entries) out.push([keyBytes(id), keyBytes(valueBytes(slot))])
    return out
  }

  protected override restoreSnapshot(snapshot: Uint8Array): void {
    const entries = new Map<string, Slot>()
    if (snapshot.length > 0) {
      const strings = new Latin1Slicer(snapshot)
      let key: string | undefined
      scanItems(this.arity, snapshot, (start, end) => {
        const s = strings.slice(start, end)
        if (key === undefined) key = s
        else {
          entries.set(key, s)
          key = undefined
        }
      })
    }
    this.entries = entries
    this.#keysKept = false
  }

  protected restoreItems(items: Uint8Array[][]): void {
    this.entries = new Map()
    this.#keysKept = false
    for (const [k, v] of items) this.#set(bytesKey(k!), bytesKey(v!))
  }
}

function valueBytes(slot: Slot): string {
  return typeof slot === 'string' ? slot : slot.bytes
}

function writeString(out: Uint8Array, at: number, s: string): number {
  at = writeVarint(out, at, s.length)
  for (let i = 0; i < s.length; i++) out[at++] = s.charCodeAt(i)
  return at
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
    return this.machine.entries.size
  }

  /** True when the map has no entries. */
  get isEmpty(): boolean {
    return this.size === 0
  }

  /** The value of `key`, or undefined. */
  get(key: K): V | undefined {
    const id = this.#id(key)
    const slot = this.machine.entries.get(id)
    return slot === undefined ? undefined : this.machine.valueAt(id, slot)
  }

  /** True when the map holds `key`. */
  has(key: K): boolean {
    return this.machine.entries.has(this.#id(key))
  }

  /** Keys in insertion order (the same on every replica). */
  *keys(): IterableIterator<K> {
    const m = this.machine
    for (const [id, slot] of m.entries) yield m.keyAt(id, slot)
  }

  /** Values in the insertion order of their keys. */
  *values(): IterableIterator<V> {
    const m = this.machine
    for (const [id, slot] of m.entries) yield m.valueAt(id, slot)
  }

  /** `[key, value]` pairs in insertion order. */
  *entries(): IterableIterator<[K, V]> {
    const m = this.machine
    for (const [id, slot] of m.entries) {
      const key = m.keyAt(id, slot)
      // Reading the key may have replaced the slot: read the value from the current one.
      yield [key, m.valueAt(id, m.entries.get(id) ?? slot)]
    }
  }

  /** The same as `entries()`. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries()
  }

  /** Calls `fn` for every entry, in insertion order. */
  forEach(fn: (value: V, key: K) => void): void {
    const m = this.machine
    for (const [id, slot] of m.entries) {
      const key = m.keyAt(id, slot)
      fn(m.valueAt(id, m.entries.get(id) ?? slot), key)
    }
  }

  #id(key: K): string {
    // Keys compare by canonical bytes: objects are fine as keys.
    return bytesKey(this.keyCodec.encodeUnchecked(key))
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

import type { AbortOptions } from '../primitives/abort.ts'
import type { DigestLike, StoreId } from '../primitives/digest.ts'
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
import type { ByteTable } from './byte-table.ts'
import { type ByteRanges, bytesArg, type CommandReader, commandCodec, listOf, readRanges } from './machine.ts'
import { TableMachine } from './table-machine.ts'
import { keyBytes } from './values.ts'

export interface SetOptions<T> extends CollectionOptions {
  /** How members are encoded and validated (default: canonical CBOR); members compare by encoded bytes. */
  value?: ValueType<T>
}

type SetCommand =
  | readonly ['add', Uint8Array]
  | readonly ['extend', Uint8Array[] | ByteRanges]
  | readonly ['remove', Uint8Array[]]
  | readonly ['clear']

/**
 * Set commands: canonical CBOR whose byte strings are read as views or ranges of the command's bytes,
 * without a general decoder (see CommandReader).
 */
const setCommands = commandCodec<SetCommand>(
  1,
  { add: [bytesArg], extend: [listOf(bytesArg)], remove: [listOf(bytesArg)], clear: [] },
  readSetCommand,
)

function readSetCommand(r: CommandReader): SetCommand {
  const n = r.head(4)
  const name = r.name()
  if (name === 'add' && n === 2) return ['add', r.byteString()]
  if (name === 'extend' && n === 2) return ['extend', readRanges(r, 1)]
  if (name === 'remove' && n === 2) {
    const count = r.head(4)
    const members: Uint8Array[] = []
    for (let i = 0; i < count; i++) members.push(r.byteString())
    return ['remove', members]
  }
  if (name === 'clear' && n === 1) return ['clear']
  return r.unusual()
}

/**
 * The Set replica: members as canonical bytes in a ByteTable of keys alone, in insertion order (the
 * same on every replica). Members are decoded when read, and kept when they decode to objects, so
 * reads return the same object until the member is removed.
 */
export class SetMachine<T> extends TableMachine<SetCommand> {
  readonly codecs = { command: setCommands }
  readonly #codec: ValueCodec<T>

  constructor(storeId: StoreId, codec: ValueCodec<T>) {
    super('set', storeId, 1)
    this.#codec = codec
  }

  applyCommand(c: SetCommand): unknown {
    switch (c[0]) {
      case 'add':
        this.table.set(c[1])
        return
      case 'extend': {
        const t = this.table
        const members = c[1]
        if (Array.isArray(members)) for (const b of members) t.set(b)
        else {
          const { bytes, ranges } = members as ByteRanges
          t.reserve(this.entriesIn(members as ByteRanges), bytes.length)
          for (let j = 0; j < ranges.length; j += 2)
            t.setRanges(bytes, ranges[j]!, ranges[j + 1]!, bytes, 0, 0)
        }
        return
      }
      case 'remove':
        for (const b of c[1]) {
          const i = this.table.find(b)
          if (i >= 0) this.removeAt(i)
        }
        return
      case 'clear':
        this.clearTable()
        return
    }
  }

  /** The decoded member `i` of `table`. */
  memberAt(table: ByteTable, i: number): T {
    return table.decodedKey(i, this.#codec)
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
    return this.machine.table.size
  }

  /** True when the set has no members. */
  get isEmpty(): boolean {
    return this.size === 0
  }

  /** True when `value` is a member (compared by encoded bytes). */
  has(value: T): boolean {
    return this.machine.table.find(this.codec.encodeUnchecked(value)) >= 0
  }

  /** True when every member of this set is in `other` (compared by encoded bytes). */
  isSubsetOf(other: Iterable<T> | SetReader<T>): boolean {
    const ours = this.machine.table
    const theirs: { has(member: string): boolean } =
      other instanceof SetReader
        ? { has: (member) => (other as SetReader<T>).machine.table.find(keyBytes(member)) >= 0 }
        : new Set([...other].map((v) => bytesKey(this.codec.encodeUnchecked(v))))
    for (let i = 0; i < ours.end; i++) if (ours.isLive(i) && !theirs.has(ours.keyString(i))) return false
    return true
  }

  /**
   * The members, in insertion order (the same on every replica).
   *
   * Gotchas: like a JS Set's, iterators see members added and removed while they run, until a `clear`
   * (they stop) or until enough removals compact the table (they go on over the members as they were
   * then).
   */
  *values(): IterableIterator<T> {
    const m = this.machine
    const table = m.table
    for (let i = 0; i < table.end && !table.closed; i++) if (table.isLive(i)) yield m.memberAt(table, i)
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

import { type AbortOptions, raceSignal } from '../primitives/abort.ts'
import type { DigestLike, StoreId } from '../primitives/digest.ts'
import {
  bytesKey,
  CollectionHandle,
  CollectionMachine,
  type CollectionOptions,
  type CollectionRole,
  type CollectionsComponents,
  Lazy,
  packItems,
  unpackItems,
  ValueCodec,
  type ValueType,
  type Version,
} from './base.ts'
import { bytesArg, bytesOrNullArg, commandCodec } from './machine.ts'

export interface CellOptions<T> extends CollectionOptions {
  /** How the value is encoded and validated (default: canonical CBOR, no schema). */
  value?: ValueType<T>
}

type CellCommand =
  | readonly ['write', Uint8Array]
  | readonly ['cas', Uint8Array | null, Uint8Array | null]
  | readonly ['clear']

/** Cell commands: canonical CBOR, read by the strict decoder and refused unless of these shapes. */
const cellCommands = commandCodec<CellCommand>(1, {
  write: [bytesArg],
  cas: [bytesOrNullArg, bytesOrNullArg],
  clear: [],
})

/** The Cell replica (and the Once replica, which keeps only its first write). */
export class CellMachine<T> extends CollectionMachine<CellCommand> {
  readonly codecs = { command: cellCommands }
  current: Lazy<T> | undefined
  readonly #codec: ValueCodec<T>
  readonly #once: boolean

  constructor(storeId: StoreId, codec: ValueCodec<T>, once: boolean) {
    super(once ? 'once' : 'cell', storeId)
    this.#codec = codec
    this.#once = once
  }

  applyCommand(c: CellCommand): unknown {
    switch (c[0]) {
      case 'write':
        // Once: the first committed write wins; later writes commit (and move the version) but change nothing.
        if (this.#once && this.current !== undefined) return false
        this.current = new Lazy(bytesKey(c[1]), this.#codec)
        return true
      case 'cas': {
        if (this.#once) return false
        const [, expected, next] = c
        const matches =
          expected === null
            ? this.current === undefined
            : this.current !== undefined && this.current.text === bytesKey(expected)
        if (!matches) return false
        this.current = next === null ? undefined : new Lazy(bytesKey(next), this.#codec)
        return true
      }
      case 'clear':
        if (!this.#once) this.current = undefined
        return
    }
  }

  /** The value as the one item of one byte string, or no item. */
  override snapshot(): Uint8Array {
    return packItems(1, this.current === undefined ? [] : [[this.current.bytes]])
  }

  protected override restoreSnapshot(snapshot: Uint8Array): void {
    const b = snapshot.length === 0 ? undefined : unpackItems(1, snapshot)[0]?.[0]
    this.current = b === undefined ? undefined : new Lazy(bytesKey(b), this.#codec)
  }
}

/** Read access to a replicated Cell (a single value that may be empty). */
export class CellReader<T> extends CollectionHandle<CellMachine<T>> {
  protected readonly codec: ValueCodec<T>

  constructor(
    net: CollectionsComponents,
    storeId: DigestLike,
    role: CollectionRole,
    options: CellOptions<T> = {},
    once = false,
  ) {
    const codec = new ValueCodec(options.value)
    super(net, storeId, role, (id) => new CellMachine(id, codec, once), options)
    this.codec = codec
  }

  /** The value, or undefined when empty (mosaik's `read`). */
  get(): T | undefined {
    return this.machine.current?.value
  }

  /** The same as `get()`: the value, or undefined when empty. */
  read(): T | undefined {
    return this.get()
  }

  /** True while the cell holds no value. */
  get isEmpty(): boolean {
    return this.machine.current === undefined
  }

  /** True while the cell holds a value. */
  get isSome(): boolean {
    return !this.isEmpty
  }
}

/** A replicated Cell this node writes. */
export class CellWriter<T> extends CellReader<T> {
  /** Replaces the value; resolves with the version it was committed at. */
  async set(value: T, options?: AbortOptions): Promise<Version> {
    return this.mutate(['write', await this.codec.encode(value)], value, options)
  }

  /** mosaik's name for `set`. */
  write(value: T, options?: AbortOptions): Promise<Version> {
    return this.set(value, options)
  }

  /**
   * Compare-and-swap on encoded bytes: `current` undefined means "empty", `next` undefined empties the
   * cell. A mismatch is a committed no-op; read the cell at the returned version to see which happened.
   */
  async compareExchange(
    current: T | undefined,
    next: T | undefined,
    options?: AbortOptions,
  ): Promise<Version> {
    const command = [
      'cas',
      current === undefined ? null : await this.codec.encode(current),
      next === undefined ? null : await this.codec.encode(next),
    ] as const
    return this.mutate(command, next, options)
  }

  /** Empties the cell; resolves with the version it was committed at. */
  clear(options?: AbortOptions): Promise<Version> {
    return this.mutate(['clear'], undefined, options)
  }
}

/** Read access to a replicated Once: a value written at most once. */
export class OnceReader<T> extends CellReader<T> {
  constructor(
    net: CollectionsComponents,
    storeId: DigestLike,
    role: CollectionRole,
    options: CellOptions<T> = {},
  ) {
    super(net, storeId, role, options, true)
  }

  /** Resolves with the value as soon as one has been written (at once if it has). */
  async awaitValue(options?: AbortOptions): Promise<T> {
    while (this.isEmpty) await raceSignal(this.when.updated(options), options?.signal)
    return this.get() as T
  }
}

/** A replicated Once this node writes: the first committed write wins, later ones change nothing. */
export class OnceWriter<T> extends OnceReader<T> {
  /**
   * Writes the value unless one was written before (then nothing changes); resolves with the version
   * the write was committed at.
   */
  async set(value: T, options?: AbortOptions): Promise<Version> {
    return this.mutate(['write', await this.codec.encode(value)], value, options)
  }

  /** mosaik's name for `set`. */
  write(value: T, options?: AbortOptions): Promise<Version> {
    return this.set(value, options)
  }
}

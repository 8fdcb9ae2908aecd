import { ClosedError } from '../../primitives/errors.ts'
import { LogImage } from './log-image.ts'
import type {
  HardState,
  LoadedLog,
  LogEntry,
  LogStore,
  ReadOptions,
  SnapshotMeta,
  WriteBatch,
} from './log-store.ts'

/**
 * The default log store: everything in memory, gone with the process (`durable` is false). Entries are
 * kept as canonical CBOR, exactly as the durable stores keep them, so a test on this store sees the same
 * values (unknown fields kept, `undefined` fields dropped, no aliasing with the caller's objects).
 *
 * Every operation completes synchronously; the returned promises are already settled.
 */
export class MemoryLogStore implements LogStore {
  readonly durable = false
  readonly #image = new LogImage()
  #closed = false

  /** A new, empty store. */
  static async open(): Promise<MemoryLogStore> {
    return new MemoryLogStore()
  }

  async load(): Promise<LoadedLog> {
    this.#checkOpen()
    return this.#image.load()
  }

  firstIndex(): number {
    return this.#image.view.firstIndex()
  }

  lastIndex(): number {
    return this.#image.view.lastIndex()
  }

  term(index: number): number | undefined {
    return this.#image.view.term(index)
  }

  async entries(from: number, to: number, options?: ReadOptions): Promise<LogEntry[]> {
    this.#checkOpen()
    return this.#image.read(from, to, options?.maxBytes)
  }

  hardState(): HardState {
    return this.#image.hardState()
  }

  snapshot(): SnapshotMeta | undefined {
    return this.#image.snapshotMeta()
  }

  async readSnapshot(): Promise<
    | {
        /** What the snapshot covers. */
        meta: SnapshotMeta
        /** The state machine's snapshot bytes. */
        data?: Uint8Array
      }
    | undefined
  > {
    this.#checkOpen()
    return this.#image.readSnapshot()
  }

  async write(batch: WriteBatch): Promise<void> {
    this.#checkOpen()
    this.#image.write(batch)
  }

  append(entries: readonly LogEntry[]): Promise<void> {
    return this.write({ entries })
  }

  truncateFrom(index: number): Promise<void> {
    return this.write({ truncateFrom: index })
  }

  saveHardState(state: HardState): Promise<void> {
    return this.write({ hardState: state })
  }

  async saveSnapshot(meta: SnapshotMeta, data?: Uint8Array): Promise<void> {
    this.#checkOpen()
    this.#image.saveSnapshot(meta, data)
  }

  async installSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void> {
    this.#checkOpen()
    this.#image.installSnapshot(meta, data)
  }

  async compact(upToIndex: number): Promise<void> {
    this.#checkOpen()
    this.#image.compact(upToIndex)
  }

  async reset(): Promise<void> {
    this.#checkOpen()
    this.#image.reset()
  }

  async close(): Promise<void> {
    this.#closed = true
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError('log store is closed')
  }
}

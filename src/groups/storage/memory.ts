import { decodeCanonical, encodeCanonical } from '../../primitives/codec.ts'
import { ClosedError } from '../../primitives/errors.ts'
import type {
  HardState,
  LoadedLog,
  LogEntry,
  LogStore,
  ReadOptions,
  SnapshotMeta,
  WriteBatch,
} from './log-store.ts'
import {
  checkHardState,
  checkIndex,
  checkSnapshotData,
  checkSnapshotMeta,
  decodeEntry,
  encodeEntry,
  hardStateAfterInstall,
  initialHardState,
} from './log-store.ts'
import { LogView } from './log-view.ts'

/**
 * The default log store: everything in memory, gone with the process (`durable` is false). Entries are
 * kept as canonical CBOR, exactly as the durable stores keep them, so a test on this store sees the same
 * values (unknown fields kept, `undefined` fields dropped, no aliasing with the caller's objects).
 *
 * Every operation completes synchronously; the returned promises are already settled.
 */
export class MemoryLogStore implements LogStore {
  readonly durable = false
  #view = new LogView<Uint8Array>()
  #hardState: Uint8Array = encodeCanonical(initialHardState())
  #snapshot: { meta: SnapshotMeta; data?: Uint8Array } | undefined
  #closed = false

  static async open(): Promise<MemoryLogStore> {
    return new MemoryLogStore()
  }

  async load(): Promise<LoadedLog> {
    this.#checkOpen()
    const out: LoadedLog = { hardState: this.hardState(), entries: this.#read(1, Number.MAX_SAFE_INTEGER) }
    if (this.#snapshot !== undefined) {
      out.snapshot = structuredClone(this.#snapshot.meta)
      if (this.#snapshot.data !== undefined) out.snapshotData = this.#snapshot.data.slice()
    }
    return out
  }

  firstIndex(): number {
    return this.#view.firstIndex()
  }

  lastIndex(): number {
    return this.#view.lastIndex()
  }

  term(index: number): number | undefined {
    return this.#view.term(index)
  }

  async entries(from: number, to: number, options?: ReadOptions): Promise<LogEntry[]> {
    this.#checkOpen()
    return this.#read(from, to, options?.maxBytes)
  }

  hardState(): HardState {
    return decodeCanonical(this.#hardState) as HardState
  }

  snapshot(): SnapshotMeta | undefined {
    return this.#snapshot === undefined ? undefined : structuredClone(this.#snapshot.meta)
  }

  async readSnapshot(): Promise<{ meta: SnapshotMeta; data?: Uint8Array } | undefined> {
    this.#checkOpen()
    const s = this.#snapshot
    if (s === undefined) return undefined
    const out: { meta: SnapshotMeta; data?: Uint8Array } = { meta: structuredClone(s.meta) }
    if (s.data !== undefined) out.data = s.data.slice()
    return out
  }

  async write(batch: WriteBatch): Promise<void> {
    this.#checkOpen()
    const { hardState, truncateFrom, entries } = batch
    if (truncateFrom !== undefined) checkIndex(truncateFrom, 'truncateFrom')
    if (hardState !== undefined) checkHardState(hardState)
    this.#view.checkWrite(entries, truncateFrom)
    // encode everything before changing anything, so a value that cannot be encoded changes nothing
    const encoded = entries?.map(encodeEntry) ?? []
    const hs = hardState === undefined ? undefined : encodeCanonical(hardState)
    if (truncateFrom !== undefined) this.#view.truncateFrom(truncateFrom)
    for (let i = 0; i < encoded.length; i++) this.#view.push(entries![i]!.term, encoded[i]!)
    if (hs !== undefined) this.#hardState = hs
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
    checkSnapshotMeta(meta)
    const stored: { meta: SnapshotMeta; data?: Uint8Array } = {
      meta: decodeCanonical(encodeCanonical(meta)) as SnapshotMeta,
    }
    if (data !== undefined) stored.data = data.slice()
    this.#snapshot = stored
  }

  async installSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void> {
    this.#checkOpen()
    checkSnapshotMeta(meta)
    checkSnapshotData(data)
    // everything is encoded and copied before anything changes
    const stored = { meta: decodeCanonical(encodeCanonical(meta)) as SnapshotMeta, data: data.slice() }
    const hs = encodeCanonical(hardStateAfterInstall(this.hardState(), meta))
    this.#snapshot = stored
    this.#view.resetTo(meta.index, meta.term)
    this.#hardState = hs
  }

  async compact(upToIndex: number): Promise<void> {
    this.#checkOpen()
    checkIndex(upToIndex, 'upToIndex')
    const snap = this.#snapshot?.meta
    this.#view.compact(upToIndex, snap !== undefined && snap.index === upToIndex ? snap.term : undefined)
  }

  async reset(): Promise<void> {
    this.#checkOpen()
    this.#view = new LogView<Uint8Array>()
    this.#hardState = encodeCanonical(initialHardState())
    this.#snapshot = undefined
  }

  async close(): Promise<void> {
    this.#closed = true
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  #read(from: number, to: number, maxBytes = Number.POSITIVE_INFINITY): LogEntry[] {
    const { first, last } = this.#view.clamp(from, to)
    const out: LogEntry[] = []
    let bytes = 0
    for (let i = first; i <= last; i++) {
      const b = this.#view.item(i)!
      if (out.length > 0 && bytes + b.length > maxBytes) break
      bytes += b.length
      out.push(decodeEntry(b, i))
    }
    return out
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError('log store is closed')
  }
}

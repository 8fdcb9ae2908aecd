import { decodeCanonical, encodeCanonical } from '../../primitives/codec.ts'
import type { HardState, LoadedLog, LogEntry, SnapshotMeta, WriteBatch } from './log-store.ts'
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

/** A snapshot as a store keeps it: its meta, and its payload when one was saved. */
export interface StoredSnapshot {
  meta: SnapshotMeta
  data?: Uint8Array
}

/** What a change to the image did, for a store that must also write it somewhere. */
export interface WriteEffect {
  /** The log was cut at `truncateFrom` (it reached that far). */
  truncated: boolean
  /** The encoded entries appended, in order. */
  encoded: Uint8Array[]
}

/**
 * A whole log held in memory: entries as canonical CBOR in a LogView, the hard state and the snapshot,
 * with the LogStore's checks and its all-or-nothing writes. The memory store is this image alone; the
 * IndexedDB store keeps one as its read view and writes each change behind it.
 *
 * `own` turns a fresh encoding into what the image keeps (the IndexedDB store needs buffers of exactly
 * their length; the memory store keeps the encoder's output as it is).
 */
export class LogImage {
  view: LogView<Uint8Array>
  snapshot: StoredSnapshot | undefined
  readonly #own: (bytes: Uint8Array) => Uint8Array
  /**
   * The hard state, a copy of what was written. Its encoding is made only when a store asks for it:
   * the commit index in it moves with every commit, and the memory store never needs the bytes.
   */
  #hardState: HardState
  #hardStateBytes: Uint8Array | undefined

  constructor(
    own: (bytes: Uint8Array) => Uint8Array = (b) => b,
    state?: { view: LogView<Uint8Array>; hardState: Uint8Array; snapshot?: StoredSnapshot },
  ) {
    this.#own = own
    this.view = state?.view ?? new LogView<Uint8Array>()
    if (state === undefined) {
      this.#hardState = initialHardState()
    } else {
      // Decoding already gives the image its own copy.
      this.#hardState = decodeCanonical(state.hardState) as HardState
      this.#hardStateBytes = state.hardState
    }
    this.snapshot = state?.snapshot
  }

  /** The hard state as canonical CBOR, as the store keeps it. */
  get hardStateBytes(): Uint8Array {
    this.#hardStateBytes ??= this.#own(encodeCanonical(this.#hardState))
    return this.#hardStateBytes
  }

  /** Keeps `hs`, which must be the store's own copy (see copyHardState). */
  #keepHardState(hs: HardState): void {
    this.#hardState = hs
    this.#hardStateBytes = undefined
  }

  // ---- reads -----------------------------------------------------------------------------------

  load(): LoadedLog {
    const out: LoadedLog = { hardState: this.hardState(), entries: this.read(1, Number.MAX_SAFE_INTEGER) }
    const s = this.snapshot
    if (s !== undefined) {
      out.snapshot = structuredClone(s.meta)
      if (s.data !== undefined) out.snapshotData = s.data.slice()
    }
    return out
  }

  hardState(): HardState {
    return copyHardState(this.#hardState)
  }

  snapshotMeta(): SnapshotMeta | undefined {
    return this.snapshot === undefined ? undefined : structuredClone(this.snapshot.meta)
  }

  readSnapshot(): StoredSnapshot | undefined {
    const s = this.snapshot
    if (s === undefined) return undefined
    const out: StoredSnapshot = { meta: structuredClone(s.meta) }
    if (s.data !== undefined) out.data = s.data
    return out
  }

  read(from: number, to: number, maxBytes = Number.POSITIVE_INFINITY): LogEntry[] {
    const { first, last } = this.view.clamp(from, to)
    const out: LogEntry[] = []
    let bytes = 0
    for (let i = first; i <= last; i++) {
      const b = this.view.item(i)!
      if (out.length > 0 && bytes + b.length > maxBytes) break
      bytes += b.length
      out.push(decodeEntry(b, i))
    }
    return out
  }

  // ---- changes: each checks and encodes everything before it changes anything -------------------

  write(batch: WriteBatch): WriteEffect {
    const { hardState, truncateFrom, entries } = batch
    if (truncateFrom !== undefined) checkIndex(truncateFrom, 'truncateFrom')
    if (hardState !== undefined) checkHardState(hardState)
    this.view.checkWrite(entries, truncateFrom)
    const encoded = entries?.map((e) => this.#own(encodeEntry(e))) ?? []
    const hs = hardState === undefined ? undefined : copyHardState(hardState)
    const truncated = truncateFrom !== undefined && truncateFrom <= this.view.lastIndex()
    if (truncated) this.view.truncateFrom(truncateFrom)
    for (let i = 0; i < encoded.length; i++) this.view.push(entries![i]!.term, encoded[i]!)
    if (hs !== undefined) this.#keepHardState(hs)
    return { truncated, encoded }
  }

  saveSnapshot(meta: SnapshotMeta, data?: Uint8Array): StoredSnapshot {
    checkSnapshotMeta(meta)
    if (data !== undefined) checkSnapshotData(data)
    const stored: StoredSnapshot = { meta: decodeCanonical(encodeCanonical(meta)) as SnapshotMeta }
    if (data !== undefined) stored.data = data
    this.snapshot = stored
    return stored
  }

  installSnapshot(meta: SnapshotMeta, data: Uint8Array): StoredSnapshot & { data: Uint8Array } {
    checkSnapshotMeta(meta)
    checkSnapshotData(data)
    const stored = { meta: decodeCanonical(encodeCanonical(meta)) as SnapshotMeta, data }
    const hs = copyHardState(hardStateAfterInstall(this.hardState(), meta))
    this.snapshot = stored
    this.view.resetTo(meta.index, meta.term)
    this.#keepHardState(hs)
    return stored
  }

  /** Drops entries up to `upToIndex`; false when nothing changed. */
  compact(upToIndex: number): boolean {
    checkIndex(upToIndex, 'upToIndex')
    const snap = this.snapshot?.meta
    return this.view.compact(
      upToIndex,
      snap !== undefined && snap.index === upToIndex ? snap.term : undefined,
    )
  }

  reset(): void {
    this.view = new LogView<Uint8Array>()
    this.#keepHardState(initialHardState())
    this.snapshot = undefined
  }
}

const HARD_STATE_FIELDS = new Set(['term', 'vote', 'commit', 'abstained'])

/**
 * A copy of a checked hard state, equal to what encoding and decoding it would give: its known fields
 * hold only numbers, strings, booleans and null, so a plain copy does; anything else (fields a later
 * version added) takes the round trip through canonical CBOR.
 */
function copyHardState(hs: HardState): HardState {
  if (Object.getPrototypeOf(hs) !== Object.prototype) return roundTrip(hs)
  for (const key of Object.keys(hs)) if (!HARD_STATE_FIELDS.has(key)) return roundTrip(hs)
  const out: HardState = { term: hs.term, vote: hs.vote, commit: hs.commit }
  if (hs.abstained !== undefined) out.abstained = hs.abstained
  return out
}

function roundTrip(hs: HardState): HardState {
  return decodeCanonical(encodeCanonical(hs)) as HardState
}

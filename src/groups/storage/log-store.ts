import { decodeCanonical, encodeCanonical } from '../../primitives/codec.ts'
import { InvalidArgumentError, MosaikError } from '../../primitives/errors.ts'
import type { HardState, MembershipConfig, SnapshotMeta } from '../raft/types.ts'

/** The Raft core's persisted vocabulary, as stores see it. */
export type { HardState, MembershipConfig, SnapshotMeta }

/**
 * Where a group worker keeps what a Raft node must not forget across restarts: its hard state (term,
 * vote, commit), its latest snapshot, and the log entries after it. The core is written against this
 * interface; `MemoryLogStore` is the default, `FileLogStore` (platform/node) the durable one for Node and
 * an IndexedDB store the one for browsers.
 *
 * Model. The log holds the contiguous entries `firstIndex() ..= lastIndex()`; everything at or before
 * `firstIndex() - 1` has been compacted away (and is covered by a snapshot). The log is 1-based: an empty,
 * never-compacted log has `firstIndex() === 1`, `lastIndex() === 0` and `term(0) === 0`.
 *
 * Ordering and durability. Every mutation takes effect on the store's view (`lastIndex`, `term`,
 * `entries`, ...) at once, in call order, so the worker can pipeline: issue batch N+1 while batch N is
 * still being made durable. The returned promise resolves once the mutation is durable (for a durable
 * store: written and fsynced), and promises resolve in call order, so a resolved write implies that every
 * earlier one is durable too. One exception, etcd's: a batch whose only change is a hard state that
 * raises `commit` (same term and vote) may resolve once written, before it is fsynced; the next
 * durable write, or a barrier, covers it. After a crash such a store may hold an older commit index, which the leader
 * tells the member again; entries, terms and votes are never lost. A rejected validation (a gap in the
 * log, a bad index) changes nothing. An I/O failure poisons the store: that operation and every later
 * one reject with a `StorageError`, and the node must restart from what is on disk.
 *
 * Entries, hard state and snapshot metadata are stored as canonical CBOR, so fields this version does
 * not know about survive a round trip.
 */
export interface LogStore {
  /**
   * True when a resolved mutation survives a crash of the process (and, with fsync, of the machine).
   * Raft's safety rests on it: a voter that comes back under the same peer id must find its vote and the
   * entries it acknowledged, or it could vote twice in a term or count towards a quorum for entries it
   * lost. A store that is not durable may only back a member whose peer id does not outlive the store (a
   * fresh identity per start) or one that never votes (an observer).
   */
  readonly durable: boolean

  /** Everything a restarting node needs: hard state, latest snapshot (with its payload) and the log. */
  load(): Promise<LoadedLog>

  /** The index of the first entry still in the log (the compaction point + 1). */
  firstIndex(): number
  /** The index of the last entry, or the compaction point when the log is empty. */
  lastIndex(): number
  /**
   * The term of the entry at `index`; for the compaction point itself the term of the entry that was
   * there (or of the snapshot that covers it). Undefined for compacted indices, for indices past the end,
   * and for a compaction point whose term is unknown (the log was compacted past its end without a
   * snapshot at that index).
   */
  term(index: number): number | undefined
  /**
   * The entries `from ..= to` (inclusive, like mosaik's `get_range`), clamped to the entries still in
   * the log: compacted indices and indices past the end are left out, so `entries(1, 4)` after
   * `compact(2)` yields 3 and 4. With `maxBytes`, the encoded sizes of the entries returned add up to at
   * most `maxBytes`, except that the first entry in range is always returned.
   */
  entries(from: number, to: number, options?: ReadOptions): Promise<LogEntry[]>
  /** The current hard state (a fresh copy). */
  hardState(): HardState
  /** The metadata of the latest snapshot saved, if any. */
  snapshot(): SnapshotMeta | undefined
  /** The latest snapshot and its payload, if any (the payload may be the stored bytes: do not modify). */
  readSnapshot(): Promise<
    | {
        /** What the snapshot covers. */
        meta: SnapshotMeta
        /** The state machine's snapshot bytes. */
        data?: Uint8Array
      }
    | undefined
  >

  /**
   * Persists one Raft "Ready" batch with a single fsync: truncation first (drop entries ≥
   * `truncateFrom`), then the entries (which must continue the log after the truncation), then the hard
   * state. The batch is one checksummed record on disk: after a crash it is there whole or not at all.
   * An empty batch resolves once every earlier write is durable (a barrier).
   */
  write(batch: WriteBatch): Promise<void>
  /** Appends entries; the first must have index `lastIndex() + 1` and the rest follow it. */
  append(entries: readonly LogEntry[]): Promise<void>
  /**
   * Drops the entries with index ≥ `index`. A no-op past the end; at or before the compaction point it
   * empties the log (which then restarts after the compaction point).
   */
  truncateFrom(index: number): Promise<void>
  /** Persists the hard state (term, vote, commit). */
  saveHardState(state: HardState): Promise<void>
  /**
   * Saves a snapshot (replacing the previous one), written atomically. It does not compact the log: call
   * `compact(meta.index)` (or lower, to keep a tail for lagging followers) afterwards. Unlike entries,
   * `data` may be kept as given, not copied: it is a whole state (megabytes), and nobody modifies it
   * afterwards (see `StateMachine.snapshot`).
   */
  saveSnapshot(meta: SnapshotMeta, data?: Uint8Array): Promise<void>
  /**
   * Installs a snapshot received from a peer, in one atomic durable step: `meta` and `data` become the
   * store's snapshot (replacing the previous one), every log entry is dropped so that the log is empty and
   * continues after the snapshot (`firstIndex() === meta.index + 1`, `lastIndex() === meta.index`,
   * `term(meta.index) === meta.term`), and the hard state's `commit` becomes `max(commit, meta.index)`
   * (term, vote and any other field unchanged). All of it takes effect on the view at once, like every
   * other mutation, and is ordered with them: writes issued before it are durable (or dropped with the log)
   * before it, writes issued after it continue the new log and resolve after it. After a crash at any
   * point, `load()` returns either everything as it was before the call or everything as it is after it,
   * never a snapshot with the old log or a log without its snapshot. The snapshot may lie before, inside
   * or past the current log; entries after `meta.index` are dropped too, whatever their term (they may
   * conflict with the leader that sent the snapshot). A bad `meta` or `data` rejects with
   * `InvalidArgumentError` and changes nothing. `data` may be kept as given, like `saveSnapshot`'s.
   *
   * Use it instead of `saveSnapshot` + `compact` + `truncateFrom` when the snapshot did not come from this
   * log: three durable steps would leave a store whose snapshot and log disagree if the node crashed
   * between them. (A snapshot taken locally agrees with the log, so `saveSnapshot` then `compact` is safe.)
   */
  installSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void>
  /**
   * Drops the entries with index ≤ `upToIndex`. Idempotent; `compact(0)` or compacting behind the
   * current point is a no-op. Past the last index it empties the log, which then restarts at
   * `upToIndex + 1`; the term of `upToIndex` is then taken from the snapshot at that index, if any.
   * A durable store writes the compaction after any pending `saveSnapshot`.
   */
  compact(upToIndex: number): Promise<void>
  /** Wipes everything (hard state, snapshot, log): the node is about to join a different cluster. */
  reset(): Promise<void>
  /** Waits for pending writes, then releases the store. Later calls reject with `ClosedError`. */
  close(): Promise<void>
  /** Closes the store, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>
}

export type LogEntryKind = 'command' | 'noop' | 'config'

/** One entry of the replicated log, as a LogStore persists it. */
export interface LogEntry {
  /** The entry's position in the log (from 1). */
  index: number
  /** The term of the leader that appended it. */
  term: number
  /** A client command, a leader's no-op at the start of its term, or a voter-set change. */
  kind: LogEntryKind
  /** The encoded command (kind 'command'). */
  data?: Uint8Array
  /** The new voter set (kind 'config'). */
  config?: MembershipConfig
  /** The id of the cluster (one bootstrap of the group) whose log holds it. */
  clusterId?: string
}

/** What `LogStore.open` recovers: the hard state, the latest snapshot and the entries after it. */
export interface LoadedLog {
  /** The persisted hard state (the initial one for a new store). */
  hardState: HardState
  /** The latest snapshot, if any. */
  snapshot?: SnapshotMeta
  /** Its payload. */
  snapshotData?: Uint8Array
  /** The entries after the snapshot, in order. */
  entries: LogEntry[]
}

export interface WriteBatch {
  hardState?: HardState
  truncateFrom?: number
  entries?: readonly LogEntry[]
}

export interface ReadOptions {
  /** A budget for the encoded size of the entries returned (the first one is returned regardless). */
  maxBytes?: number
}

/** The hard state of a node that has never voted. */
export function initialHardState(): HardState {
  return { term: 0, vote: null, commit: 0 }
}

/** A log store could not read or write its backing storage. */
export class StorageError extends MosaikError {
  constructor(message: string, options?: ErrorOptions, code = 'STORAGE') {
    super(code, message, options)
  }
}

/** Stored data failed its checksum or does not decode, somewhere a torn write cannot explain. */
export class CorruptLogError extends StorageError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options, 'CORRUPT_LOG')
  }
}

// ---------------------------------------------------------------------------------------------------
// Shared by the implementations: validation and the canonical encoding of entries and metadata.

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

export function checkIndex(n: unknown, what: string): number {
  if (!isIndex(n))
    throw new InvalidArgumentError(`${what} must be a non-negative safe integer, got ${String(n)}`)
  return n
}

/** Checks that `entries` are well-formed and contiguous, starting at `first`. */
export function checkEntries(entries: readonly LogEntry[], first: number): void {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!
    if (e === null || typeof e !== 'object') throw new InvalidArgumentError('a log entry must be an object')
    if (e.index !== first + i) {
      throw new InvalidArgumentError(
        `log entries must be contiguous: expected index ${first + i}, got ${String(e.index)}` +
          (i === 0 ? ' (the first entry must follow the last index)' : ''),
      )
    }
    if (!isIndex(e.term))
      throw new InvalidArgumentError(`entry ${e.index} has an invalid term ${String(e.term)}`)
    if (typeof e.kind !== 'string') throw new InvalidArgumentError(`entry ${e.index} has no kind`)
  }
}

export function checkHardState(hs: HardState): void {
  if (hs === null || typeof hs !== 'object') throw new InvalidArgumentError('hard state must be an object')
  checkIndex(hs.term, 'hardState.term')
  checkIndex(hs.commit, 'hardState.commit')
  if (hs.vote !== null && typeof hs.vote !== 'string') {
    throw new InvalidArgumentError('hardState.vote must be a string or null')
  }
  if (hs.abstained !== undefined && typeof hs.abstained !== 'boolean') {
    throw new InvalidArgumentError('hardState.abstained must be a boolean when present')
  }
}

export function checkSnapshotMeta(meta: SnapshotMeta): void {
  if (meta === null || typeof meta !== 'object')
    throw new InvalidArgumentError('snapshot meta must be an object')
  checkIndex(meta.index, 'snapshot.index')
  checkIndex(meta.term, 'snapshot.term')
  if (meta.config === null || typeof meta.config !== 'object' || !Array.isArray(meta.config.voters)) {
    throw new InvalidArgumentError('snapshot.config.voters must be an array')
  }
}

export function checkSnapshotData(data: unknown): asserts data is Uint8Array {
  if (!(data instanceof Uint8Array)) throw new InvalidArgumentError('snapshot data must be a Uint8Array')
}

/** The hard state after installing the snapshot `meta`: commit raised to its index, the rest kept. */
export function hardStateAfterInstall(hs: HardState, meta: SnapshotMeta): HardState {
  return hs.commit >= meta.index ? hs : { ...hs, commit: meta.index }
}

export function encodeEntry(entry: LogEntry): Uint8Array {
  return encodeCanonical(entry)
}

/** Decodes a stored entry; `expectedIndex` guards against reading the wrong bytes. */
export function decodeEntry(bytes: Uint8Array, expectedIndex?: number): LogEntry {
  let value: unknown
  try {
    value = decodeCanonical(bytes)
  } catch (err) {
    throw new CorruptLogError(`stored log entry ${expectedIndex ?? '?'} does not decode`, { cause: err })
  }
  const e = value as LogEntry
  if (e === null || typeof e !== 'object' || !isIndex(e.index) || !isIndex(e.term)) {
    throw new CorruptLogError(`stored log entry ${expectedIndex ?? '?'} is not a log entry`)
  }
  if (expectedIndex !== undefined && e.index !== expectedIndex) {
    throw new CorruptLogError(`stored log entry ${expectedIndex} carries index ${e.index}`)
  }
  return e
}

/** A deep copy through the canonical codec: what a store hands out is never shared with the caller. */
export function cloneValue<T>(value: T): T {
  return decodeCanonical(encodeCanonical(value)) as T
}

import { resolve } from 'node:path'
import type {
  HardState,
  LoadedLog,
  LogEntry,
  LogStore,
  ReadOptions,
  SnapshotMeta,
  WriteBatch,
} from '../../src/groups/storage/log-store.ts'
import { decodeEntry, StorageError } from '../../src/groups/storage/log-store.ts'
import { ClosedError, InvalidArgumentError } from '../../src/primitives/errors.ts'
import { type DirLock, lockDir } from './dir-lock.ts'
import { Flusher, type Job } from './file-log-store/flusher.ts'
import { type EntryLoc, MiB, readSnapshotFile } from './file-log-store/format.ts'
import { LogState } from './file-log-store/log-state.ts'
import { EntryCache, readMissing, releaseReader } from './file-log-store/reads.ts'
import { type Recovered, recover } from './file-log-store/recovery.ts'
import { SnapshotWrites, writeSnapshotFile } from './file-log-store/snapshots.ts'

/** Options of FileLogStore.open. */
export interface FileLogStoreOptions {
  /**
   * fsync (fdatasync) before a write resolves, and around file creation and renames (default true).
   * Without it a resolved write survives the process being killed, but not the machine losing power
   * (`durable` stays true: it speaks of the process).
   */
  fsync?: boolean
  /** A segment is closed and the next one started once it holds this many bytes (default 64 MiB). */
  segmentSize?: number
  /** Recently written entries kept in memory, so the leader's reads of its tail skip the disk (default 16 MiB). */
  cacheBytes?: number
}

/**
 * A durable log store for Node: a directory of append-only, checksummed segment files plus a snapshot
 * file. It never loses an acknowledged write silently: what recovery cannot explain as a torn final write
 * is refused with `CorruptLogError`, naming the file and byte.
 *
 * Directory layout:
 * - `0000000000000001.seg`, `...2.seg`, ...: segments, numbered without gaps. Each is a sequence of
 *   records `[u32 payload length][u32 crc32 of type+payload][u8 type][payload]` (little-endian):
 *   - `1` HEADER, always first: CBOR `{ v: 1, seq, last, lastTerm, compacted, compactedTerm, hs, snap? }`,
 *     the state of the log when the segment was started (`hs` is the CBOR of the hard state, `snap` the
 *     index of a snapshot the log was compacted against). Replay starts from the first segment's header,
 *     so older segments can be deleted whole; every later header repeats the state the segment before
 *     it ended with, which catches records missing at the end of a segment.
 *   - `2` BATCH, one per `write`: `[u32 meta length][meta: CBOR { i?: first index, n?: count,
 *     t?: truncateFrom, h?: hard state CBOR }]` then, per entry, `[u32 length][f64 term][entry CBOR]`
 *     (the term is outside the CBOR so that replay need not decode entries). Replay applies the
 *     truncation, then the entries, then the hard state: a batch is all there or not at all.
 *   - `3` COMPACT: CBOR `{ upTo, term, s? }`; `s` is the index of the snapshot saved when it was written.
 * - `snapshot`: one record, replaced atomically (written to `snapshot.tmp`, fsynced, renamed over,
 *   directory fsynced):
 *   - `4` SNAPSHOT, from `saveSnapshot`: CBOR `{ m: meta, d?: data }`.
 *   - `5` INSTALLED, from `installSnapshot`: CBOR `{ m: meta, d: data, seg, hs }`: the log was replaced
 *     by the empty log after `m.index` with hard state `hs`, and it lives in segments `seg` and later;
 *     every segment numbered below `seg` belongs to the replaced log.
 * - `MANIFEST`: one record `6` CBOR `{ v: 1, top }`, replaced atomically like `snapshot` each time a
 *   segment is created, once that segment's header is durable: `top` is the highest segment number. It
 *   tells a store whose segments were deleted from a new one, and a log whose last segments were deleted
 *   from a shorter one. A directory without it (written before it existed) opens as before and gets one.
 * - `RESET`: present only while a `reset()` runs; on open it means "finish wiping".
 * - `LOCK`: held while the store is open (see dir-lock.ts); a second opener, in this process or another,
 *   gets `DataDirLockedError`. A lock left by a process that died is taken over at once.
 *
 * Writes are group-committed: while one batch is being written and fsynced, later batches queue, and the
 * next flush writes all of them with one `write` and one fdatasync. A segment is fsynced before the next
 * one is created, so only the last segment can have a torn tail. Snapshot files are written beside the
 * log, not in its queue: a log write issued after `saveSnapshot` may reach the disk first, but it
 * resolves after the snapshot; `compact` and `reset` wait for earlier snapshots before they are written
 * (so a `compact` issued before its snapshot resolved holds up the writes queued behind it: await the
 * snapshot first). After any I/O error the store writes nothing more and fails every call with that
 * `StorageError`: it no longer knows what reached the disk.
 *
 * Recovery on open (file-log-store/recovery.ts): segments are replayed in order. Only the tail of the
 * final flush can be torn, and it was never acknowledged (a write resolves after its fsync): in the last
 * segment, a record that is short or fails its checksum is cut off with everything after it, but only if
 * no valid record begins anywhere after it (scanned byte by byte, like etcd's WAL). A valid record after
 * it means the damage is not a torn tail, and it is refused. That also refuses a power loss in which the
 * disk wrote later sectors of the (unacknowledged) final flush but not earlier ones: a false alarm that
 * costs the operator a restore from the other members, where cutting could drop acknowledged records
 * after a flipped bit. A last segment whose header is torn is removed if the manifest does not list it.
 * Refused as well: a bad record anywhere else, a bad snapshot or manifest, a segment missing in the
 * middle (a gap), at the end (below the manifest's `top`) or at the start (its entries were not
 * compacted), a segment renamed (its header names another number), a missing snapshot that a
 * COMPACT record or header says the log was compacted against, and what a later version may have
 * written: a header or manifest whose `v` is not 1, a record of a type this version does not know
 * (even at the tail, or first in a segment the manifest does not list: it passed its checksum, so it
 * is not torn).
 *
 * Compaction appends a COMPACT record, then deletes the oldest segments whose successor starts at or
 * below the compaction point. Compacted entries in the remaining first segment are skipped on replay,
 * not rewritten.
 *
 * Installing a snapshot is one rename: once every earlier write is durable, the INSTALLED snapshot file
 * naming the next segment number `seg` replaces `snapshot`; that rename is the commit point. Then segment
 * `seg` is created with a header describing the new state (empty log after the snapshot, the new hard
 * state), and the older segments are deleted. On open, an INSTALLED snapshot makes recovery delete the
 * segments below `seg` first; when no segment from `seg` on survived, the log is rebuilt from the
 * snapshot file alone (its `m` and `hs`) and segment `seg` is created. A crash before the rename leaves
 * the old snapshot and the old segments (a stray `snapshot.tmp` is removed on open): the old state. A
 * crash after it leaves the new snapshot, and whatever old segments survived are ignored: the new state.
 */
export class FileLogStore implements LogStore {
  readonly durable = true
  /** The absolute path of the store's directory. */
  readonly dir: string
  readonly #fsync: boolean

  // The log as callers see it, and where its records go: every mutation is applied there at call time.
  readonly #log: LogState

  // The flusher: the only code that writes segments, one group of queued jobs at a time.
  readonly #flusher: Flusher

  // Snapshot files are written off the hot path; compactions and resets wait for them.
  readonly #snaps = new SnapshotWrites()

  // Entries whose bytes are still in memory, oldest first (unwritten ones are never evicted).
  readonly #cache: EntryCache

  #failed: StorageError | undefined
  #closing: Promise<void> | undefined
  readonly #lock: DirLock

  private constructor(init: Recovered, options: Required<FileLogStoreOptions>, lock: DirLock) {
    this.dir = init.dir
    this.#lock = lock
    this.#fsync = options.fsync
    this.#cache = new EntryCache(options.cacheBytes)
    this.#log = new LogState(init, options.segmentSize, this.#cache)
    this.#flusher = new Flusher(this.dir, this.#fsync, this.#log.tail, init.writeHandle, this.#cache, {
      failed: () => this.#failed,
      fail: (err) => this.#fail(err),
    })
  }

  /** Opens (creating it if needed) the store in `dir`, recovering from a crash if there was one. */
  static async open(dir: string, options: FileLogStoreOptions = {}): Promise<FileLogStore> {
    const opts: Required<FileLogStoreOptions> = {
      fsync: options.fsync ?? true,
      segmentSize: options.segmentSize ?? 64 * MiB,
      cacheBytes: options.cacheBytes ?? 16 * MiB,
    }
    if (!Number.isSafeInteger(opts.segmentSize) || opts.segmentSize < 1) {
      throw new InvalidArgumentError(`segmentSize must be a positive integer, got ${opts.segmentSize}`)
    }
    if (!(opts.cacheBytes >= 0))
      throw new InvalidArgumentError(`cacheBytes must be ≥ 0, got ${opts.cacheBytes}`)
    const path = resolve(dir)
    const lock = await lockDir(path, 'log store directory')
    try {
      return new FileLogStore(await recover(path, opts.fsync), opts, lock)
    } catch (err) {
      await lock.release()
      if (err instanceof StorageError) throw err
      throw new StorageError(`cannot open the log store at ${path}: ${(err as Error).message}`, {
        cause: err,
      })
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Reads

  async load(): Promise<LoadedLog> {
    this.#checkUsable()
    const out: LoadedLog = { hardState: this.hardState(), entries: [] }
    out.entries = await this.entries(1, Number.MAX_SAFE_INTEGER)
    const s = await this.readSnapshot()
    if (s !== undefined) {
      out.snapshot = s.meta
      if (s.data !== undefined) out.snapshotData = s.data
    }
    return out
  }

  firstIndex(): number {
    return this.#log.view.firstIndex()
  }

  lastIndex(): number {
    return this.#log.view.lastIndex()
  }

  term(index: number): number | undefined {
    return this.#log.view.term(index)
  }

  hardState(): HardState {
    return this.#log.hardState()
  }

  snapshot(): SnapshotMeta | undefined {
    return this.#log.snapshot()
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
    this.#checkUsable()
    if (!this.#log.hasSnapshot) return undefined
    await this.#snaps.chain
    this.#checkUsable()
    const s = await readSnapshotFile(this.dir)
    if (s === undefined) return undefined
    return s.data === undefined ? { meta: s.meta } : { meta: s.meta, data: s.data }
  }

  async entries(from: number, to: number, options?: ReadOptions): Promise<LogEntry[]> {
    this.#checkUsable()
    const view = this.#log.view
    const { first, last } = view.clamp(from, to)
    if (first > last) return []
    const maxBytes = options?.maxBytes ?? Number.POSITIVE_INFINITY
    // Everything is decided synchronously: later mutations do not change what this call returns.
    const locs: EntryLoc[] = []
    const raw: (Uint8Array | undefined)[] = []
    let size = 0
    for (let i = first; i <= last; i++) {
      const loc = view.item(i)!
      if (locs.length > 0 && size + loc.len > maxBytes) break
      size += loc.len
      locs.push(loc)
      raw.push(loc.bytes)
    }
    await readMissing(this.dir, locs, raw)
    const out: LogEntry[] = new Array(raw.length)
    for (let k = 0; k < raw.length; k++) out[k] = decodeEntry(raw[k]!, first + k)
    return out
  }

  // -------------------------------------------------------------------------------------------------
  // Writes: the log applies them at call time and lays them out; they are queued for the flusher.

  write(batch: WriteBatch): Promise<void> {
    try {
      this.#checkUsable()
      const job = this.#log.write(batch)
      return job === undefined ? this.#barrier() : this.#enqueue(job)
    } catch (err) {
      return Promise.reject(err)
    }
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

  saveSnapshot(meta: SnapshotMeta, data?: Uint8Array): Promise<void> {
    try {
      this.#checkUsable()
      const record = this.#log.saveSnapshot(meta, data)
      // written beside the log, but resolved after the log writes issued before it
      const earlier = this.#barrier()
      return this.#snaps.write(
        () => {
          this.#checkUsable(true)
          return writeSnapshotFile(this.dir, record, this.#fsync)
        },
        earlier,
        (err) => this.#fail(err),
      )
    } catch (err) {
      return Promise.reject(err)
    }
  }

  installSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void> {
    try {
      this.#checkUsable()
      return this.#enqueueRestart(this.#log.installSnapshot(meta, data))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  compact(upToIndex: number): Promise<void> {
    try {
      this.#checkUsable()
      const job = this.#log.compact(upToIndex)
      if (job === undefined) return this.#barrier()
      // the compaction must not be on disk before the snapshot that covers it
      if (this.#snaps.pending > 0) job.before = this.#snaps.chain
      job.after = () => this.#log.deleteObsolete(upToIndex, job.seg, () => this.#flusher.writeSeg)
      return this.#enqueue(job)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  reset(): Promise<void> {
    try {
      this.#checkUsable()
      return this.#enqueueRestart(this.#log.reset())
    } catch (err) {
      return Promise.reject(err)
    }
  }

  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing
    const drained = this.#failed === undefined ? this.#barrier() : Promise.resolve()
    this.#closing = (async () => {
      try {
        await drained
        await this.#snaps.chain
      } catch {
        // the failure was reported to the write that hit it
      }
      try {
        await this.#flusher.close()
      } finally {
        for (const seg of this.#log.segments) {
          seg.deleted = true
          releaseReader(seg)
        }
        await this.#lock.release()
      }
    })()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  // -------------------------------------------------------------------------------------------------
  // Queueing

  /**
   * Queues a job that starts the log over (reset, install). It is written after the snapshot files
   * issued before it, so that an installed snapshot wins, and before those issued after it.
   */
  #enqueueRestart(job: Job): Promise<void> {
    job.before = this.#snaps.chain
    this.#snaps.chain = job.done.promise.catch(() => {})
    return this.#enqueue(job)
  }

  /** Resolves once every job queued before it is done. */
  #barrier(): Promise<void> {
    if (this.#flusher.idle && !this.#flusher.unsynced) return Promise.resolve()
    return this.#enqueue(this.#log.barrier())
  }

  #enqueue(job: Job): Promise<void> {
    // a write does not wait for an earlier snapshot to be written, but it resolves after it
    if (this.#snaps.unresolved > 0) job.waitSnap = this.#snaps.resolved
    return this.#flusher.enqueue(job)
  }

  #fail(err: unknown): StorageError {
    if (this.#failed === undefined) {
      this.#failed =
        err instanceof StorageError
          ? err
          : new StorageError(
              `the log store at ${this.dir} failed: ${(err as Error)?.message ?? String(err)}`,
              {
                cause: err,
              },
            )
    }
    return this.#failed
  }

  #checkUsable(ignoreClosed = false): void {
    if (this.#closing !== undefined && !ignoreClosed) throw new ClosedError('log store is closed')
    if (this.#failed !== undefined) throw this.#failed
  }
}

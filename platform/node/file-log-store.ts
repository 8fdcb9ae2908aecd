import type { FileHandle } from 'node:fs/promises'
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { crc32 } from 'node:zlib'
import type {
  HardState,
  LoadedLog,
  LogEntry,
  LogStore,
  ReadOptions,
  SnapshotMeta,
  WriteBatch,
} from '../../src/groups/storage/log-store.ts'
import {
  CorruptLogError,
  checkHardState,
  checkIndex,
  checkSnapshotData,
  checkSnapshotMeta,
  cloneValue,
  decodeEntry,
  encodeEntry,
  hardStateAfterInstall,
  initialHardState,
  StorageError,
} from '../../src/groups/storage/log-store.ts'
import { LogView } from '../../src/groups/storage/log-view.ts'
import { concatBytes } from '../../src/primitives/bytes.ts'
import { decodeCanonical, encodeCanonical } from '../../src/primitives/codec.ts'
import { ClosedError, InvalidArgumentError } from '../../src/primitives/errors.ts'

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
 * file.
 *
 * Directory layout:
 * - `0000000000000001.seg`, `...2.seg`, ...: segments, numbered without gaps. Each is a sequence of
 *   records `[u32 payload length][u32 crc32 of type+payload][u8 type][payload]` (little-endian):
 *   - `1` HEADER, always first: CBOR `{ v: 1, seq, last, lastTerm, compacted, compactedTerm, hs }`, the
 *     state of the log when the segment was started (`hs` is the CBOR of the hard state). Replay starts
 *     from the first segment's header, so older segments can be deleted whole.
 *   - `2` BATCH, one per `write`: `[u32 meta length][meta: CBOR { i?: first index, n?: count,
 *     t?: truncateFrom, h?: hard state CBOR }]` then, per entry, `[u32 length][f64 term][entry CBOR]`
 *     (the term is outside the CBOR so that replay need not decode entries). Replay applies the
 *     truncation, then the entries, then the hard state: a batch is all there or not at all.
 *   - `3` COMPACT: CBOR `{ upTo, term }`.
 * - `snapshot`: one record, replaced atomically (written to `snapshot.tmp`, fsynced, renamed over,
 *   directory fsynced):
 *   - `4` SNAPSHOT, from `saveSnapshot`: CBOR `{ m: meta, d?: data }`.
 *   - `5` INSTALLED, from `installSnapshot`: CBOR `{ m: meta, d: data, seg, hs }`: the log was replaced
 *     by the empty log after `m.index` with hard state `hs`, and it lives in segments `seg` and later;
 *     every segment numbered below `seg` belongs to the replaced log.
 * - `RESET`: present only while a `reset()` runs; on open it means "finish wiping".
 *
 * Writes are group-committed: while one batch is being written and fsynced, later batches queue, and the
 * next flush writes all of them with one `write` and one fdatasync. A segment is fsynced before the next
 * one is created, so only the last segment can have a torn tail. Snapshot files are written beside the
 * log, not in its queue: a log write issued after `saveSnapshot` may reach the disk first, but it
 * resolves after the snapshot; `compact` and `reset` wait for earlier snapshots before they are written
 * (so a `compact` issued before its snapshot resolved holds up the writes queued behind it: await the
 * snapshot first).
 *
 * Recovery on open: segments are replayed in order. In the last segment, the first record that is
 * short or fails its checksum, and everything after it, is a torn write (never acknowledged, since a
 * write resolves only after its fsync) and is cut off; a last segment whose header is torn is removed.
 * A bad record in any other segment, or a bad snapshot file, is real corruption: `CorruptLogError`.
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
 *
 * One process, one store per directory: opening a directory twice in the same process throws; nothing
 * guards against two processes.
 */
export class FileLogStore implements LogStore {
  readonly durable = true
  /** The absolute path of the store's directory. */
  readonly dir: string
  readonly #fsync: boolean
  readonly #segmentSize: number
  readonly #cacheBudget: number

  // The view: every mutation is applied here at call time, in call order.
  #view: LogView<EntryLoc>
  #hardState: Uint8Array
  #snapshot: SnapshotMeta | undefined

  // Layout, decided at call time too: where the next record goes.
  #segments: Segment[]
  #tail: Segment
  #tailPos: number
  #tailHasRecords: boolean

  // The flusher: the only code that writes segments, one group of queued jobs at a time.
  #queue: Job[] = []
  #flushing = false
  #writeSeg: Segment | undefined
  #writeHandle: FileHandle | undefined

  // Snapshot files are written off the hot path; compactions and resets wait for them.
  #snapChain: Promise<void> = Promise.resolve()
  #snapPending = 0
  /** Snapshots whose promise has not settled yet, and the settling of the last one. */
  #snapUnresolved = 0
  #snapResolved: Promise<void> = Promise.resolve()
  /** Set while a resolution waits for a snapshot: later jobs resolve after it, keeping call order. */
  #gate: Promise<void> | undefined

  // Entries whose bytes are still in memory, oldest first (unwritten ones are never evicted).
  #cache: EntryLoc[] = []
  #cacheHead = 0
  #cacheBytes = 0

  #failed: StorageError | undefined
  #closing: Promise<void> | undefined

  private constructor(init: Recovered, options: Required<FileLogStoreOptions>) {
    this.dir = init.dir
    this.#fsync = options.fsync
    this.#segmentSize = options.segmentSize
    this.#cacheBudget = options.cacheBytes
    this.#view = init.view
    this.#hardState = init.hardState
    this.#snapshot = init.snapshot
    this.#segments = init.segments
    this.#tail = init.segments.at(-1)!
    this.#tailPos = init.tailPos
    this.#tailHasRecords = init.tailHasRecords
    this.#writeSeg = this.#tail
    this.#writeHandle = init.writeHandle
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
    if (openDirs.has(path)) throw new StorageError(`the log store at ${path} is already open in this process`)
    openDirs.add(path)
    try {
      return new FileLogStore(await recover(path, opts.fsync), opts)
    } catch (err) {
      openDirs.delete(path)
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
    return this.#view.firstIndex()
  }

  lastIndex(): number {
    return this.#view.lastIndex()
  }

  term(index: number): number | undefined {
    return this.#view.term(index)
  }

  hardState(): HardState {
    return decodeCanonical(this.#hardState) as HardState
  }

  snapshot(): SnapshotMeta | undefined {
    return this.#snapshot === undefined ? undefined : cloneValue(this.#snapshot)
  }

  async readSnapshot(): Promise<{ meta: SnapshotMeta; data?: Uint8Array } | undefined> {
    this.#checkUsable()
    if (this.#snapshot === undefined) return undefined
    await this.#snapChain
    this.#checkUsable()
    const s = await readSnapshotFile(this.dir)
    if (s === undefined) return undefined
    return s.data === undefined ? { meta: s.meta } : { meta: s.meta, data: s.data }
  }

  async entries(from: number, to: number, options?: ReadOptions): Promise<LogEntry[]> {
    this.#checkUsable()
    const { first, last } = this.#view.clamp(from, to)
    if (first > last) return []
    const maxBytes = options?.maxBytes ?? Number.POSITIVE_INFINITY
    // Everything is decided synchronously: later mutations do not change what this call returns.
    const locs: EntryLoc[] = []
    const raw: (Uint8Array | undefined)[] = []
    let size = 0
    for (let i = first; i <= last; i++) {
      const loc = this.#view.item(i)!
      if (locs.length > 0 && size + loc.len > maxBytes) break
      size += loc.len
      locs.push(loc)
      raw.push(loc.bytes)
    }
    const used = new Set<Segment>()
    for (let i = 0; i < locs.length; i++) if (raw[i] === undefined) used.add(locs[i]!.seg)
    for (const seg of used) {
      seg.reads++
      if (seg.reader === undefined) {
        seg.reader = open(seg.path, 'r')
        seg.reader.catch(() => {})
      }
    }
    try {
      let i = 0
      while (i < locs.length) {
        if (raw[i] !== undefined) {
          i++
          continue
        }
        // one read for a run of entries close together in the same segment
        const start = locs[i]!.pos
        let end = start + locs[i]!.len
        let j = i + 1
        while (j < locs.length && raw[j] === undefined) {
          const next = locs[j]!
          if (next.seg !== locs[i]!.seg || next.pos < end || next.pos - end > READ_GAP) break
          if (next.pos + next.len - start > READ_SPAN) break
          end = next.pos + next.len
          j++
        }
        const buf = await readAt(locs[i]!.seg, start, end - start)
        for (let k = i; k < j; k++)
          raw[k] = buf.subarray(locs[k]!.pos - start, locs[k]!.pos - start + locs[k]!.len)
        i = j
      }
    } catch (err) {
      if (err instanceof StorageError) throw err
      throw new StorageError(`cannot read entries from ${this.dir}: ${(err as Error).message}`, {
        cause: err,
      })
    } finally {
      for (const seg of used) {
        seg.reads--
        if (seg.deleted) releaseReader(seg)
      }
    }
    const out: LogEntry[] = new Array(raw.length)
    for (let k = 0; k < raw.length; k++) out[k] = decodeEntry(raw[k]!, first + k)
    return out
  }

  // -------------------------------------------------------------------------------------------------
  // Writes: validate, encode, lay out, apply to the view, then queue for the flusher.

  write(batch: WriteBatch): Promise<void> {
    try {
      this.#checkUsable()
      const { hardState, truncateFrom, entries } = batch
      if (truncateFrom !== undefined) checkIndex(truncateFrom, 'truncateFrom')
      if (hardState !== undefined) checkHardState(hardState)
      this.#view.checkWrite(entries, truncateFrom)
      const list = entries ?? []
      const encoded = list.map(encodeEntry)
      const hs = hardState === undefined ? undefined : encodeCanonical(hardState)
      const truncates = truncateFrom !== undefined && truncateFrom <= this.#view.lastIndex()
      if (!truncates && encoded.length === 0 && hs === undefined) return this.#barrier()

      const meta: { i?: number; n?: number; t?: number; h?: Uint8Array } = {}
      if (encoded.length > 0) {
        meta.i = list[0]!.index
        meta.n = encoded.length
      }
      if (truncates) meta.t = truncateFrom
      if (hs !== undefined) meta.h = hs
      const { record, offsets } = batchRecord(encodeCanonical(meta), list, encoded)

      const job = this.#layout(record)
      if (truncates) this.#view.truncateFrom(truncateFrom)
      const locs: EntryLoc[] = new Array(encoded.length)
      for (let i = 0; i < encoded.length; i++) {
        const bytes = encoded[i]!
        const loc: EntryLoc = {
          seg: job.seg,
          pos: job.pos + offsets[i]!,
          len: bytes.length,
          bytes,
          written: false,
        }
        locs[i] = loc
        this.#view.push(list[i]!.term, loc)
        this.#cache.push(loc)
        this.#cacheBytes += bytes.length
      }
      if (hs !== undefined) this.#hardState = hs
      job.locs = locs
      return this.#enqueue(job)
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
      checkSnapshotMeta(meta)
      const record = frameRecord(
        REC_SNAPSHOT,
        encodeCanonical(data === undefined ? { m: meta } : { m: meta, d: data }),
      )
      this.#snapshot = cloneValue(meta)
      // written beside the log, but resolved after the log writes issued before it
      const earlier = this.#barrier()
      this.#snapPending++
      const written = this.#snapChain
        .then(() => {
          this.#checkUsable(true)
          return this.#writeSnapshotFile(record)
        })
        .catch((err: unknown) => {
          throw this.#fail(err)
        })
        .finally(() => {
          this.#snapPending--
        })
      this.#snapChain = written.catch(() => {})
      const resolved = Promise.all([written, earlier]).then(() => {})
      this.#snapUnresolved++
      const settled = resolved
        .catch(() => {})
        .finally(() => {
          this.#snapUnresolved--
        })
      this.#snapResolved = settled
      return resolved
    } catch (err) {
      return Promise.reject(err)
    }
  }

  installSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void> {
    try {
      this.#checkUsable()
      checkSnapshotMeta(meta)
      checkSnapshotData(data)
      // encode everything before changing anything
      const hs = encodeCanonical(hardStateAfterInstall(this.hardState(), meta))
      const snapshot = cloneValue(meta)
      const seg = newSegment(this.dir, this.#tail.seq + 1, meta.index)
      const record = frameRecord(
        REC_INSTALLED,
        encodeCanonical({ m: meta, d: data, seg: seg.seq, hs } satisfies InstalledRecord),
      )
      const old = this.#segments
      this.#view = new LogView<EntryLoc>()
      this.#view.resetTo(meta.index, meta.term)
      this.#hardState = hs
      this.#snapshot = snapshot
      this.#cache = []
      this.#cacheHead = 0
      this.#cacheBytes = 0
      const header = this.#headerRecord(seg)
      this.#segments = [seg]
      this.#tail = seg
      this.#tailPos = header.length
      this.#tailHasRecords = false
      const job: Job = {
        kind: 'install',
        seg,
        pos: 0,
        header,
        record,
        old,
        // after the snapshot files issued before it, so that this one wins
        before: this.#snapChain,
        done: Promise.withResolvers(),
      }
      // snapshot files issued after it are written after it
      this.#snapChain = job.done.promise.catch(() => {})
      return this.#enqueue(job)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  compact(upToIndex: number): Promise<void> {
    try {
      this.#checkUsable()
      checkIndex(upToIndex, 'upToIndex')
      if (upToIndex <= this.#view.offset) return this.#barrier()
      const snap = this.#snapshot
      const term = this.#view.term(upToIndex) ?? (snap?.index === upToIndex ? snap.term : undefined)
      const job = this.#layout(
        frameRecord(REC_COMPACT, encodeCanonical({ upTo: upToIndex, term: term ?? null })),
      )
      this.#view.compact(upToIndex, term)
      // the compaction must not be on disk before the snapshot that covers it
      if (this.#snapPending > 0) job.before = this.#snapChain
      job.after = () => this.#deleteObsoleteSegments(upToIndex, job.seg)
      return this.#enqueue(job)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  reset(): Promise<void> {
    try {
      this.#checkUsable()
      const old = this.#segments
      this.#view = new LogView<EntryLoc>()
      this.#hardState = encodeCanonical(initialHardState())
      this.#snapshot = undefined
      this.#cache = []
      this.#cacheHead = 0
      this.#cacheBytes = 0
      const seg = newSegment(this.dir, this.#tail.seq + 1, 0)
      const header = this.#headerRecord(seg)
      this.#segments = [seg]
      this.#tail = seg
      this.#tailPos = header.length
      this.#tailHasRecords = false
      const job: Job = {
        kind: 'reset',
        seg,
        pos: 0,
        header,
        old,
        before: this.#snapChain,
        done: Promise.withResolvers(),
      }
      // snapshot writes issued after the reset must land after it
      this.#snapChain = job.done.promise.catch(() => {})
      return this.#enqueue(job)
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
        await this.#snapChain
      } catch {
        // the failure was reported to the write that hit it
      }
      const handle = this.#writeHandle
      this.#writeHandle = undefined
      this.#writeSeg = undefined
      try {
        if (handle !== undefined) await handle.close()
      } finally {
        for (const seg of this.#segments) {
          seg.deleted = true
          releaseReader(seg)
        }
        openDirs.delete(this.dir)
      }
    })()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  // -------------------------------------------------------------------------------------------------
  // Layout and queueing

  /** Places `record` after everything queued so far, starting a new segment when the tail is full. */
  #layout(record: Uint8Array): Job {
    if (record.length > MAX_RECORD) {
      throw new InvalidArgumentError(
        `a write of ${record.length} bytes exceeds the limit of ${MAX_RECORD} bytes`,
      )
    }
    let header: Uint8Array | undefined
    if (this.#tailHasRecords && this.#tailPos >= this.#segmentSize) {
      const seg = newSegment(this.dir, this.#tail.seq + 1, this.#view.lastIndex())
      header = this.#headerRecord(seg)
      this.#segments.push(seg)
      this.#tail = seg
      this.#tailPos = header.length
    }
    const job: Job = {
      kind: 'append',
      seg: this.#tail,
      pos: this.#tailPos,
      record,
      done: Promise.withResolvers(),
    }
    if (header !== undefined) job.header = header
    this.#tailPos += record.length
    this.#tailHasRecords = true
    return job
  }

  /** The header of a segment started now: the state the records after it apply to. */
  #headerRecord(seg: Segment): Uint8Array {
    const last = this.#view.lastIndex()
    return frameRecord(
      REC_HEADER,
      encodeCanonical({
        v: FORMAT_VERSION,
        seq: seg.seq,
        last,
        lastTerm: this.#view.term(last) ?? null,
        compacted: this.#view.offset,
        compactedTerm: this.#view.offsetTerm ?? null,
        hs: this.#hardState,
      }),
    )
  }

  /** Resolves once every job queued before it is done. */
  #barrier(): Promise<void> {
    if (this.#queue.length === 0 && !this.#flushing) return Promise.resolve()
    return this.#enqueue({
      kind: 'barrier',
      seg: this.#tail,
      pos: this.#tailPos,
      done: Promise.withResolvers(),
    })
  }

  #enqueue(job: Job): Promise<void> {
    // a write does not wait for an earlier snapshot to be written, but it resolves after it
    if (this.#snapUnresolved > 0) job.waitSnap = this.#snapResolved
    this.#queue.push(job)
    if (!this.#flushing) {
      this.#flushing = true
      void this.#flush()
    }
    return job.done.promise
  }

  // -------------------------------------------------------------------------------------------------
  // The flusher

  async #flush(): Promise<void> {
    let group: Job[] = []
    try {
      // let the writes issued in the same turn join the first group
      await Promise.resolve()
      while (this.#queue.length > 0) {
        const head = this.#queue[0]!
        if (head.before !== undefined) {
          await head.before
          head.before = undefined
        }
        if (head.kind === 'reset' || head.kind === 'install') {
          group = this.#queue.splice(0, 1)
          if (head.kind === 'reset') await this.#doReset(head)
          else await this.#doInstall(head)
          this.#settle(head)
          group = []
          continue
        }
        let n = 1
        while (
          n < this.#queue.length &&
          this.#queue[n]!.kind !== 'reset' &&
          this.#queue[n]!.kind !== 'install' &&
          this.#queue[n]!.before === undefined
        )
          n++
        group = this.#queue.splice(0, n)
        await this.#writeGroup(group)
        for (const job of group) {
          if (job.locs !== undefined) for (const loc of job.locs) loc.written = true
        }
        for (const job of group) {
          if (job.after !== undefined) await job.after()
          this.#settle(job)
        }
        group = []
        this.#evict()
      }
    } catch (err) {
      const failure = this.#fail(err)
      for (const job of group) job.done.reject(failure)
      for (const job of this.#queue.splice(0)) job.done.reject(failure)
    } finally {
      this.#flushing = false
    }
  }

  /** Resolves a durable job, after any snapshot it must follow and after the jobs before it. */
  #settle(job: Job): void {
    const gate =
      job.waitSnap !== undefined && this.#gate !== undefined
        ? Promise.all([job.waitSnap, this.#gate]).then(() => {})
        : (job.waitSnap ?? this.#gate)
    if (gate === undefined) {
      job.done.resolve()
      return
    }
    const settled = gate.then(() => {
      if (this.#failed !== undefined) job.done.reject(this.#failed)
      else job.done.resolve()
    })
    this.#gate = settled
    void settled.then(() => {
      if (this.#gate === settled) this.#gate = undefined
    })
  }

  /** Writes a group of jobs: one write per segment touched, then one fdatasync. */
  async #writeGroup(group: Job[]): Promise<void> {
    let wrote = false
    let created = false
    let i = 0
    while (i < group.length) {
      const seg = group[i]!.seg
      const parts: Uint8Array[] = []
      let start = -1
      let end = -1
      let j = i
      for (; j < group.length && group[j]!.seg === seg; j++) {
        const job = group[j]!
        if (job.header !== undefined) {
          parts.push(job.header)
          start = 0
          end = job.header.length
        }
        if (job.record !== undefined) {
          if (start < 0) start = end = job.pos
          if (job.pos !== end) throw new StorageError(`internal: record at ${job.pos} does not follow ${end}`)
          parts.push(job.record)
          end += job.record.length
        }
      }
      if (group[i]!.header !== undefined) {
        await this.#startSegment(seg)
        created = true
      }
      if (parts.length > 0) {
        if (this.#writeSeg !== seg || this.#writeHandle === undefined) {
          throw new StorageError(`internal: segment ${seg.seq} is not open for writing`)
        }
        await writeAll(this.#writeHandle, parts.length === 1 ? parts[0]! : concatBytes(...parts), start)
        wrote = true
      }
      i = j
    }
    if (this.#fsync && wrote) {
      await this.#writeHandle!.datasync()
      if (created) await fsyncDir(this.dir)
    }
  }

  /** Closes the current segment (durably) and creates `seg`. */
  async #startSegment(seg: Segment): Promise<void> {
    const prev = this.#writeHandle
    this.#writeHandle = undefined
    this.#writeSeg = undefined
    if (prev !== undefined) {
      if (this.#fsync) await prev.datasync()
      await prev.close()
    }
    this.#writeHandle = await open(seg.path, 'wx')
    this.#writeSeg = seg
  }

  async #doReset(job: Job): Promise<void> {
    const marker = join(this.dir, RESET_MARKER)
    await (await open(marker, 'w')).close()
    if (this.#fsync) await fsyncDir(this.dir)
    const handle = this.#writeHandle
    this.#writeHandle = undefined
    this.#writeSeg = undefined
    if (handle !== undefined) await handle.close()
    for (const seg of job.old ?? []) {
      seg.deleted = true
      releaseReader(seg)
      await rm(seg.path, { force: true })
    }
    await rm(join(this.dir, SNAPSHOT_FILE), { force: true })
    await rm(join(this.dir, SNAPSHOT_TMP), { force: true })
    await this.#startSegment(job.seg)
    await writeAll(this.#writeHandle!, job.header!, 0)
    if (this.#fsync) {
      await this.#writeHandle!.datasync()
      await fsyncDir(this.dir)
    }
    await rm(marker, { force: true })
    if (this.#fsync) await fsyncDir(this.dir)
  }

  /**
   * Installs a snapshot (every job before it is durable): the snapshot file that names `job.seg` as the
   * first segment of the new log is renamed into place (the commit point), then that segment is created
   * and the segments of the old log are deleted.
   */
  async #doInstall(job: Job): Promise<void> {
    // a snapshot written before it may have failed: then nothing more may reach the disk
    this.#checkUsable(true)
    await this.#writeSnapshotFile(job.record!)
    await this.#startSegment(job.seg)
    await writeAll(this.#writeHandle!, job.header!, 0)
    if (this.#fsync) {
      await this.#writeHandle!.datasync()
      await fsyncDir(this.dir)
    }
    for (const seg of job.old ?? []) {
      seg.deleted = true
      releaseReader(seg)
      await rm(seg.path, { force: true })
    }
    if (this.#fsync) await fsyncDir(this.dir)
  }

  /**
   * Deletes the oldest segments once the compaction to `upTo` is durable (it is in `durableSeg`): a
   * segment goes when its successor is durable and starts at or below `upTo`, so replay from that
   * successor's header, then its records, rebuilds the same log.
   */
  async #deleteObsoleteSegments(upTo: number, durableSeg: Segment): Promise<void> {
    while (this.#segments.length >= 2) {
      const first = this.#segments[0]!
      const next = this.#segments[1]!
      if (next.seq > durableSeg.seq || next.baseLast > upTo || first === this.#writeSeg) break
      this.#segments.shift()
      first.deleted = true
      releaseReader(first)
      await rm(first.path, { force: true })
    }
  }

  async #writeSnapshotFile(record: Uint8Array): Promise<void> {
    const tmp = join(this.dir, SNAPSHOT_TMP)
    const fh = await open(tmp, 'w')
    try {
      await writeAll(fh, record, 0)
      if (this.#fsync) await fh.datasync()
    } finally {
      await fh.close()
    }
    await rename(tmp, join(this.dir, SNAPSHOT_FILE))
    if (this.#fsync) await fsyncDir(this.dir)
  }

  /** Drops the bytes of the oldest written entries beyond the cache budget. */
  #evict(): void {
    const cache = this.#cache
    while (this.#cacheBytes > this.#cacheBudget && this.#cacheHead < cache.length) {
      const loc = cache[this.#cacheHead]!
      if (!loc.written) break
      loc.bytes = undefined
      this.#cacheBytes -= loc.len
      this.#cacheHead++
    }
    if (this.#cacheHead > 4096 && this.#cacheHead * 2 > cache.length) {
      cache.splice(0, this.#cacheHead)
      this.#cacheHead = 0
    }
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

// ---------------------------------------------------------------------------------------------------
// Internals

const MiB = 1024 * 1024
const FORMAT_VERSION = 1
/** `[u32 length][u32 crc32][u8 type]` */
const FRAME = 9
/** Per entry in a BATCH record: `[u32 length][f64 term]` */
const ENTRY_PREFIX = 12
const MAX_RECORD = 1024 * MiB
const REC_HEADER = 1
const REC_BATCH = 2
const REC_COMPACT = 3
const REC_SNAPSHOT = 4
const REC_INSTALLED = 5
const SEGMENT_RE = /^(\d{16})\.seg$/
const SNAPSHOT_FILE = 'snapshot'
const SNAPSHOT_TMP = 'snapshot.tmp'
const RESET_MARKER = 'RESET'
/** Reads of nearby entries are merged when the gap between them is at most this... */
const READ_GAP = 64 * 1024
/** ...and the merged read at most this long. */
const READ_SPAN = 8 * MiB

/** Directories open in this process. */
const openDirs = new Set<string>()

interface Segment {
  seq: number
  path: string
  /** The last index of the log when the segment was started (from its header). */
  baseLast: number
  reader: Promise<FileHandle> | undefined
  /** Reads in progress; a deleted segment's reader is closed when they are done. */
  reads: number
  deleted: boolean
}

interface EntryLoc {
  seg: Segment
  /** Where the entry's CBOR starts in the segment. */
  pos: number
  len: number
  /** The CBOR, while the entry is in the cache (always until it is written). */
  bytes: Uint8Array | undefined
  written: boolean
}

interface Job {
  kind: 'append' | 'barrier' | 'reset' | 'install'
  seg: Segment
  pos: number
  /** The header of `seg`, when this job starts it (at position 0, before `record`). */
  header?: Uint8Array
  record?: Uint8Array
  locs?: EntryLoc[]
  /** Wait for this before writing (a compaction waits for its snapshot). */
  before?: Promise<unknown>
  /** Resolve only after this (the promises of the snapshots issued before the job). */
  waitSnap?: Promise<void>
  /** Run once durable, before resolving. */
  after?: () => Promise<void>
  /** reset, install: the segments to delete. */
  old?: Segment[]
  done: PromiseWithResolvers<void>
}

/** The payload of an INSTALLED snapshot file. */
interface InstalledRecord {
  m: SnapshotMeta
  d: Uint8Array
  /** The first segment of the log that starts after the snapshot. */
  seg: number
  /** The hard state as of the install (CBOR). */
  hs: Uint8Array
}

/** A snapshot file's contents; `installed` when it came from `installSnapshot`. */
interface SnapshotFile {
  meta: SnapshotMeta
  data?: Uint8Array
  installed?: { seg: number; hs: Uint8Array }
}

interface Recovered {
  dir: string
  view: LogView<EntryLoc>
  hardState: Uint8Array
  snapshot: SnapshotMeta | undefined
  segments: Segment[]
  tailPos: number
  tailHasRecords: boolean
  writeHandle: FileHandle
}

function newSegment(dir: string, seq: number, baseLast: number): Segment {
  return { seq, path: join(dir, segmentName(seq)), baseLast, reader: undefined, reads: 0, deleted: false }
}

function segmentName(seq: number): string {
  return `${seq.toString().padStart(16, '0')}.seg`
}

function releaseReader(seg: Segment): void {
  if (seg.reads > 0 || seg.reader === undefined) return
  const reader = seg.reader
  seg.reader = undefined
  reader.then((fh) => fh.close()).catch(() => {})
}

async function readAt(seg: Segment, pos: number, len: number): Promise<Uint8Array> {
  const fh = await seg.reader!
  const buf = new Uint8Array(len)
  let off = 0
  while (off < len) {
    const { bytesRead } = await fh.read(buf, off, len - off, pos + off)
    if (bytesRead === 0) throw new CorruptLogError(`segment ${seg.path} ends before offset ${pos + len}`)
    off += bytesRead
  }
  return buf
}

async function writeAll(fh: FileHandle, buf: Uint8Array, pos: number): Promise<void> {
  let off = 0
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, pos + off)
    off += bytesWritten
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
}

/** Fills in length, type and checksum of a record whose payload is already in place. */
function sealRecord(rec: Uint8Array, type: number): Uint8Array {
  const dv = view(rec)
  dv.setUint32(0, rec.length - FRAME, true)
  rec[8] = type
  dv.setUint32(4, crc32(rec.subarray(8)), true)
  return rec
}

function frameRecord(type: number, payload: Uint8Array): Uint8Array {
  const rec = new Uint8Array(FRAME + payload.length)
  rec.set(payload, FRAME)
  return sealRecord(rec, type)
}

/** A BATCH record, and where each entry's CBOR starts relative to the record. */
function batchRecord(
  meta: Uint8Array,
  entries: readonly LogEntry[],
  encoded: Uint8Array[],
): { record: Uint8Array; offsets: number[] } {
  let size = FRAME + 4 + meta.length
  for (const e of encoded) size += ENTRY_PREFIX + e.length
  const rec = new Uint8Array(size)
  const dv = view(rec)
  let p = FRAME
  dv.setUint32(p, meta.length, true)
  rec.set(meta, p + 4)
  p += 4 + meta.length
  const offsets: number[] = new Array(encoded.length)
  for (let i = 0; i < encoded.length; i++) {
    const e = encoded[i]!
    dv.setUint32(p, e.length, true)
    dv.setFloat64(p + 4, entries[i]!.term, true)
    p += ENTRY_PREFIX
    offsets[i] = p
    rec.set(e, p)
    p += e.length
  }
  return { record: sealRecord(rec, REC_BATCH), offsets }
}

/** The record at `pos`, or undefined when it is short or fails its checksum. */
function readRecord(buf: Uint8Array, pos: number): { type: number; start: number; end: number } | undefined {
  if (buf.length - pos < FRAME) return undefined
  const dv = view(buf)
  const len = dv.getUint32(pos, true)
  if (len === 0 || len > buf.length - pos - FRAME) return undefined
  const end = pos + FRAME + len
  if (crc32(buf.subarray(pos + 8, end)) !== dv.getUint32(pos + 4, true)) return undefined
  return { type: buf[pos + 8]!, start: pos + FRAME, end }
}

function decodeRecord(buf: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown
  try {
    value = decodeCanonical(buf)
  } catch (err) {
    throw new CorruptLogError(`${what} does not decode`, { cause: err })
  }
  if (value === null || typeof value !== 'object') throw new CorruptLogError(`${what} is not a map`)
  return value as Record<string, unknown>
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

function optionalTerm(n: unknown, what: string): number | undefined {
  if (n === null || n === undefined) return undefined
  if (!isCount(n)) throw new CorruptLogError(`${what} has a bad term`)
  return n
}

async function readSnapshotFile(dir: string): Promise<SnapshotFile | undefined> {
  let buf: Uint8Array
  try {
    buf = await readFile(join(dir, SNAPSHOT_FILE))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const rec = readRecord(buf, 0)
  if (rec === undefined || rec.end !== buf.length) {
    throw new CorruptLogError(`the snapshot in ${dir} fails its checksum`)
  }
  if (rec.type !== REC_SNAPSHOT && rec.type !== REC_INSTALLED) {
    throw new CorruptLogError(`the snapshot in ${dir} has a record of unknown type ${rec.type}`)
  }
  const value = decodeRecord(buf.subarray(rec.start, rec.end), 'the snapshot')
  const meta = value.m as SnapshotMeta
  try {
    checkSnapshotMeta(meta)
  } catch (err) {
    throw new CorruptLogError('the snapshot metadata is malformed', { cause: err })
  }
  if (value.d !== undefined && !(value.d instanceof Uint8Array))
    throw new CorruptLogError('bad snapshot data')
  const out: SnapshotFile = value.d === undefined ? { meta } : { meta, data: value.d }
  if (rec.type === REC_INSTALLED) {
    if (!isCount(value.seg) || value.seg < 1 || !(value.hs instanceof Uint8Array) || out.data === undefined) {
      throw new CorruptLogError('the installed snapshot is malformed')
    }
    out.installed = { seg: value.seg, hs: value.hs }
  }
  return out
}

/** Deletes everything a store keeps in `dir` (finishing an interrupted reset). */
async function wipe(dir: string, names: string[], fsync: boolean): Promise<void> {
  for (const name of names) {
    if (SEGMENT_RE.test(name) || name === SNAPSHOT_FILE || name === SNAPSHOT_TMP) {
      await rm(join(dir, name), { force: true })
    }
  }
  if (fsync) await fsyncDir(dir)
  await rm(join(dir, RESET_MARKER), { force: true })
  if (fsync) await fsyncDir(dir)
}

/** Rebuilds the store's state from `dir`, cutting off a torn tail. */
async function recover(dir: string, fsync: boolean): Promise<Recovered> {
  await mkdir(dir, { recursive: true })
  let names = await readdir(dir)
  if (names.includes(RESET_MARKER)) {
    await wipe(dir, names, fsync)
    names = await readdir(dir)
  }
  if (names.includes(SNAPSHOT_TMP)) await rm(join(dir, SNAPSHOT_TMP), { force: true })
  const snap = names.includes(SNAPSHOT_FILE) ? await readSnapshotFile(dir) : undefined
  const snapshot = snap?.meta
  /** Segments below it belong to a log that an installed snapshot replaced. */
  const floor = snap?.installed?.seg ?? 0

  let seqs = names
    .map((n) => SEGMENT_RE.exec(n)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b)
  if (seqs.length > 0 && seqs[0]! < floor) {
    // an install committed, then the process died before it deleted the old log: finish that
    for (const seq of seqs) if (seq < floor) await rm(join(dir, segmentName(seq)), { force: true })
    if (fsync) await fsyncDir(dir)
    seqs = seqs.filter((seq) => seq >= floor)
  }
  for (let k = 1; k < seqs.length; k++) {
    if (seqs[k] !== seqs[k - 1]! + 1)
      throw new CorruptLogError(`segment ${seqs[k - 1]! + 1} is missing in ${dir}`)
  }

  const state: ReplayState = {
    view: new LogView<EntryLoc>(),
    hardState: encodeCanonical(initialHardState()),
  }
  if (snap?.installed !== undefined) {
    // what the first segment's header says too; the only source when no segment of the new log survived
    state.view.resetTo(snap.meta.index, snap.meta.term)
    state.hardState = snap.installed.hs
  }
  const segments: Segment[] = []
  let tailPos = 0
  let tailHasRecords = false
  for (let k = 0; k < seqs.length; k++) {
    const seg = newSegment(dir, seqs[k]!, 0)
    const isLast = k === seqs.length - 1
    const buf = await readFile(seg.path)
    const r = replaySegment(buf, seg, segments.length === 0, state)
    if (r.end < buf.length || !r.headerOk) {
      if (!isLast) throw new CorruptLogError(`segment ${seg.path} is corrupt at byte ${r.end}`)
      if (!r.headerOk) {
        // started but never completed: nothing in it was acknowledged
        await rm(seg.path, { force: true })
        if (fsync) await fsyncDir(dir)
        continue
      }
      const fh = await open(seg.path, 'r+')
      try {
        await fh.truncate(r.end)
        if (fsync) await fh.datasync()
      } finally {
        await fh.close()
      }
    }
    segments.push(seg)
    tailPos = r.end
    tailHasRecords = r.records > 0
  }

  let writeHandle: FileHandle
  if (segments.length === 0) {
    const seg = newSegment(dir, Math.max((seqs.at(-1) ?? 0) + 1, floor), state.view.lastIndex())
    const last = state.view.lastIndex()
    const header = frameRecord(
      REC_HEADER,
      encodeCanonical({
        v: FORMAT_VERSION,
        seq: seg.seq,
        last,
        lastTerm: state.view.term(last) ?? null,
        compacted: state.view.offset,
        compactedTerm: state.view.offsetTerm ?? null,
        hs: state.hardState,
      }),
    )
    writeHandle = await open(seg.path, 'wx')
    try {
      await writeAll(writeHandle, header, 0)
      if (fsync) {
        await writeHandle.datasync()
        await fsyncDir(dir)
      }
    } catch (err) {
      await writeHandle.close()
      throw err
    }
    segments.push(seg)
    tailPos = header.length
    tailHasRecords = false
  } else {
    writeHandle = await open(segments.at(-1)!.path, 'r+')
  }
  return {
    dir,
    view: state.view,
    hardState: state.hardState,
    snapshot,
    segments,
    tailPos,
    tailHasRecords,
    writeHandle,
  }
}

interface ReplayState {
  view: LogView<EntryLoc>
  hardState: Uint8Array
}

/**
 * Applies the valid records of one segment. Returns where they end (a torn or corrupt record, or the end
 * of the file) and whether the header was valid. Records that pass their checksum but make no sense
 * are corruption and throw.
 */
function replaySegment(
  buf: Uint8Array,
  seg: Segment,
  first: boolean,
  state: ReplayState,
): { end: number; headerOk: boolean; records: number } {
  const h = readRecord(buf, 0)
  if (h === undefined || h.type !== REC_HEADER) return { end: 0, headerOk: false, records: 0 }
  const header = decodeRecord(buf.subarray(h.start, h.end), `the header of ${seg.path}`)
  if (header.v !== FORMAT_VERSION)
    throw new CorruptLogError(`${seg.path} has unknown format version ${String(header.v)}`)
  if (header.seq !== seg.seq || !isCount(header.last) || !(header.hs instanceof Uint8Array)) {
    throw new CorruptLogError(`the header of ${seg.path} is malformed`)
  }
  seg.baseLast = header.last
  if (first) {
    // everything before this segment has been compacted away (or this is the first segment ever)
    state.view.resetTo(header.last, optionalTerm(header.lastTerm, `the header of ${seg.path}`))
  }
  state.hardState = header.hs
  let pos = h.end
  let records = 0
  while (pos < buf.length) {
    const r = readRecord(buf, pos)
    if (r === undefined) break
    if (r.type === REC_BATCH) replayBatch(buf, r.start, r.end, seg, state)
    else if (r.type === REC_COMPACT) {
      const c = decodeRecord(buf.subarray(r.start, r.end), `a compaction in ${seg.path}`)
      if (!isCount(c.upTo)) throw new CorruptLogError(`a compaction in ${seg.path} is malformed`)
      const term = optionalTerm(c.term, `a compaction in ${seg.path}`)
      // at the point replay started from, the header's term may predate a rewrite of that entry
      if (!state.view.compact(c.upTo, term) && c.upTo === state.view.offset && term !== undefined) {
        state.view.setOffsetTerm(term)
      }
    } else {
      throw new CorruptLogError(`${seg.path} has a record of unknown type ${r.type} at byte ${pos}`)
    }
    records++
    pos = r.end
  }
  return { end: pos, headerOk: true, records }
}

function replayBatch(buf: Uint8Array, start: number, end: number, seg: Segment, state: ReplayState): void {
  const where = `a batch at byte ${start - FRAME} of ${seg.path}`
  const dv = view(buf)
  const metaLen = dv.getUint32(start, true)
  let p = start + 4 + metaLen
  if (p > end) throw new CorruptLogError(`${where} is malformed`)
  const meta = decodeRecord(buf.subarray(start + 4, p), where)
  const n = meta.n ?? 0
  const t = meta.t
  if (!isCount(n) || (n > 0 && !isCount(meta.i)) || (t !== undefined && !isCount(t))) {
    throw new CorruptLogError(`${where} is malformed`)
  }
  if (meta.h !== undefined && !(meta.h instanceof Uint8Array))
    throw new CorruptLogError(`${where} is malformed`)
  const v = state.view
  if (t !== undefined) v.truncateFrom(t)
  let index = n > 0 ? (meta.i as number) : 0
  for (let k = 0; k < n; k++, index++) {
    if (end - p < ENTRY_PREFIX) throw new CorruptLogError(`${where} is malformed`)
    const len = dv.getUint32(p, true)
    const term = dv.getFloat64(p + 4, true)
    p += ENTRY_PREFIX
    if (len > end - p) throw new CorruptLogError(`${where} is malformed`)
    if (index > v.offset) {
      // (entries at or below the compaction point are skipped: their segment's predecessors are gone)
      if (index !== v.lastIndex() + 1) {
        throw new CorruptLogError(`${where} holds entry ${index} but the log ends at ${v.lastIndex()}`)
      }
      v.push(term, { seg, pos: p, len, bytes: undefined, written: true })
    }
    p += len
  }
  if (p !== end) throw new CorruptLogError(`${where} is malformed`)
  if (meta.h !== undefined) state.hardState = meta.h
}

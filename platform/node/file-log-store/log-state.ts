/**
 * The log of FileLogStore as its callers see it. Every mutation is validated, encoded, laid out in the
 * segments (its record's place is fixed) and applied to the view at call time, in call order; what
 * comes back is the job that makes it durable, for the store to queue. So reads never wait for the
 * disk, and the flusher writes each record where it was placed.
 */
import { rm } from 'node:fs/promises'
import { onlyCommitMoved } from '../../../src/groups/raft/ready.ts'
import type { HardState, LogEntry, SnapshotMeta, WriteBatch } from '../../../src/groups/storage/log-store.ts'
import {
  checkHardState,
  checkIndex,
  checkSnapshotData,
  checkSnapshotMeta,
  cloneValue,
  encodeEntry,
  hardStateAfterInstall,
  initialHardState,
} from '../../../src/groups/storage/log-store.ts'
import { LogView } from '../../../src/groups/storage/log-view.ts'
import { decodeCanonical, encodeCanonical } from '../../../src/primitives/codec.ts'
import { InvalidArgumentError } from '../../../src/primitives/errors.ts'
import type { Job } from './flusher.ts'
import {
  batchRecord,
  type EntryLoc,
  frameRecord,
  headerRecord,
  type InstalledRecord,
  MAX_RECORD,
  newSegment,
  REC_COMPACT,
  REC_INSTALLED,
  REC_SNAPSHOT,
  type Segment,
} from './format.ts'
import { type EntryCache, releaseReader } from './reads.ts'
import type { Recovered } from './recovery.ts'

export class LogState {
  readonly #dir: string
  readonly #segmentSize: number
  readonly #cache: EntryCache

  // The view: every mutation is applied here at call time, in call order.
  #view: LogView<EntryLoc>
  #hardState: Uint8Array
  #snapshot: SnapshotMeta | undefined
  /** A snapshot the log was compacted against (recorded in COMPACT records and headers). */
  #snapFloor: number | undefined

  // Layout, decided at call time too: where the next record goes.
  #segments: Segment[]
  #tail: Segment
  #tailPos: number
  #tailHasRecords: boolean

  /** `cache` gets the entries written from now on, while their bytes are in memory. */
  constructor(init: Recovered, segmentSize: number, cache: EntryCache) {
    this.#dir = init.dir
    this.#segmentSize = segmentSize
    this.#cache = cache
    this.#view = init.view
    this.#hardState = init.hardState
    this.#snapshot = init.snapshot
    this.#snapFloor = init.snapFloor
    this.#segments = init.segments
    this.#tail = init.segments.at(-1)!
    this.#tailPos = init.tailPos
    this.#tailHasRecords = init.tailHasRecords
  }

  /** The log's terms and entry locations (replaced whole by an install or a reset). */
  get view(): LogView<EntryLoc> {
    return this.#view
  }

  hardState(): HardState {
    return decodeCanonical(this.#hardState) as HardState
  }

  snapshot(): SnapshotMeta | undefined {
    return this.#snapshot === undefined ? undefined : cloneValue(this.#snapshot)
  }

  get hasSnapshot(): boolean {
    return this.#snapshot !== undefined
  }

  /** The segments of the log, oldest first; the last one is the tail. */
  get segments(): readonly Segment[] {
    return this.#segments
  }

  get tail(): Segment {
    return this.#tail
  }

  // -------------------------------------------------------------------------------------------------
  // Mutations: each returns the job that makes it durable, or undefined when there is nothing to write.

  write(batch: WriteBatch): Job | undefined {
    const { hardState, truncateFrom, entries } = batch
    if (truncateFrom !== undefined) checkIndex(truncateFrom, 'truncateFrom')
    if (hardState !== undefined) checkHardState(hardState)
    this.#view.checkWrite(entries, truncateFrom)
    const list = entries ?? []
    const encoded = list.map(encodeEntry)
    const hs = hardState === undefined ? undefined : encodeCanonical(hardState)
    const truncates = truncateFrom !== undefined && truncateFrom <= this.#view.lastIndex()
    if (!truncates && encoded.length === 0 && hs === undefined) return undefined

    const meta: { i?: number; n?: number; t?: number; h?: Uint8Array } = {}
    if (encoded.length > 0) {
      meta.i = list[0]!.index
      meta.n = encoded.length
    }
    if (truncates) meta.t = truncateFrom
    if (hs !== undefined) meta.h = hs
    const { record, offsets } = batchRecord(encodeCanonical(meta), list, encoded)

    const job = this.#append(record)
    if (truncates) this.#view.truncateFrom(truncateFrom)
    job.locs = this.#pushEntries(job, list, encoded, offsets)
    if (hs !== undefined) {
      const commitOnly = encoded.length === 0 && !truncates && onlyCommitMoved(this.hardState(), hardState!)
      if (commitOnly) job.sync = false
      this.#hardState = hs
    }
    return job
  }

  /** Records `meta` as the snapshot now; returns the record of its file, which the store writes. */
  saveSnapshot(meta: SnapshotMeta, data?: Uint8Array): Uint8Array {
    checkSnapshotMeta(meta)
    const record = frameRecord(
      REC_SNAPSHOT,
      encodeCanonical(data === undefined ? { m: meta } : { m: meta, d: data }),
    )
    this.#snapshot = cloneValue(meta)
    return record
  }

  /** Replaces the log with the empty log after the snapshot; the job renames its file into place. */
  installSnapshot(meta: SnapshotMeta, data: Uint8Array): Job {
    checkSnapshotMeta(meta)
    checkSnapshotData(data)
    // encode everything before changing anything
    const hs = encodeCanonical(hardStateAfterInstall(this.hardState(), meta))
    const snapshot = cloneValue(meta)
    const seg = newSegment(this.#dir, this.#tail.seq + 1, meta.index)
    const record = frameRecord(
      REC_INSTALLED,
      encodeCanonical({ m: meta, d: data, seg: seg.seq, hs } satisfies InstalledRecord),
    )
    this.#view = new LogView<EntryLoc>()
    this.#view.resetTo(meta.index, meta.term)
    this.#hardState = hs
    this.#snapshot = snapshot
    this.#snapFloor = meta.index
    const job = this.#restartIn('install', seg)
    job.record = record
    return job
  }

  compact(upToIndex: number): Job | undefined {
    checkIndex(upToIndex, 'upToIndex')
    if (upToIndex <= this.#view.offset) return undefined
    const snap = this.#snapshot
    const term = this.#view.term(upToIndex) ?? (snap?.index === upToIndex ? snap.term : undefined)
    // `s`: the snapshot is on disk before this record (the store orders the job after it), and must stay
    const record: { upTo: number; term: number | null; s?: number } = {
      upTo: upToIndex,
      term: term ?? null,
    }
    if (snap !== undefined) record.s = snap.index
    const job = this.#append(frameRecord(REC_COMPACT, encodeCanonical(record)))
    this.#view.compact(upToIndex, term)
    if (snap !== undefined) this.#snapFloor = snap.index
    return job
  }

  reset(): Job {
    this.#view = new LogView<EntryLoc>()
    this.#hardState = encodeCanonical(initialHardState())
    this.#snapshot = undefined
    this.#snapFloor = undefined
    return this.#restartIn('reset', newSegment(this.#dir, this.#tail.seq + 1, 0))
  }

  /** A job that writes nothing, placed after everything queued so far. */
  barrier(): Job {
    return { kind: 'barrier', seg: this.#tail, pos: this.#tailPos, done: Promise.withResolvers() }
  }

  /**
   * Deletes the oldest segments once the compaction to `upTo` is durable (it is in `durableSeg`): a
   * segment goes when its successor is durable and starts at or below `upTo`, so replay from that
   * successor's header, then its records, rebuilds the same log. The segment the flusher has open
   * for writing (`writeSeg`) stays.
   */
  async deleteObsolete(
    upTo: number,
    durableSeg: Segment,
    writeSeg: () => Segment | undefined,
  ): Promise<void> {
    while (this.#segments.length >= 2) {
      const first = this.#segments[0]!
      const next = this.#segments[1]!
      if (next.seq > durableSeg.seq || next.baseLast > upTo || first === writeSeg()) break
      this.#segments.shift()
      first.deleted = true
      releaseReader(first)
      await rm(first.path, { force: true })
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Layout

  /** Places `record` after everything queued so far, starting a new segment when the tail is full. */
  #append(record: Uint8Array): Job {
    if (record.length > MAX_RECORD) {
      throw new InvalidArgumentError(
        `a write of ${record.length} bytes exceeds the limit of ${MAX_RECORD} bytes`,
      )
    }
    let header: Uint8Array | undefined
    if (this.#tailHasRecords && this.#tailPos >= this.#segmentSize) {
      const seg = newSegment(this.#dir, this.#tail.seq + 1, this.#view.lastIndex())
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

  /** Adds the entries of a BATCH job to the view and the cache, pointing at their bytes in `job.seg`. */
  #pushEntries(job: Job, list: readonly LogEntry[], encoded: Uint8Array[], offsets: number[]): EntryLoc[] {
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
      this.#cache.add(loc)
    }
    return locs
  }

  /**
   * Starts the log over in `seg`, once the view holds the new log (reset, install): the job writes its
   * header and deletes the segments of the old log.
   */
  #restartIn(kind: 'reset' | 'install', seg: Segment): Job {
    const old = this.#segments
    this.#cache.clear()
    const header = this.#headerRecord(seg)
    this.#segments = [seg]
    this.#tail = seg
    this.#tailPos = header.length
    this.#tailHasRecords = false
    return { kind, seg, pos: 0, header, old, done: Promise.withResolvers() }
  }

  /** The header of a segment started now: the state the records after it apply to. */
  #headerRecord(seg: Segment): Uint8Array {
    return headerRecord(seg.seq, this.#view, this.#hardState, this.#snapFloor)
  }
}

/**
 * Replay of FileLogStore's segments: applies the records of one segment, already read into memory, to
 * the state of the log rebuilt so far. A record that passes its checksum but makes no sense, or a header
 * that does not continue the segment before it, is corruption (CorruptLogError); where the valid records
 * stop short of the end of the file is for recovery to judge.
 */
import { CorruptLogError, initialHardState } from '../../../src/groups/storage/log-store.ts'
import { LogView } from '../../../src/groups/storage/log-view.ts'
import { equalBytes } from '../../../src/primitives/bytes.ts'
import { encodeCanonical } from '../../../src/primitives/codec.ts'
import {
  checkVersion,
  decodeRecord,
  ENTRY_PREFIX,
  type EntryLoc,
  FRAME,
  isCount,
  optionalTerm,
  REC_BATCH,
  REC_COMPACT,
  REC_HEADER,
  readRecord,
  type Segment,
  type SnapshotFile,
} from './format.ts'

export interface ReplayState {
  view: LogView<EntryLoc>
  hardState: Uint8Array
  /** The highest compaction point recorded (in a header or a COMPACT record). */
  compactedTo: number
  snapFloor: number | undefined
  /** The segment replayed before, and where its records end. */
  prev: { path: string; size: number } | undefined
}

/** The state replay starts from: the empty log, or the one an installed snapshot left. */
export function replayStart(snap: SnapshotFile | undefined): ReplayState {
  const state: ReplayState = {
    view: new LogView<EntryLoc>(),
    hardState: encodeCanonical(initialHardState()),
    compactedTo: 0,
    snapFloor: undefined,
    prev: undefined,
  }
  if (snap?.installed !== undefined) {
    // what the first segment's header says too; the only source when no segment of the new log survived
    state.view.resetTo(snap.meta.index, snap.meta.term)
    state.hardState = snap.installed.hs
    state.snapFloor = snap.meta.index
  }
  return state
}

/**
 * Applies the valid records of one segment. Returns where they end (a torn or corrupt record, or the end
 * of the file; 0 when the header is bad). Records that pass their checksum but make no sense, and a
 * header that does not continue the segment before it, are corruption and throw.
 */
export function replaySegment(
  buf: Uint8Array,
  seg: Segment,
  state: ReplayState,
): { end: number; records: number } {
  const header = readHeader(buf, seg)
  if (header === undefined) return { end: 0, records: 0 }
  seg.baseLast = header.last
  applyHeader(header, state)
  return replayRecords(buf, header.end, seg, state)
}

/** A segment's HEADER record, checked. */
interface SegmentHeader {
  /** Where it ends: the segment's first record starts there. */
  end: number
  /** Names it in errors. */
  where: string
  last: number
  /** Checked only where replay starts from it. */
  lastTerm: unknown
  hs: Uint8Array
  compacted: number
  snap: number | undefined
}

/** The header of the segment in `buf`, or undefined when it is torn; throws when it is wrong. */
function readHeader(buf: Uint8Array, seg: Segment): SegmentHeader | undefined {
  const h = readRecord(buf, 0)
  if (h === undefined) return undefined
  if (h.type !== REC_HEADER) {
    // It passed its checksum, so it is not a torn header: a later format's, say. Never removed as one.
    throw new CorruptLogError(`${seg.path} starts with a record of type ${h.type} at byte 0, not a header`)
  }
  const where = `the header of ${seg.path} (byte 0)`
  const header = decodeRecord(buf.subarray(h.start, h.end), where)
  checkVersion(header.v, where)
  if (header.seq !== seg.seq) {
    throw new CorruptLogError(`${where} belongs to segment ${String(header.seq)}: segment files were renamed`)
  }
  if (!isCount(header.last) || !(header.hs instanceof Uint8Array) || !isCount(header.compacted)) {
    throw new CorruptLogError(`${where} is malformed`)
  }
  if (header.snap !== undefined && !isCount(header.snap)) throw new CorruptLogError(`${where} is malformed`)
  const { last, lastTerm, hs, compacted, snap } = header
  return { end: h.end, where, last, lastTerm, hs, compacted, snap }
}

/** Takes the state a header describes, which must be the state the segment before ended with. */
function applyHeader(header: SegmentHeader, state: ReplayState): void {
  const v = state.view
  if (state.prev === undefined) {
    // everything before this segment has been compacted away (or this is the first segment ever)
    v.resetTo(header.last, optionalTerm(header.lastTerm, header.where))
  } else {
    // The header repeats the state the segment before ended with. (Replay may have skipped entries the
    // writer still had, up to the compaction point: hence the max.)
    const { path, size } = state.prev
    if (Math.max(header.last, v.offset) !== v.lastIndex() || !equalBytes(header.hs, state.hardState)) {
      throw new CorruptLogError(
        `records are missing at the end of ${path} (it ends at byte ${size}, at index ${v.lastIndex()}): ` +
          `${header.where} continues from index ${header.last}`,
      )
    }
  }
  state.hardState = header.hs
  state.compactedTo = Math.max(state.compactedTo, header.compacted)
  if (header.snap !== undefined) state.snapFloor = header.snap
}

/** Applies the records from `start` on, up to the first that is torn or corrupt, or the end. */
function replayRecords(
  buf: Uint8Array,
  start: number,
  seg: Segment,
  state: ReplayState,
): { end: number; records: number } {
  let pos = start
  let records = 0
  while (pos < buf.length) {
    const r = readRecord(buf, pos)
    if (r === undefined) break
    if (r.type === REC_BATCH) replayBatch(buf, r.start, r.end, seg, state)
    else if (r.type === REC_COMPACT) {
      replayCompact(buf.subarray(r.start, r.end), `a compaction at byte ${pos} of ${seg.path}`, state)
    } else {
      throw new CorruptLogError(`${seg.path} has a record of unknown type ${r.type} at byte ${pos}`)
    }
    records++
    pos = r.end
  }
  return { end: pos, records }
}

function replayCompact(payload: Uint8Array, what: string, state: ReplayState): void {
  const c = decodeRecord(payload, what)
  if (!isCount(c.upTo) || (c.s !== undefined && !isCount(c.s)))
    throw new CorruptLogError(`${what} is malformed`)
  const term = optionalTerm(c.term, what)
  const v = state.view
  // at the point replay started from, the header's term may predate a rewrite of that entry
  if (!v.compact(c.upTo, term) && c.upTo === v.offset && term !== undefined) v.setOffsetTerm(term)
  state.compactedTo = Math.max(state.compactedTo, c.upTo)
  if (c.s !== undefined) state.snapFloor = c.s
}

function replayBatch(buf: Uint8Array, start: number, end: number, seg: Segment, state: ReplayState): void {
  const where = `a batch at byte ${start - FRAME} of ${seg.path}`
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
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

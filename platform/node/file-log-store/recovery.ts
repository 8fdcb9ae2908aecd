/**
 * Opening a FileLogStore: replays its directory into the in-memory state, cutting off a torn tail and
 * refusing (CorruptLogError, naming the file and byte) whatever else is damaged or missing, since that
 * would lose acknowledged writes or roll back the hard state (a node could vote twice in a term).
 */
import type { FileHandle } from 'node:fs/promises'
import { open, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { SnapshotMeta } from '../../../src/groups/storage/log-store.ts'
import { CorruptLogError, initialHardState } from '../../../src/groups/storage/log-store.ts'
import { LogView } from '../../../src/groups/storage/log-view.ts'
import { equalBytes } from '../../../src/primitives/bytes.ts'
import { encodeCanonical } from '../../../src/primitives/codec.ts'
import {
  decodeRecord,
  ENTRY_PREFIX,
  type EntryLoc,
  FORMAT_VERSION,
  FRAME,
  findRecordAfter,
  fsyncDir,
  headerRecord,
  isCount,
  MANIFEST_FILE,
  MANIFEST_TMP,
  type Manifest,
  newSegment,
  optionalTerm,
  REC_BATCH,
  REC_COMPACT,
  REC_HEADER,
  RESET_MARKER,
  readManifest,
  readRecord,
  readSnapshotFile,
  SEGMENT_RE,
  type Segment,
  SNAPSHOT_FILE,
  SNAPSHOT_TMP,
  type SnapshotFile,
  segmentName,
  writeAll,
  writeManifest,
} from './format.ts'

export interface Recovered {
  dir: string
  view: LogView<EntryLoc>
  hardState: Uint8Array
  snapshot: SnapshotMeta | undefined
  /** The index of a snapshot the log was compacted against: its file must stay. */
  snapFloor: number | undefined
  segments: Segment[]
  tailPos: number
  tailHasRecords: boolean
  writeHandle: FileHandle
}

/** Rebuilds the store's state from `dir` (which exists and is locked). */
export async function recover(dir: string, fsync: boolean): Promise<Recovered> {
  let names = await readdir(dir)
  if (names.includes(RESET_MARKER)) {
    await wipe(dir, names, fsync)
    names = await readdir(dir)
  }
  for (const tmp of [SNAPSHOT_TMP, MANIFEST_TMP]) {
    if (names.includes(tmp)) await rm(join(dir, tmp), { force: true })
  }
  const manifest = names.includes(MANIFEST_FILE) ? await readManifest(dir) : undefined
  const snap = names.includes(SNAPSHOT_FILE) ? await readSnapshotFile(dir) : undefined
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
  checkSegmentsPresent(dir, seqs, manifest, floor, snap)

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
  const segments: Segment[] = []
  let tailPos = 0
  let tailHasRecords = false
  for (let k = 0; k < seqs.length; k++) {
    const seg = newSegment(dir, seqs[k]!, 0)
    const buf = await readFile(seg.path)
    const r = replaySegment(buf, seg, state)
    // (end 0: no valid header, even in an empty file)
    if (r.end === 0 || r.end < buf.length) {
      const what = r.end === 0 ? 'its header' : 'the record'
      if (k < seqs.length - 1) {
        // fsynced before its successor was created: no torn write can be here
        throw new CorruptLogError(`${seg.path}: ${what} at byte ${r.end} fails its checksum or is cut short`)
      }
      // A torn final flush is dropped. A valid record after the damage means it is not that: it may be
      // a flipped bit, or, after a power loss, sectors of one unacknowledged flush the disk wrote out of
      // order. Both are refused: cutting there would silently drop acknowledged records.
      const next = findRecordAfter(buf, r.end)
      if (next !== undefined) {
        const after = next.sure
          ? `a valid record follows at byte ${next.at}`
          : `valid records after it could not be ruled out (the scan gave up at byte ${next.at})`
        throw new CorruptLogError(
          `${seg.path}: ${what} at byte ${r.end} fails its checksum or is cut short, but ${after}, ` +
            'so it is not a torn final write',
        )
      }
      if (r.end === 0) {
        if (manifest !== undefined && seg.seq <= manifest.top) {
          throw new CorruptLogError(`${seg.path}: its header at byte 0 is damaged`)
        }
        // created, but its header never became durable: nothing in it was acknowledged
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
    state.prev = { path: seg.path, size: r.end }
    tailPos = r.end
    tailHasRecords = r.records > 0
  }
  checkComplete(dir, segments[0], state, snap)

  let writeHandle: FileHandle
  if (segments.length === 0) {
    const seg = newSegment(dir, Math.max((seqs.at(-1) ?? 0) + 1, floor), state.view.lastIndex())
    const header = headerRecord(seg.seq, state.view, state.hardState, state.snapFloor)
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
  const top = segments.at(-1)!.seq
  if (manifest?.top !== top) {
    try {
      await writeManifest(dir, { top }, fsync)
    } catch (err) {
      await writeHandle.close()
      throw err
    }
  }
  let snapFloor = state.snapFloor
  // a directory from before snapshots were recorded in the log: protect the snapshot from now on
  if (snapFloor === undefined && snap !== undefined && state.view.offset > 0) snapFloor = snap.meta.index
  return {
    dir,
    view: state.view,
    hardState: state.hardState,
    snapshot: snap?.meta,
    snapFloor,
    segments,
    tailPos,
    tailHasRecords,
    writeHandle,
  }
}

/** Deletes everything a store keeps in `dir` (finishing an interrupted reset). */
async function wipe(dir: string, names: string[], fsync: boolean): Promise<void> {
  const ours = [SNAPSHOT_FILE, SNAPSHOT_TMP, MANIFEST_FILE, MANIFEST_TMP]
  for (const name of names) {
    if (SEGMENT_RE.test(name) || ours.includes(name)) await rm(join(dir, name), { force: true })
  }
  if (fsync) await fsyncDir(dir)
  await rm(join(dir, RESET_MARKER), { force: true })
  if (fsync) await fsyncDir(dir)
}

/** Refuses a segment set with files missing: in the middle, at the end, or all of them. */
function checkSegmentsPresent(
  dir: string,
  seqs: number[],
  manifest: Manifest | undefined,
  floor: number,
  snap: SnapshotFile | undefined,
): void {
  for (let k = 1; k < seqs.length; k++) {
    if (seqs[k] !== seqs[k - 1]! + 1) {
      throw new CorruptLogError(
        `${join(dir, segmentName(seqs[k - 1]! + 1))} is missing (a gap in the segments)`,
      )
    }
  }
  // With `floor` above `top`, an install committed before its first segment was recorded: nothing to check.
  if (manifest !== undefined && floor <= manifest.top) {
    const last = seqs.at(-1)
    const recorded = `${MANIFEST_FILE} records segments up to ${segmentName(manifest.top)}`
    if (last === undefined) {
      throw new CorruptLogError(`every segment of the log store in ${dir} is missing: ${recorded}`)
    }
    if (last < manifest.top) {
      throw new CorruptLogError(
        `${join(dir, segmentName(last + 1))} is missing, and any after it: ${recorded}`,
      )
    }
  }
  if (seqs.length === 0 && snap !== undefined && snap.installed === undefined) {
    throw new CorruptLogError(`${join(dir, SNAPSHOT_FILE)} exists but every segment of the log is missing`)
  }
}

/** Refuses a log whose leading segments or snapshot were deleted (after the replay). */
function checkComplete(
  dir: string,
  first: Segment | undefined,
  state: ReplayState,
  snap: SnapshotFile | undefined,
): void {
  // the first segment starts after index `baseLast`: everything up to there must have been compacted
  if (first !== undefined && first.baseLast > state.compactedTo) {
    throw new CorruptLogError(
      `entries ${state.compactedTo + 1}..${first.baseLast} of the log store in ${dir} are missing: the first ` +
        `segment ${first.path} starts after ${first.baseLast} but the log was compacted only to ${state.compactedTo}`,
    )
  }
  if (state.snapFloor !== undefined && snap === undefined) {
    throw new CorruptLogError(
      `${join(dir, SNAPSHOT_FILE)} is missing, but the log was compacted against the snapshot at index ${state.snapFloor}`,
    )
  }
}

interface ReplayState {
  view: LogView<EntryLoc>
  hardState: Uint8Array
  /** The highest compaction point recorded (in a header or a COMPACT record). */
  compactedTo: number
  snapFloor: number | undefined
  /** The segment replayed before, and where its records end. */
  prev: { path: string; size: number } | undefined
}

/**
 * Applies the valid records of one segment. Returns where they end (a torn or corrupt record, or the end
 * of the file; 0 when the header is bad). Records that pass their checksum but make no sense, and a
 * header that does not continue the segment before it, are corruption and throw.
 */
function replaySegment(buf: Uint8Array, seg: Segment, state: ReplayState): { end: number; records: number } {
  const h = readRecord(buf, 0)
  if (h === undefined || h.type !== REC_HEADER) return { end: 0, records: 0 }
  const where = `the header of ${seg.path} (byte 0)`
  const header = decodeRecord(buf.subarray(h.start, h.end), where)
  if (header.v !== FORMAT_VERSION)
    throw new CorruptLogError(`${where} has unknown format version ${String(header.v)}`)
  if (header.seq !== seg.seq) {
    throw new CorruptLogError(`${where} belongs to segment ${String(header.seq)}: segment files were renamed`)
  }
  if (!isCount(header.last) || !(header.hs instanceof Uint8Array) || !isCount(header.compacted)) {
    throw new CorruptLogError(`${where} is malformed`)
  }
  if (header.snap !== undefined && !isCount(header.snap)) throw new CorruptLogError(`${where} is malformed`)
  seg.baseLast = header.last
  const v = state.view
  if (state.prev === undefined) {
    // everything before this segment has been compacted away (or this is the first segment ever)
    v.resetTo(header.last, optionalTerm(header.lastTerm, where))
  } else {
    // The header repeats the state the segment before ended with. (Replay may have skipped entries the
    // writer still had, up to the compaction point: hence the max.)
    const { path, size } = state.prev
    if (Math.max(header.last, v.offset) !== v.lastIndex() || !equalBytes(header.hs, state.hardState)) {
      throw new CorruptLogError(
        `records are missing at the end of ${path} (it ends at byte ${size}, at index ${v.lastIndex()}): ` +
          `${where} continues from index ${header.last}`,
      )
    }
  }
  state.hardState = header.hs
  state.compactedTo = Math.max(state.compactedTo, header.compacted)
  if (header.snap !== undefined) state.snapFloor = header.snap
  let pos = h.end
  let records = 0
  while (pos < buf.length) {
    const r = readRecord(buf, pos)
    if (r === undefined) break
    if (r.type === REC_BATCH) replayBatch(buf, r.start, r.end, seg, state)
    else if (r.type === REC_COMPACT) {
      const what = `a compaction at byte ${pos} of ${seg.path}`
      const c = decodeRecord(buf.subarray(r.start, r.end), what)
      if (!isCount(c.upTo) || (c.s !== undefined && !isCount(c.s)))
        throw new CorruptLogError(`${what} is malformed`)
      const term = optionalTerm(c.term, what)
      // at the point replay started from, the header's term may predate a rewrite of that entry
      if (!v.compact(c.upTo, term) && c.upTo === v.offset && term !== undefined) v.setOffsetTerm(term)
      state.compactedTo = Math.max(state.compactedTo, c.upTo)
      if (c.s !== undefined) state.snapFloor = c.s
    } else {
      throw new CorruptLogError(`${seg.path} has a record of unknown type ${r.type} at byte ${pos}`)
    }
    records++
    pos = r.end
  }
  return { end: pos, records }
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

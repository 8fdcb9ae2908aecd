/**
 * Opening a FileLogStore: replays its directory into the in-memory state, cutting off a torn tail and
 * refusing (CorruptLogError, naming the file and byte) whatever else is damaged or missing, since that
 * would lose acknowledged writes or roll back the hard state (a node could vote twice in a term).
 */
import type { FileHandle } from 'node:fs/promises'
import { open, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { SnapshotMeta } from '../../../src/groups/storage/log-store.ts'
import { CorruptLogError } from '../../../src/groups/storage/log-store.ts'
import type { LogView } from '../../../src/groups/storage/log-view.ts'
import {
  type EntryLoc,
  findRecordAfter,
  fsyncDir,
  headerRecord,
  MANIFEST_FILE,
  MANIFEST_TMP,
  type Manifest,
  newSegment,
  RESET_MARKER,
  readManifest,
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
import { type ReplayState, replaySegment, replayStart } from './replay.ts'

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
  const names = await finishInterrupted(dir, fsync)
  const manifest = names.includes(MANIFEST_FILE) ? await readManifest(dir) : undefined
  const snap = names.includes(SNAPSHOT_FILE) ? await readSnapshotFile(dir) : undefined
  /** Segments below it belong to a log that an installed snapshot replaced. */
  const floor = snap?.installed?.seg ?? 0
  const seqs = await dropReplacedSegments(dir, segmentSeqs(names), floor, fsync)
  checkSegmentsPresent(dir, seqs, manifest, floor, snap)

  const state = replayStart(snap)
  const log = await replaySegments(dir, seqs, manifest, state, fsync)
  checkComplete(dir, log.segments[0], state, snap)
  // the store appends to the last segment; when none survived, it starts one
  const writeHandle =
    log.segments.length > 0
      ? await open(log.segments.at(-1)!.path, 'r+')
      : await startLog(dir, log, Math.max((seqs.at(-1) ?? 0) + 1, floor), state, fsync)
  await recordTop(dir, manifest, log.segments.at(-1)!.seq, writeHandle, fsync)
  let snapFloor = state.snapFloor
  // a directory from before snapshots were recorded in the log: protect the snapshot from now on
  if (snapFloor === undefined && snap !== undefined && state.view.offset > 0) snapFloor = snap.meta.index
  return {
    dir,
    view: state.view,
    hardState: state.hardState,
    snapshot: snap?.meta,
    snapFloor,
    segments: log.segments,
    tailPos: log.tailPos,
    tailHasRecords: log.tailHasRecords,
    writeHandle,
  }
}

/**
 * Lists `dir` after finishing what a crash interrupted: a reset is wiped to its end, and a snapshot or
 * manifest file that was being written is dropped (its rename, the commit point, never happened).
 */
async function finishInterrupted(dir: string, fsync: boolean): Promise<string[]> {
  let names = await readdir(dir)
  if (names.includes(RESET_MARKER)) {
    await wipe(dir, names, fsync)
    names = await readdir(dir)
  }
  for (const tmp of [SNAPSHOT_TMP, MANIFEST_TMP]) {
    if (names.includes(tmp)) await rm(join(dir, tmp), { force: true })
  }
  return names
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

/** The numbers of the segment files among `names`, in order. */
function segmentSeqs(names: string[]): number[] {
  return names
    .map((n) => SEGMENT_RE.exec(n)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b)
}

/** Deletes the segments below `floor`, which belong to the log an installed snapshot replaced. */
async function dropReplacedSegments(
  dir: string,
  seqs: number[],
  floor: number,
  fsync: boolean,
): Promise<number[]> {
  if (seqs.length === 0 || seqs[0]! >= floor) return seqs
  // an install committed, then the process died before it deleted the old log: finish that
  for (const seq of seqs) if (seq < floor) await rm(join(dir, segmentName(seq)), { force: true })
  if (fsync) await fsyncDir(dir)
  return seqs.filter((seq) => seq >= floor)
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

/** The segments replay kept, and where the valid records of the last one end. */
interface ReplayedLog {
  segments: Segment[]
  tailPos: number
  tailHasRecords: boolean
}

/** Replays the segments `seqs` in order into `state`, cutting off a torn final write. */
async function replaySegments(
  dir: string,
  seqs: number[],
  manifest: Manifest | undefined,
  state: ReplayState,
  fsync: boolean,
): Promise<ReplayedLog> {
  const log: ReplayedLog = { segments: [], tailPos: 0, tailHasRecords: false }
  for (let k = 0; k < seqs.length; k++) {
    const seg = newSegment(dir, seqs[k]!, 0)
    const buf = await readFile(seg.path)
    const r = replaySegment(buf, seg, state)
    // (end 0: no valid header, even in an empty file)
    if (r.end === 0 || r.end < buf.length) {
      const last = k === seqs.length - 1
      if (!(await cutTornTail(dir, seg, buf, r.end, last, manifest, fsync))) continue
    }
    log.segments.push(seg)
    state.prev = { path: seg.path, size: r.end }
    log.tailPos = r.end
    log.tailHasRecords = r.records > 0
  }
  return log
}

/**
 * Deals with a segment whose valid records stop at `end`, before the end of the file. A torn final
 * flush was never acknowledged (a write resolves after its fsync), so it is cut off; when what tore is
 * the header (`end` 0), the segment goes, and false is returned. Anything else is refused.
 */
async function cutTornTail(
  dir: string,
  seg: Segment,
  buf: Uint8Array,
  end: number,
  last: boolean,
  manifest: Manifest | undefined,
  fsync: boolean,
): Promise<boolean> {
  checkTornTail(seg, buf, end, last)
  if (end === 0) {
    if (manifest !== undefined && seg.seq <= manifest.top) {
      throw new CorruptLogError(`${seg.path}: its header at byte 0 is damaged`)
    }
    // created, but its header never became durable: nothing in it was acknowledged
    await rm(seg.path, { force: true })
    if (fsync) await fsyncDir(dir)
    return false
  }
  const fh = await open(seg.path, 'r+')
  try {
    await fh.truncate(end)
    if (fsync) await fh.datasync()
  } finally {
    await fh.close()
  }
  return true
}

/** Refuses damage at `end` that a torn final flush cannot explain. */
function checkTornTail(seg: Segment, buf: Uint8Array, end: number, last: boolean): void {
  const what = end === 0 ? 'its header' : 'the record'
  if (!last) {
    // fsynced before its successor was created: no torn write can be here
    throw new CorruptLogError(`${seg.path}: ${what} at byte ${end} fails its checksum or is cut short`)
  }
  // A torn final flush is dropped. A valid record after the damage means it is not that: it may be
  // a flipped bit, or, after a power loss, sectors of one unacknowledged flush the disk wrote out of
  // order. Both are refused: cutting there would silently drop acknowledged records.
  const next = findRecordAfter(buf, end)
  if (next !== undefined) {
    const after = next.sure
      ? `a valid record follows at byte ${next.at}`
      : `valid records after it could not be ruled out (the scan gave up at byte ${next.at})`
    throw new CorruptLogError(
      `${seg.path}: ${what} at byte ${end} fails its checksum or is cut short, but ${after}, ` +
        'so it is not a torn final write',
    )
  }
}

/**
 * Creates the first segment of a log no segment survived of (a new store, or an install whose first
 * segment was never created), with a header describing the replayed state; adds it to `log` and
 * returns it open for writing.
 */
async function startLog(
  dir: string,
  log: ReplayedLog,
  seq: number,
  state: ReplayState,
  fsync: boolean,
): Promise<FileHandle> {
  const seg = newSegment(dir, seq, state.view.lastIndex())
  const header = headerRecord(seg.seq, state.view, state.hardState, state.snapFloor)
  const writeHandle = await open(seg.path, 'wx')
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
  log.segments.push(seg)
  log.tailPos = header.length
  log.tailHasRecords = false
  return writeHandle
}

/**
 * Makes the manifest name `top`, the last segment: it lags when a crash came between a segment's
 * creation and its recording, or when recovery created the segment, and a store from before the
 * manifest has none. Closes `writeHandle` if that fails.
 */
async function recordTop(
  dir: string,
  manifest: Manifest | undefined,
  top: number,
  writeHandle: FileHandle,
  fsync: boolean,
): Promise<void> {
  if (manifest?.top === top) return
  try {
    await writeManifest(dir, { top }, fsync)
  } catch (err) {
    await writeHandle.close()
    throw err
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

/**
 * The on-disk format of FileLogStore (described in file-log-store.ts): record framing, the segment,
 * snapshot and manifest files, and the small file-system helpers the store and its recovery share.
 */
import type { FileHandle } from 'node:fs/promises'
import { open, readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import type { LogEntry, SnapshotMeta } from '../../../src/groups/storage/log-store.ts'
import { CorruptLogError, checkSnapshotMeta } from '../../../src/groups/storage/log-store.ts'
import type { LogView } from '../../../src/groups/storage/log-view.ts'
import { decodeCanonical, encodeCanonical } from '../../../src/primitives/codec.ts'
import { describeValue } from '../../../src/primitives/errors.ts'

export const MiB = 1024 * 1024
export const FORMAT_VERSION = 1
/** `[u32 length][u32 crc32][u8 type]` */
export const FRAME = 9
/** Per entry in a BATCH record: `[u32 length][f64 term]` */
export const ENTRY_PREFIX = 12
export const MAX_RECORD = 1024 * MiB
export const REC_HEADER = 1
export const REC_BATCH = 2
export const REC_COMPACT = 3
export const REC_SNAPSHOT = 4
export const REC_INSTALLED = 5
export const REC_MANIFEST = 6
export const SEGMENT_RE = /^(\d{16})\.seg$/
export const SNAPSHOT_FILE = 'snapshot'
export const SNAPSHOT_TMP = 'snapshot.tmp'
export const MANIFEST_FILE = 'MANIFEST'
export const MANIFEST_TMP = 'MANIFEST.tmp'
export const RESET_MARKER = 'RESET'

export interface Segment {
  seq: number
  path: string
  /** The last index of the log when the segment was started (from its header). */
  baseLast: number
  reader: Promise<FileHandle> | undefined
  /** Reads in progress; a deleted segment's reader is closed when they are done. */
  reads: number
  deleted: boolean
}

export interface EntryLoc {
  seg: Segment
  /** Where the entry's CBOR starts in the segment. */
  pos: number
  len: number
  /** The CBOR, while the entry is in the cache (always until it is written). */
  bytes: Uint8Array | undefined
  written: boolean
}

/** The payload of an INSTALLED snapshot file. */
export interface InstalledRecord {
  m: SnapshotMeta
  d: Uint8Array
  /** The first segment of the log that starts after the snapshot. */
  seg: number
  /** The hard state as of the install (CBOR). */
  hs: Uint8Array
}

/** A snapshot file's contents; `installed` when it came from `installSnapshot`. */
export interface SnapshotFile {
  meta: SnapshotMeta
  data?: Uint8Array
  installed?: { seg: number; hs: Uint8Array }
}

export function newSegment(dir: string, seq: number, baseLast: number): Segment {
  return { seq, path: join(dir, segmentName(seq)), baseLast, reader: undefined, reads: 0, deleted: false }
}

export function segmentName(seq: number): string {
  return `${seq.toString().padStart(16, '0')}.seg`
}

/**
 * The HEADER record of segment `seq`: the log and hard state the records after it apply to. `snap` is
 * the index of a snapshot the log was compacted against (its file must exist).
 */
export function headerRecord(
  seq: number,
  view: LogView<unknown>,
  hardState: Uint8Array,
  snap: number | undefined,
): Uint8Array {
  const last = view.lastIndex()
  const header: Record<string, unknown> = {
    v: FORMAT_VERSION,
    seq,
    last,
    lastTerm: view.term(last) ?? null,
    compacted: view.offset,
    compactedTerm: view.offsetTerm ?? null,
    hs: hardState,
  }
  if (snap !== undefined) header.snap = snap
  return frameRecord(REC_HEADER, encodeCanonical(header))
}

// ---------------------------------------------------------------------------------------------------
// Records

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

export function frameRecord(type: number, payload: Uint8Array): Uint8Array {
  const rec = new Uint8Array(FRAME + payload.length)
  rec.set(payload, FRAME)
  return sealRecord(rec, type)
}

/** A BATCH record, and where each entry's CBOR starts relative to the record. */
export function batchRecord(
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
export function readRecord(
  buf: Uint8Array,
  pos: number,
): { type: number; start: number; end: number } | undefined {
  if (buf.length - pos < FRAME) return undefined
  const dv = view(buf)
  const len = dv.getUint32(pos, true)
  if (len === 0 || len > buf.length - pos - FRAME) return undefined
  const end = pos + FRAME + len
  if (crc32(buf.subarray(pos + 8, end)) !== dv.getUint32(pos + 4, true)) return undefined
  return { type: buf[pos + 8]!, start: pos + FRAME, end }
}

/**
 * Where the first valid record after `from` begins, if one does. Every offset is a candidate (the bad
 * record's length cannot be trusted). Only BATCH and COMPACT records can follow a header, and cheap checks
 * of their structure (the length fits, the payload starts with a CBOR map, a batch's entry lengths add up
 * to its length) rule out almost every offset before a checksum is computed. Crafted bytes could still
 * pass them at many offsets: past a budget of checksummed bytes the scan stops and reports where
 * (`sure: false`), which the caller must treat as a record found.
 */
export function findRecordAfter(buf: Uint8Array, from: number): { at: number; sure: boolean } | undefined {
  const dv = view(buf)
  const n = buf.length
  // bytes checksummed, and 12 per entry header followed, before giving up: linear in what is scanned
  let budget = 16 * (n - from) + 64 * MiB
  for (let q = from + 1; q + FRAME < n; q++) {
    const type = buf[q + 8]
    if (type !== REC_BATCH && type !== REC_COMPACT) continue
    const len = dv.getUint32(q, true)
    if (len === 0 || len > n - q - FRAME) continue
    if (type === REC_COMPACT) {
      if (len > MAX_COMPACT || !isCborMap(buf[q + FRAME]!)) continue
    } else {
      // [u32 meta length][meta: a CBOR map] then [u32 length][f64 term][entry]... filling `len` exactly
      if (len < 5) continue
      const metaLen = dv.getUint32(q + FRAME, true)
      if (metaLen === 0 || metaLen > len - 4 || !isCborMap(buf[q + FRAME + 4]!)) continue
      let p = 4 + metaLen
      while (p < len && len - p >= ENTRY_PREFIX) {
        p += ENTRY_PREFIX + dv.getUint32(q + FRAME + p, true)
        budget -= ENTRY_PREFIX
      }
      if (budget < 0) return { at: q, sure: false }
      if (p !== len) continue
    }
    budget -= len
    if (budget < 0) return { at: q, sure: false }
    if (crc32(buf.subarray(q + 8, q + FRAME + len)) === dv.getUint32(q + 4, true))
      return { at: q, sure: true }
  }
  return undefined
}

/** A COMPACT payload is a map of three numbers. */
const MAX_COMPACT = 256

function isCborMap(byte: number): boolean {
  return byte >= 0xa0 && byte <= 0xbf
}

export function decodeRecord(buf: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown
  try {
    value = decodeCanonical(buf)
  } catch (err) {
    throw new CorruptLogError(`${what} does not decode`, { cause: err })
  }
  if (value === null || typeof value !== 'object') throw new CorruptLogError(`${what} is not a map`)
  return value as Record<string, unknown>
}

export function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

export function optionalTerm(n: unknown, what: string): number | undefined {
  if (n === null || n === undefined) return undefined
  if (!isCount(n)) throw new CorruptLogError(`${what} has a bad term`)
  return n
}

// ---------------------------------------------------------------------------------------------------
// Files

export async function writeAll(fh: FileHandle, buf: Uint8Array, pos: number): Promise<void> {
  let off = 0
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, pos + off)
    off += bytesWritten
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Replaces `dir/name` with `bytes` atomically: written to `tmp`, fsynced, renamed over, dir fsynced. */
export async function replaceFile(
  dir: string,
  name: string,
  tmp: string,
  bytes: Uint8Array,
  fsync: boolean,
): Promise<void> {
  const fh = await open(join(dir, tmp), 'w')
  try {
    await writeAll(fh, bytes, 0)
    if (fsync) await fh.datasync()
  } finally {
    await fh.close()
  }
  await rename(join(dir, tmp), join(dir, name))
  if (fsync) await fsyncDir(dir)
}

/** Reads a file that holds exactly one record, or undefined when there is no such file. */
async function readRecordFile(path: string): Promise<{ type: number; payload: Uint8Array } | undefined> {
  let buf: Uint8Array
  try {
    buf = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const rec = readRecord(buf, 0)
  // replaced only by rename, so never torn: any damage is refused
  if (rec === undefined)
    throw new CorruptLogError(`${path} ${recordDamage(buf)} (byte 0, ${buf.length} bytes)`)
  if (rec.end !== buf.length) {
    throw new CorruptLogError(`${path} has ${buf.length - rec.end} bytes after its record (byte ${rec.end})`)
  }
  return { type: rec.type, payload: buf.subarray(rec.start, rec.end) }
}

/** What is wrong with the record at the start of `buf`, which readRecord refused. */
function recordDamage(buf: Uint8Array): string {
  if (buf.length === 0) return 'is empty'
  const len = buf.length < FRAME ? undefined : view(buf).getUint32(0, true)
  if (len === undefined || len > buf.length - FRAME) return 'is cut short'
  return len === 0 ? 'holds a record of length 0' : 'fails its checksum'
}

/** The format version a file records, checked: a later one is refused, never read as something else. */
export function checkVersion(v: unknown, where: string): void {
  if (v === FORMAT_VERSION) return
  if (v === undefined) throw new CorruptLogError(`${where} has no format version`)
  const newer = isCount(v) && v > FORMAT_VERSION ? ' (written by a newer version of mosaik?)' : ''
  throw new CorruptLogError(`${where} has unknown format version ${describeValue(v)}${newer}`)
}

export async function readSnapshotFile(dir: string): Promise<SnapshotFile | undefined> {
  const path = join(dir, SNAPSHOT_FILE)
  const rec = await readRecordFile(path)
  if (rec === undefined) return undefined
  if (rec.type !== REC_SNAPSHOT && rec.type !== REC_INSTALLED) {
    throw new CorruptLogError(`${path} has a record of unknown type ${rec.type} at byte 0`)
  }
  const value = decodeRecord(rec.payload, path)
  const meta = value.m as SnapshotMeta
  try {
    checkSnapshotMeta(meta)
  } catch (err) {
    throw new CorruptLogError(`the snapshot metadata in ${path} is malformed`, { cause: err })
  }
  if (value.d !== undefined && !(value.d instanceof Uint8Array))
    throw new CorruptLogError(`bad snapshot data in ${path}`)
  const out: SnapshotFile = value.d === undefined ? { meta } : { meta, data: value.d }
  if (rec.type === REC_INSTALLED) {
    if (!isCount(value.seg) || value.seg < 1 || !(value.hs instanceof Uint8Array) || out.data === undefined) {
      throw new CorruptLogError(`the installed snapshot in ${path} is malformed`)
    }
    out.installed = { seg: value.seg, hs: value.hs }
  }
  return out
}

/**
 * The MANIFEST: that the store exists, and the highest segment number whose header is durable. It is
 * rewritten (atomically) whenever a segment is created, so deleted segments cannot pass for a fresh or a
 * shorter log. Directories written before it existed have none: they get one on open.
 */
export interface Manifest {
  top: number
}

export async function readManifest(dir: string): Promise<Manifest | undefined> {
  const path = join(dir, MANIFEST_FILE)
  const rec = await readRecordFile(path)
  if (rec === undefined) return undefined
  if (rec.type !== REC_MANIFEST) {
    throw new CorruptLogError(`${path} has a record of type ${rec.type} at byte 0, not a manifest`)
  }
  const value = decodeRecord(rec.payload, path)
  checkVersion(value.v, path)
  if (!isCount(value.top)) throw new CorruptLogError(`${path} is malformed: no segment number`)
  return { top: value.top }
}

export function writeManifest(dir: string, manifest: Manifest, fsync: boolean): Promise<void> {
  const record = frameRecord(REC_MANIFEST, encodeCanonical({ v: FORMAT_VERSION, top: manifest.top }))
  return replaceFile(dir, MANIFEST_FILE, MANIFEST_TMP, record, fsync)
}

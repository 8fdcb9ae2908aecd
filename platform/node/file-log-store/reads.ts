/**
 * The read side of FileLogStore: the cache of recently written entries, and the reads of the others
 * from their segments (nearby entries merged into one read).
 */
import { open } from 'node:fs/promises'
import { CorruptLogError, StorageError } from '../../../src/groups/storage/log-store.ts'
import { type EntryLoc, MiB, type Segment } from './format.ts'

/** Reads of nearby entries are merged when the gap between them is at most this... */
const READ_GAP = 64 * 1024
/** ...and the merged read at most this long. */
const READ_SPAN = 8 * MiB

/** Entries whose bytes are still in memory, oldest first (unwritten ones are never evicted). */
export class EntryCache {
  readonly #budget: number
  #locs: EntryLoc[] = []
  #head = 0
  #bytes = 0

  constructor(budget: number) {
    this.#budget = budget
  }

  add(loc: EntryLoc): void {
    this.#locs.push(loc)
    this.#bytes += loc.len
  }

  clear(): void {
    this.#locs = []
    this.#head = 0
    this.#bytes = 0
  }

  /** Drops the bytes of the oldest written entries beyond the cache budget. */
  evict(): void {
    const cache = this.#locs
    while (this.#bytes > this.#budget && this.#head < cache.length) {
      const loc = cache[this.#head]!
      if (!loc.written) break
      loc.bytes = undefined
      this.#bytes -= loc.len
      this.#head++
    }
    if (this.#head > 4096 && this.#head * 2 > cache.length) {
      cache.splice(0, this.#head)
      this.#head = 0
    }
  }
}

/**
 * Fills in `raw[i]` for each of `locs` whose bytes are not in memory, from the segments of the store
 * in `dir`. The segments' readers are opened (and counted as in use) before the first await.
 */
export async function readMissing(
  dir: string,
  locs: EntryLoc[],
  raw: (Uint8Array | undefined)[],
): Promise<void> {
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
    throw new StorageError(`cannot read entries from ${dir}: ${(err as Error).message}`, {
      cause: err,
    })
  } finally {
    for (const seg of used) {
      seg.reads--
      if (seg.deleted) releaseReader(seg)
    }
  }
}

/** Closes the reader of a segment no read uses any more. */
export function releaseReader(seg: Segment): void {
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
    if (bytesRead === 0) throw new CorruptLogError(`${seg.path} ends before byte ${pos + len}`)
    off += bytesRead
  }
  return buf
}

/**
 * Storage faults: the FileLogStore directory damaged on disk (flipped bytes, truncation, deleted or
 * renamed files), a disk that fails writes, and two writers on one directory. Each case either recovers
 * with every acknowledged write and the hard state intact, or refuses with an error naming the file (and
 * the byte) instead of silently dropping acknowledged writes or rolling back the term and vote.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readdirSync, readlinkSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import {
  appendFile,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { crc32 } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { FileLogStore, type FileLogStoreOptions } from '../../../platform/node/file-log-store.ts'
import {
  CorruptLogError,
  DataDirLockedError,
  decodeCanonical,
  encodeCanonical,
  type HardState,
  MemoryLogStore,
  Network,
  StorageError,
} from '../../../platform/node/index.ts'
import { listenOn, uniqueNetwork } from '../../support/nodes.ts'
import { applyOp, Workload } from './fixtures/crash-workload.ts'
import { meta, random, range } from './log-store-compliance.ts'

/** Small segments: the workload spans several. */
const SMALL: FileLogStoreOptions = { segmentSize: 2048, cacheBytes: 0 }

interface Acked {
  last: number
  hardState: HardState
}

const termOf = (i: number) => (i <= 30 ? 3 : 5)

/**
 * The acknowledged writes: entries 1..60 in 12 batches, each with a hard state; the node voted for c in
 * term 3, then for a in term 5 (a rollback to term 3 would let it vote again in term 5).
 */
/** Files under `dir` this process still holds open (Linux: /proc/self/fd; elsewhere none are seen). */
function openFilesUnder(dir: string): string[] {
  if (!existsSync('/proc/self/fd')) return []
  const out: string[] = []
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`)
      if (target.startsWith(dir)) out.push(target)
    } catch {
      // closed while listing
    }
  }
  return out
}

async function fill(store: FileLogStore): Promise<Acked> {
  let hardState: HardState = { term: 0, vote: null, commit: 0 }
  for (let i = 1; i <= 60; i += 5) {
    hardState = { term: termOf(i), vote: termOf(i) === 3 ? 'c' : 'a', commit: i - 1 }
    await store.write({ hardState, entries: range(i, i + 4, termOf, 100) })
  }
  return { last: 60, hardState }
}

async function expectIntact(store: FileLogStore, acked: Acked): Promise<void> {
  expect(store.lastIndex()).toBeGreaterThanOrEqual(acked.last)
  expect(await store.entries(1, acked.last)).toEqual(range(1, acked.last, termOf, 100))
  expect(store.hardState()).toEqual(acked.hardState)
}

/** Expects opening `dir` to be refused with CorruptLogError naming `file` (and `byte`). */
async function expectRefused(dir: string, file: string, byte?: number, options = SMALL): Promise<string> {
  const err = await FileLogStore.open(dir, options).then(
    async (s) => {
      await s.close()
      return undefined
    },
    (e: unknown) => e,
  )
  expect(err, 'the store opened').toBeInstanceOf(CorruptLogError)
  const message = (err as Error).message
  expect(message).toContain(file)
  if (byte !== undefined) expect(message).toMatch(new RegExp(`byte ${byte}\\b`))
  // refusing changes nothing: the damage is left for the operator to see
  return message
}

/** The byte offsets where the records of a segment (or the snapshot) begin. */
function recordOffsets(buf: Buffer): number[] {
  const out: number[] = []
  for (let p = 0; p + 9 <= buf.length; p += 9 + buf.readUInt32LE(p)) out.push(p)
  return out
}

/** A record as the store frames it: `[u32 length][u32 crc32 of type+payload][u8 type][payload]`. */
function frame(type: number, payload: Uint8Array): Buffer {
  const rec = Buffer.alloc(9 + payload.length)
  rec.writeUInt32LE(payload.length, 0)
  rec[8] = type
  rec.set(payload, 9)
  rec.writeUInt32LE(crc32(rec.subarray(8)), 4)
  return rec
}

async function flip(path: string, at: number, n = 4): Promise<void> {
  const buf = await readFile(path)
  for (let k = 0; k < n; k++) buf[at + k] = buf[at + k]! ^ 0xa5
  await writeFile(path, buf)
}

describe('FileLogStore storage faults', () => {
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mosaik-faults-'))
  })

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  async function segments(): Promise<string[]> {
    return (await readdir(dir)).filter((n) => n.endsWith('.seg')).sort()
  }

  const seg = async (k: number) => join(dir, (await segments()).at(k)!)

  /** The acknowledged workload in `dir`, closed; several segments. */
  async function prepared(options = SMALL): Promise<Acked> {
    const s = await FileLogStore.open(dir, options)
    const acked = await fill(s)
    await s.close()
    return acked
  }

  describe('flipped bytes', () => {
    it('in the middle of the last segment: refused, not cut (no term/vote rollback)', async () => {
      // the reported attack: one segment, four bytes flipped in the middle
      const acked = await prepared({})
      const path = await seg(-1)
      const before = await readFile(path)
      const records = recordOffsets(before)
      expect(records.length).toBe(13)
      const victim = records[6]!
      await flip(path, victim + 20)
      const message = await expectRefused(dir, path, victim, {})
      expect(message).toContain('not a torn final write')
      expect((await stat(path)).size).toBe(before.length)
      // put back, it opens with everything, and the hard state of term 5
      await writeFile(path, before)
      const s = await FileLogStore.open(dir)
      await expectIntact(s, acked)
      expect(s.hardState()).toMatchObject({ term: 5, vote: 'a' })
      await s.close()
    })

    it('in the last record of the last segment: a torn tail, cut (it was never acknowledged)', async () => {
      const acked = await prepared({})
      const s = await FileLogStore.open(dir)
      await s.write({ hardState: { term: 6, vote: 'b', commit: 60 }, entries: range(61, 65, 6, 100) })
      await s.close()
      const path = await seg(-1)
      const records = recordOffsets(await readFile(path))
      await flip(path, records.at(-1)! + 30)
      const s2 = await FileLogStore.open(dir)
      await expectIntact(s2, acked)
      expect(s2.lastIndex()).toBe(60)
      expect((await stat(path)).size).toBe(records.at(-1)!)
      await s2.close()
    })

    it('in an earlier segment: refused', async () => {
      await prepared()
      const path = await seg(1)
      const records = recordOffsets(await readFile(path))
      await flip(path, records[1]! + 15)
      await expectRefused(dir, path, records[1]!)
    })

    it('in the header of an earlier segment: refused', async () => {
      await prepared()
      const path = await seg(1)
      await flip(path, 12)
      await expectRefused(dir, path, 0)
    })

    it('in the header of the last segment, records after it: refused', async () => {
      await prepared()
      const path = await seg(-1)
      expect(recordOffsets(await readFile(path)).length).toBeGreaterThan(1)
      await flip(path, 12)
      await expectRefused(dir, path, 0)
    })

    it('in the header of a last segment holding nothing else: refused (its creation was recorded)', async () => {
      const s = await FileLogStore.open(dir, SMALL)
      await fill(s)
      await s.installSnapshot(meta(80, 6), random(300))
      await s.close()
      const path = await seg(-1)
      expect(recordOffsets(await readFile(path))).toEqual([0])
      await flip(path, 12)
      await expectRefused(dir, path, 0)
    })

    it('a last segment created but left empty or with a torn header: removed (never recorded)', async () => {
      const acked = await prepared()
      const names = await segments()
      const next = join(dir, `${String(Number(names.at(-1)!.slice(0, 16)) + 1).padStart(16, '0')}.seg`)
      for (const content of [new Uint8Array(0), new Uint8Array([90, 0, 0, 0, 1, 2])]) {
        await writeFile(next, content)
        const s = await FileLogStore.open(dir, SMALL)
        await expectIntact(s, acked)
        expect(await segments()).toEqual(names)
        await s.close()
      }
    })

    it('in the snapshot: refused', async () => {
      const s = await FileLogStore.open(dir, SMALL)
      await fill(s)
      await s.saveSnapshot(meta(40, 5), random(500))
      await s.close()
      const path = join(dir, 'snapshot')
      await flip(path, 100)
      await expectRefused(dir, path, 0)
    })
  })

  describe('truncation', () => {
    it('mid-record at the tail: the torn flush is cut, everything acknowledged stays', async () => {
      const acked = await prepared()
      const s = await FileLogStore.open(dir, SMALL)
      await s.write({ hardState: { term: 6, vote: 'b', commit: 60 }, entries: range(61, 62, 6, 100) })
      await s.close()
      const path = await seg(-1)
      const start = recordOffsets(await readFile(path)).at(-1)!
      for (const cut of [start + 5, start + 100]) {
        await truncate(path, cut)
        const s2 = await FileLogStore.open(dir, SMALL)
        await expectIntact(s2, acked)
        expect(s2.lastIndex()).toBe(60)
        await s2.close()
        expect((await stat(path)).size).toBe(start)
      }
    })

    it('mid-record in an earlier segment: refused', async () => {
      await prepared()
      const path = await seg(1)
      const size = (await stat(path)).size
      const last = recordOffsets(await readFile(path)).at(-1)!
      await truncate(path, size - 10)
      await expectRefused(dir, path, last)
    })

    it('of whole records at the end of an earlier segment: refused', async () => {
      await prepared()
      const path = await seg(1)
      const last = recordOffsets(await readFile(path)).at(-1)!
      await truncate(path, last)
      const message = await expectRefused(dir, path, last)
      expect(message).toContain('records are missing')
    })
  })

  describe('deleted and renamed files', () => {
    it('the first segment: refused (its entries were never compacted)', async () => {
      await prepared()
      const names = await segments()
      await rm(join(dir, names[0]!))
      await expectRefused(dir, names[1]!)
    })

    it('the first segments, below a compaction that kept them: refused', async () => {
      const s = await FileLogStore.open(dir, SMALL)
      await fill(s)
      await s.saveSnapshot(meta(5, 3))
      await s.compact(5)
      await s.close()
      const names = await segments()
      expect(names.length).toBeGreaterThan(3)
      await rm(join(dir, names[0]!))
      await rm(join(dir, names[1]!))
      const message = await expectRefused(dir, names[2]!)
      expect(message).toMatch(/entries 6\.\.\d+ .* are missing/)
    })

    it('a middle segment: refused', async () => {
      await prepared()
      const names = await segments()
      await rm(join(dir, names[2]!))
      await expectRefused(dir, names[2]!)
    })

    it('the last segment, or the last two: refused', async () => {
      await prepared()
      const names = await segments()
      const saved = await readFile(join(dir, names.at(-1)!))
      await rm(join(dir, names.at(-1)!))
      await expectRefused(dir, names.at(-1)!)
      await rm(join(dir, names.at(-2)!))
      await expectRefused(dir, names.at(-2)!)
      expect(saved.length).toBeGreaterThan(0)
    })

    it('every segment: refused, not opened empty', async () => {
      await prepared()
      for (const name of await segments()) await rm(join(dir, name))
      const message = await expectRefused(dir, dir)
      expect(message).toContain('every segment')
    })

    it('the snapshot, after the log was compacted against it: refused', async () => {
      const s = await FileLogStore.open(dir, SMALL)
      await fill(s)
      await s.saveSnapshot(meta(40, 5), random(500))
      await s.compact(40)
      await s.close()
      await rm(join(dir, 'snapshot'))
      await expectRefused(dir, join(dir, 'snapshot'))
    })

    it('an installed snapshot: refused', async () => {
      const s = await FileLogStore.open(dir, SMALL)
      await fill(s)
      await s.installSnapshot(meta(80, 6), random(300))
      await s.append(range(81, 90, 6, 100))
      await s.close()
      await rm(join(dir, 'snapshot'))
      await expectRefused(dir, join(dir, 'snapshot'))
    })

    it('two segments swapped: refused', async () => {
      await prepared()
      const names = await segments()
      const [a, b] = [join(dir, names[1]!), join(dir, names[2]!)]
      await rename(a, `${a}.x`)
      await rename(b, a)
      await rename(`${a}.x`, b)
      const message = await expectRefused(dir, a, 0)
      expect(message).toContain('renamed')
    })

    it('a directory written before the MANIFEST existed still opens, and gets one', async () => {
      const acked = await prepared()
      await rm(join(dir, 'MANIFEST'))
      const s = await FileLogStore.open(dir, SMALL)
      await expectIntact(s, acked)
      await s.close()
      expect(await readdir(dir)).toContain('MANIFEST')
      // from now on, a deleted last segment is caught
      await rm(await seg(-1))
      await expectRefused(dir, dir)
    })
  })

  describe('a damaged MANIFEST, and files of a later format', () => {
    const manifest = () => join(dir, 'MANIFEST')

    /** Every file in `dir` but the lock, with its bytes: a refused open must leave them as they were. */
    async function contents(): Promise<Map<string, string>> {
      const out = new Map<string, string>()
      for (const name of (await readdir(dir)).sort()) {
        if (name !== 'LOCK') out.set(name, (await readFile(join(dir, name))).toString('hex'))
      }
      return out
    }

    /** Refused (see expectRefused) with `problem` in the message, and nothing in `dir` changed. */
    async function expectRefusedAsIs(file: string, problem: RegExp): Promise<void> {
      const before = await contents()
      expect(await expectRefused(dir, file)).toMatch(problem)
      expect(await contents()).toEqual(before)
    }

    /** A header record like the one at the start of `path`, with `change` applied to its fields. */
    async function header(path: string, change: Record<string, unknown>): Promise<Uint8Array> {
      const buf = await readFile(path)
      const payload = decodeCanonical(buf.subarray(9, 9 + buf.readUInt32LE(0))) as Record<string, unknown>
      return frame(1, encodeCanonical({ ...payload, ...change }))
    }

    /** The segment after the last one, as if a later version had started it. */
    async function nextSegment(): Promise<string> {
      const last = (await segments()).at(-1)!
      return join(dir, `${String(Number(last.slice(0, 16)) + 1).padStart(16, '0')}.seg`)
    }

    it('empty, cut short, garbage, failing its checksum or with bytes after it: refused as it is', async () => {
      const acked = await prepared()
      const good = await readFile(manifest())
      const flipped = Buffer.from(good)
      flipped[good.length - 1]! ^= 0x01
      const cases: [Uint8Array, RegExp][] = [
        [new Uint8Array(0), /MANIFEST is empty/],
        [good.subarray(0, 5), /MANIFEST is cut short/],
        [good.subarray(0, good.length - 1), /MANIFEST is cut short/],
        [new Uint8Array(good.length).fill(0x5a), /MANIFEST is cut short/],
        [flipped, /MANIFEST fails its checksum/],
        [Buffer.concat([good, Buffer.from([0])]), /MANIFEST has 1 bytes after its record/],
      ]
      for (const [bytes, problem] of cases) {
        await writeFile(manifest(), bytes)
        await expectRefusedAsIs(manifest(), problem)
      }
      // nothing was lost: the operator restores it and the store opens with every acknowledged write
      await writeFile(manifest(), good)
      const s = await FileLogStore.open(dir, SMALL)
      await expectIntact(s, acked)
      await s.close()
    })

    it('of a later format version, or not a manifest: refused as it is', async () => {
      await prepared()
      const top = (await segments()).length
      const cases: [Uint8Array, RegExp][] = [
        [frame(6, encodeCanonical({ v: 2, top })), /unknown format version 2 \(written by a newer version/],
        [frame(6, encodeCanonical({ top })), /MANIFEST has no format version/],
        [frame(6, encodeCanonical({ v: 1, top: 'x' })), /MANIFEST is malformed/],
        [frame(6, encodeCanonical('MANIFEST')), /MANIFEST is not a map/],
        [frame(4, encodeCanonical({ v: 1, top })), /type 4 at byte 0, not a manifest/],
      ]
      for (const [bytes, problem] of cases) {
        await writeFile(manifest(), bytes)
        await expectRefusedAsIs(manifest(), problem)
      }
    })

    it('a segment whose header has a later format version: refused as it is, first, last or unrecorded', async () => {
      await prepared()
      for (const k of [0, -1]) {
        const path = await seg(k)
        const good = await readFile(path)
        const start = recordOffsets(good)[1]!
        await writeFile(path, Buffer.concat([await header(path, { v: 2 }), good.subarray(start)]))
        await expectRefusedAsIs(path, /byte 0\) has unknown format version 2/)
        await writeFile(path, good)
      }
      // a segment the manifest does not list yet, which a torn header would leave removable
      const next = await nextSegment()
      await writeFile(next, await header(await seg(-1), { v: 2, seq: Number(basename(next).slice(0, 16)) }))
      await expectRefusedAsIs(next, /unknown format version 2/)
    })

    it('a segment starting with a record of a type it does not know: refused as it is, not removed as torn', async () => {
      const acked = await prepared()
      const next = await nextSegment()
      await writeFile(next, frame(7, encodeCanonical({ v: 2 })))
      await expectRefusedAsIs(next, /starts with a record of type 7 at byte 0, not a header/)
      await rm(next)
      const s = await FileLogStore.open(dir, SMALL)
      await expectIntact(s, acked)
      await s.close()
    })

    it('a record of a type it does not know at the tail of the last segment: refused as it is, not cut', async () => {
      await prepared()
      const path = await seg(-1)
      const size = (await stat(path)).size
      await appendFile(path, frame(7, encodeCanonical({ x: 1 })))
      await expectRefusedAsIs(path, new RegExp(`unknown type 7 at byte ${size}\\b`))
    })

    it('a snapshot file of a record type it does not know: refused as it is', async () => {
      const s = await FileLogStore.open(dir, SMALL)
      await fill(s)
      await s.saveSnapshot(meta(40, 5), random(100))
      await s.close()
      const path = join(dir, 'snapshot')
      await writeFile(path, frame(8, encodeCanonical({ v: 2, m: meta(40, 5) })))
      await expectRefusedAsIs(path, /unknown type 8 at byte 0/)
    })
  })

  describe('a failing disk', () => {
    let proto: FileHandle

    beforeEach(async () => {
      const fh = await open(join(dir, 'probe'), 'w')
      proto = Object.getPrototypeOf(fh) as FileHandle
      await fh.close()
      await rm(join(dir, 'probe'))
    })

    afterEach(() => {
      vi.restoreAllMocks()
    })

    const enospc = () =>
      Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })

    it('a full disk: that write and every later one fail, none resolves; reopened, nothing acknowledged is lost', async () => {
      const s = await FileLogStore.open(dir, SMALL)
      const acked = await fill(s)
      const spy = vi.spyOn(proto, 'write').mockRejectedValue(enospc())
      const results = await Promise.allSettled([
        s.append(range(61, 62, 5, 100)),
        s.saveHardState({ term: 6, vote: 'b', commit: 60 }),
        s.append(range(63, 63, 6, 100)),
      ])
      expect(spy).toHaveBeenCalled()
      for (const r of results) {
        expect(r.status).toBe('rejected')
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StorageError)
      }
      // the disk has room again: the store stays failed, it cannot know what reached the disk
      spy.mockRestore()
      await expect(s.append(range(61, 61, 5, 100))).rejects.toBeInstanceOf(StorageError)
      await expect(s.saveHardState(acked.hardState)).rejects.toBeInstanceOf(StorageError)
      await expect(s.saveSnapshot(meta(10, 3))).rejects.toBeInstanceOf(StorageError)
      await expect(s.compact(10)).rejects.toBeInstanceOf(StorageError)
      await s.close()
      expect(openFilesUnder(dir)).toEqual([])
      const s2 = await FileLogStore.open(dir, SMALL)
      await expectIntact(s2, acked)
      expect(s2.lastIndex()).toBe(60)
      await s2.close()
    })

    it('a failed fsync: the write is not acknowledged, and the store stays failed', async () => {
      const s = await FileLogStore.open(dir, SMALL)
      const acked = await fill(s)
      vi.spyOn(proto, 'datasync').mockRejectedValue(
        Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }),
      )
      await expect(s.append(range(61, 62, 5, 100))).rejects.toBeInstanceOf(StorageError)
      vi.restoreAllMocks()
      await expect(s.append(range(63, 63, 5, 100))).rejects.toBeInstanceOf(StorageError)
      await s.close()
      // the segment whose sync failed on the way to the next one is closed too, not left to the GC
      expect(openFilesUnder(dir)).toEqual([])
      const s2 = await FileLogStore.open(dir, SMALL)
      // the failed write may or may not be there (it was never acknowledged); the rest is
      await expectIntact(s2, acked)
      await s2.close()
    })

    it('a failed snapshot: the compaction queued behind it never reaches the disk', async () => {
      const s = await FileLogStore.open(dir, SMALL)
      const acked = await fill(s)
      const before = await segments()
      await mkdir(join(dir, 'snapshot.tmp')) // the snapshot file cannot be written
      const results = await Promise.allSettled([s.saveSnapshot(meta(50, 5), random(200)), s.compact(50)])
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected'])
      await s.close()
      expect(await segments()).toEqual(before)
      await rm(join(dir, 'snapshot.tmp'), { recursive: true })
      const s2 = await FileLogStore.open(dir, SMALL)
      expect(s2.firstIndex()).toBe(1)
      await expectIntact(s2, acked)
      await s2.close()
    })
  })

  describe('no false refusal', () => {
    it('replays a truncation below where the first segment starts', async () => {
      // one record per segment; segment 3 survives the compaction to 22 while a later segment starts at 16
      const options: FileLogStoreOptions = { segmentSize: 1, cacheBytes: 0 }
      const s = await FileLogStore.open(dir, options)
      await s.append(range(1, 10, 1))
      await s.append(range(11, 20, 1))
      await s.append(range(21, 25, 1))
      await s.write({ truncateFrom: 15, entries: range(15, 16, 2) })
      await s.append(range(17, 40, 2))
      await s.saveSnapshot(meta(22, 2))
      await s.compact(22)
      const loaded = await s.load()
      await s.close()
      expect((await segments()).length).toBeLessThan(6)
      const s2 = await FileLogStore.open(dir, options)
      expect(await s2.load()).toEqual(loaded)
      expect(s2.firstIndex()).toBe(23)
      await s2.close()
    })

    it('reopens a Raft-like workload in small segments after every few operations', async () => {
      const seed = Number(process.env.CRASH_SEED ?? 0) || 1 + Math.floor(Math.random() * 1e9)
      const workload = new Workload(seed)
      const model = new MemoryLogStore()
      const options: FileLogStoreOptions = { segmentSize: 1024, cacheBytes: 0 }
      let s = await FileLogStore.open(dir, options)
      let reopens = 0
      try {
        while (workload.count < 1000) {
          const op = workload.next()
          await Promise.all([applyOp(s, op), applyOp(model, op)])
          if (workload.count % 5 !== 0) continue
          await s.close()
          s = await FileLogStore.open(dir, options)
          reopens++
          expect([s.firstIndex(), s.lastIndex(), s.snapshot()]).toEqual([
            model.firstIndex(),
            model.lastIndex(),
            model.snapshot(),
          ])
          expect(await s.load()).toEqual(await model.load())
        }
      } catch (err) {
        throw new Error(`seed ${seed}, operation ${workload.count}: ${(err as Error).message}`, {
          cause: err,
        })
      } finally {
        await s.close()
      }
      expect(reopens).toBe(200)
    })
  })

  describe('recovery scan', () => {
    it('scans a large torn tail in linear time', async () => {
      const acked = await prepared({})
      const path = await seg(-1)
      const good = (await stat(path)).size
      // a torn record header, then 8 MiB of garbage (what a disk may leave after a power loss)
      const garbage = random(8 * 1024 * 1024)
      new DataView(garbage.buffer).setUint32(0, 20 * 1024 * 1024, true)
      await appendFile(path, garbage)
      const t = performance.now()
      const s = await FileLogStore.open(dir)
      const ms = performance.now() - t
      console.log(`open with an 8 MiB torn tail of random bytes: ${ms.toFixed(0)} ms`)
      await expectIntact(s, acked)
      expect((await stat(path)).size).toBe(good)
      await s.close()
      expect(ms).toBeLessThan(10_000)
    })

    it('finds a damaged record early in a large last segment quickly', async () => {
      const s = await FileLogStore.open(dir)
      const big = random(64 * 1024)
      for (let i = 1; i <= 512; i += 8) {
        await s.append(
          Array.from({ length: 8 }, (_, k) => ({
            index: i + k,
            term: 1,
            kind: 'command' as const,
            data: big,
          })),
        )
      }
      await s.close()
      const path = await seg(-1)
      expect((await stat(path)).size).toBeGreaterThan(32 * 1024 * 1024)
      const records = recordOffsets(await readFile(path))
      await flip(path, records[2]! + 1000)
      const t = performance.now()
      await expectRefused(dir, path, records[2]!, {})
      console.log(
        `refusing a 32 MiB segment damaged near its start: ${(performance.now() - t).toFixed(0)} ms`,
      )
    })
  })
})

describe('one writer per directory', () => {
  const fixture = fileURLToPath(new URL('./fixtures/lock-holder.ts', import.meta.url))
  let dir: string
  const children: ChildProcess[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mosaik-lock-'))
  })

  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  /** Starts the fixture on `dir`; resolves with its first line (`held`, or `refused <code> <pid>`). */
  async function holder(mode: 'store' | 'network', path: string) {
    const child = spawn(process.execPath, [fixture, mode, path], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve)
      child.once('exit', (code) => reject(new Error(`holder exited (${code}) before saying anything`)))
    })
    return { child, line, exited }
  }

  async function killed(h: { child: ChildProcess; exited: Promise<void> }) {
    h.child.kill('SIGKILL')
    await h.exited
  }

  it('a store: a second process is refused; once the holder is killed with SIGKILL it is taken at once', async () => {
    const s = await FileLogStore.open(dir)
    await s.append(range(1, 1, 1))
    expect((await holder('store', dir)).line).toBe(`refused DATA_DIR_LOCKED ${process.pid}`)
    await s.close()

    const h = await holder('store', dir)
    expect(h.line).toBe('held')
    const err = await FileLogStore.open(dir).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DataDirLockedError)
    expect(err).toMatchObject({ code: 'DATA_DIR_LOCKED', pid: h.child.pid, dir, host: hostname() })
    expect((err as Error).message).toContain(dir)
    expect((err as Error).message).toContain(String(h.child.pid))

    await killed(h)
    const t = performance.now()
    const s2 = await FileLogStore.open(dir)
    expect(performance.now() - t).toBeLessThan(1000)
    expect(s2.lastIndex()).toBe(2)
    await s2.close()
  })

  it('a Network dataDir: a second process is refused; after SIGKILL it is taken at once', async () => {
    const h = await holder('network', dir)
    expect(h.line).toBe('held')
    const create = () =>
      Network.create({ network: uniqueNetwork(), dataDir: dir, listen: listenOn('memory') })
    await expect(create()).rejects.toMatchObject({ code: 'DATA_DIR_LOCKED', pid: h.child.pid })
    await killed(h)
    const net = await create()
    expect((await holder('network', dir)).line).toBe(`refused DATA_DIR_LOCKED ${process.pid}`)
    await net.close()
  })

  it('a Network dataDir: a second Network in the same process is refused until the first closes', async () => {
    const create = () =>
      Network.create({ network: uniqueNetwork(), dataDir: dir, listen: listenOn('memory') })
    const a = await create()
    const err = await create().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DataDirLockedError)
    expect(err).toMatchObject({ code: 'DATA_DIR_LOCKED', pid: process.pid, dir })
    await a.close()
    const b = await create()
    expect(b.peerId).toBe(a.peerId)
    await b.close()
  })

  it('a lock whose owner is gone is taken over: a dead pid, a reused pid, an empty file', async () => {
    const dead = spawn(process.execPath, ['-e', ''])
    await new Promise((resolve) => dead.once('exit', resolve))
    const me = JSON.parse(await readLockOf(await FileLogStore.open(dir)))
    for (const content of [
      JSON.stringify({ ...me, pid: dead.pid }),
      JSON.stringify({ ...me, start: 'an earlier process with this pid' }),
      '',
    ]) {
      await writeFile(join(dir, 'LOCK'), content)
      await (await FileLogStore.open(dir)).close()
      expect(await readdir(dir)).not.toContain('LOCK')
    }
  })

  /** The lock file's contents while `store` is open; closes it. */
  async function readLockOf(store: FileLogStore): Promise<string> {
    const text = await readFile(join(dir, 'LOCK'), 'utf8')
    await store.close()
    return text
  }

  it('a lock left by another host is refused, naming it', async () => {
    await writeFile(join(dir, 'LOCK'), JSON.stringify({ pid: 4242, host: 'elsewhere' }))
    await expect(FileLogStore.open(dir)).rejects.toMatchObject({
      code: 'DATA_DIR_LOCKED',
      pid: 4242,
      host: 'elsewhere',
    })
    await rm(join(dir, 'LOCK'))
    await (await FileLogStore.open(dir)).close()
  })
})

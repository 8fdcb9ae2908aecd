import { spawn } from 'node:child_process'
import {
  appendFile,
  copyFile,
  cp,
  type FileHandle,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { LOCK_FILE } from '../../../platform/node/dir-lock.ts'
import type { FileLogStoreOptions } from '../../../platform/node/file-log-store.ts'
import { FileLogStore } from '../../../platform/node/file-log-store.ts'
import {
  CorruptLogError,
  DataDirLockedError,
  encodeCanonical,
  type LogStore,
  MemoryLogStore,
  StorageError,
} from '../../../platform/node/index.ts'
import { equalBytes } from '../../../src/primitives/bytes.ts'
import { secs, within } from '../../support/time.ts'
import type { Mix } from './fixtures/crash-workload.ts'
import { applyOp, Workload } from './fixtures/crash-workload.ts'
import { entry, indices, meta, random, range, runLogStoreCompliance } from './log-store-compliance.ts'

function fileHarness(options: FileLogStoreOptions) {
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mosaik-log-'))
    return {
      open: () => FileLogStore.open(dir, options),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    }
  }
}

/** Everything a store holds. */
async function contents(store: LogStore) {
  const loaded = await store.load()
  return {
    first: store.firstIndex(),
    last: store.lastIndex(),
    offsetTerm: store.term(store.firstIndex() - 1) ?? null,
    ...loaded,
  }
}

runLogStoreCompliance('FileLogStore', fileHarness({}))
// every read from disk, a segment per few writes: rollover, deletion and replay across segments everywhere
runLogStoreCompliance(
  'FileLogStore (4 KiB segments, no cache)',
  fileHarness({ segmentSize: 4096, cacheBytes: 0 }),
)
runLogStoreCompliance('FileLogStore (fsync off)', fileHarness({ fsync: false }))

describe('FileLogStore', () => {
  let dir: string
  const stores: LogStore[] = []

  async function openStore(options: FileLogStoreOptions = {}): Promise<FileLogStore> {
    const s = await FileLogStore.open(dir, options)
    stores.push(s)
    return s
  }

  async function segments(): Promise<string[]> {
    return (await readdir(dir)).filter((n) => n.endsWith('.seg')).sort()
  }

  async function lastSegment(): Promise<string> {
    return join(dir, (await segments()).at(-1)!)
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mosaik-log-'))
  })

  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close()
    await rm(dir, { recursive: true, force: true })
  })

  describe('torn tail recovery', () => {
    /** Three writes, closed; returns the segment's size after the second one. */
    async function threeWrites(): Promise<number> {
      const s = await openStore()
      await s.write({ hardState: { term: 1, vote: null, commit: 0 }, entries: range(1, 5, 1, 50) })
      await s.append(range(6, 10, 1, 50))
      const size = (await stat(await lastSegment())).size
      await s.write({ hardState: { term: 2, vote: 'x', commit: 10 }, entries: range(11, 15, 2, 50) })
      await s.close()
      return size
    }

    async function expectFirstTwo(s: FileLogStore): Promise<void> {
      expect(s.lastIndex()).toBe(10)
      expect(await s.entries(1, 100)).toEqual(range(1, 10, 1, 50))
      expect(s.hardState()).toEqual({ term: 1, vote: null, commit: 0 })
    }

    it('cuts a record cut short in the middle', async () => {
      const goodSize = await threeWrites()
      const path = await lastSegment()
      const full = (await stat(path)).size
      await truncate(path, full - 7)
      const s = await openStore()
      await expectFirstTwo(s)
      expect((await stat(path)).size).toBe(goodSize)
      // it goes on from there, and the result survives another reopen
      await s.append(range(11, 12, 3))
      await s.close()
      const s2 = await openStore()
      expect(indices(await s2.entries(9, 20))).toEqual([9, 10, 11, 12])
      expect(s2.term(12)).toBe(3)
    })

    it('cuts a record cut inside its frame header', async () => {
      const goodSize = await threeWrites()
      const path = await lastSegment()
      await truncate(path, goodSize + 5)
      await expectFirstTwo(await openStore())
      expect((await stat(path)).size).toBe(goodSize)
    })

    it('drops the last record when a payload byte is flipped', async () => {
      const goodSize = await threeWrites()
      const path = await lastSegment()
      const bytes = await readFile(path)
      bytes[goodSize + 40] = bytes[goodSize + 40]! ^ 0x5a
      await writeFile(path, bytes)
      await expectFirstTwo(await openStore())
      expect((await stat(path)).size).toBe(goodSize)
    })

    it('drops the last record when its length field is garbage', async () => {
      const goodSize = await threeWrites()
      const path = await lastSegment()
      const bytes = await readFile(path)
      bytes.writeUInt32LE(0xfffffff0, goodSize)
      await writeFile(path, bytes)
      await expectFirstTwo(await openStore())
    })

    it('cuts a zero-filled tail', async () => {
      await threeWrites()
      const path = await lastSegment()
      const full = (await stat(path)).size
      await appendFile(path, new Uint8Array(4096))
      const s = await openStore()
      expect(s.lastIndex()).toBe(15)
      expect(s.hardState()).toEqual({ term: 2, vote: 'x', commit: 10 })
      expect((await stat(path)).size).toBe(full)
    })

    it('removes a last segment whose header is torn', async () => {
      const s = await openStore({ segmentSize: 1024 })
      for (let i = 1; i <= 40; i++) await s.append([entry(i, 1, 100)])
      await s.close()
      const names = await segments()
      expect(names.length).toBeGreaterThan(2)
      const next = Number(names.at(-1)!.slice(0, 16)) + 1
      const torn = join(dir, `${String(next).padStart(16, '0')}.seg`)
      await writeFile(torn, new Uint8Array([40, 0, 0, 0, 1, 2, 3]))
      const s2 = await openStore({ segmentSize: 1024 })
      expect(s2.lastIndex()).toBe(40)
      expect(await s2.entries(1, 40)).toEqual(range(1, 40, 1, 100))
      expect(await segments()).toEqual(names)
      await s2.append([entry(41, 1, 100)])
      expect(s2.lastIndex()).toBe(41)
    })

    it('refuses a corrupt record in an earlier segment', async () => {
      const s = await openStore({ segmentSize: 1024 })
      for (let i = 1; i <= 40; i++) await s.append([entry(i, 1, 100)])
      await s.close()
      const first = join(dir, (await segments())[0]!)
      const bytes = await readFile(first)
      bytes[bytes.length - 20] = bytes[bytes.length - 20]! ^ 0xff
      await writeFile(first, bytes)
      const err = await FileLogStore.open(dir).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(CorruptLogError)
      expect((err as CorruptLogError).code).toBe('CORRUPT_LOG')
    })

    it('refuses a gap in the segment sequence', async () => {
      const s = await openStore({ segmentSize: 1024 })
      for (let i = 1; i <= 40; i++) await s.append([entry(i, 1, 100)])
      await s.close()
      await rm(join(dir, (await segments())[1]!))
      await expect(FileLogStore.open(dir)).rejects.toBeInstanceOf(CorruptLogError)
    })
  })

  describe('snapshot file', () => {
    it('ignores a leftover temporary snapshot', async () => {
      const s = await openStore()
      await s.saveSnapshot(meta(3, 1), random(100))
      await s.close()
      await writeFile(join(dir, 'snapshot.tmp'), random(50))
      const s2 = await openStore()
      expect(s2.snapshot()).toEqual(meta(3, 1))
      expect(await readdir(dir)).not.toContain('snapshot.tmp')
    })

    it('refuses a corrupt snapshot', async () => {
      const s = await openStore()
      await s.saveSnapshot(meta(3, 1), random(100))
      await s.close()
      const path = join(dir, 'snapshot')
      const bytes = await readFile(path)
      bytes[50] = bytes[50]! ^ 1
      await writeFile(path, bytes)
      await expect(FileLogStore.open(dir)).rejects.toBeInstanceOf(CorruptLogError)
    })

    it('finishes a reset that was interrupted', async () => {
      const s = await openStore()
      await s.write({ hardState: { term: 3, vote: 'a', commit: 2 }, entries: range(1, 5, 3) })
      await s.saveSnapshot(meta(2, 3), random(100))
      await s.close()
      await writeFile(join(dir, 'RESET'), '')
      const s2 = await openStore()
      const loaded = await s2.load()
      expect(loaded).toEqual({ hardState: { term: 0, vote: null, commit: 0 }, entries: [] })
      expect(await readdir(dir)).not.toContain('RESET')
    })
  })

  describe('snapshot install, interrupted at each step', () => {
    const options: FileLogStoreOptions = { segmentSize: 2048, cacheBytes: 0 }
    const installData = random(30_000)
    let after: string

    afterEach(async () => {
      if (after !== undefined) await rm(after, { recursive: true, force: true })
    })

    /**
     * Leaves the old state in `dir` (several segments, a compaction, a saved snapshot) and a copy of it in
     * `after` in which a snapshot was installed (and `then` ran); both closed. Returns what each holds and
     * the segment files of each.
     */
    async function prepare(then?: (s: FileLogStore) => Promise<void>) {
      const s = await openStore(options)
      for (let i = 1; i <= 60; i += 5) {
        await s.write({
          hardState: { term: 2, vote: 'a', commit: 10 },
          entries: range(i, i + 4, (k) => (k <= 30 ? 1 : 2), 100),
        })
      }
      await s.saveSnapshot(meta(20, 1), random(500))
      await s.compact(20)
      const oldState = await contents(s)
      await s.close()
      after = await mkdtemp(join(tmpdir(), 'mosaik-log-after-'))
      await cp(dir, after, { recursive: true })
      const s2 = await FileLogStore.open(after, options)
      stores.push(s2)
      // the leader says 45 is in term 3; here it is a term-2 entry, and 46..60 follow it
      await s2.installSnapshot(meta(45, 3, 'c'), installData)
      if (then !== undefined) await then(s2)
      const newState = await contents(s2)
      await s2.close()
      const oldSegments = await segments()
      const newSegments = (await readdir(after)).filter((n) => n.endsWith('.seg')).sort()
      expect(oldSegments.length).toBeGreaterThan(2)
      // the install started a new segment after every old one, and deleted the old ones
      expect(newSegments[0]! > oldSegments.at(-1)!).toBe(true)
      expect(newState).toMatchObject({ first: 46, last: then === undefined ? 45 : newState.last })
      return { oldState, newState, oldSegments, newSegments }
    }

    /** Opens `dir` as it was left, expects `state`, and checks that the store goes on from there. */
    async function expectRecovered(state: Awaited<ReturnType<typeof contents>>) {
      const s = await openStore(options)
      expect(await contents(s)).toEqual(state)
      const next = s.lastIndex() + 1
      await s.append(range(next, next + 2, 9, 100))
      await s.close()
      const s2 = await openStore(options)
      expect(await contents(s2)).toEqual({
        ...state,
        last: next + 2,
        entries: [...state.entries, ...range(next, next + 2, 9, 100)],
      })
      return s2
    }

    it('crash before the rename (snapshot.tmp written whole or in part): the old state', async () => {
      const { oldState } = await prepare()
      const installed = await readFile(join(after, 'snapshot'))
      await writeFile(join(dir, 'snapshot.tmp'), installed)
      await (await expectRecovered(oldState)).close()
      expect(await readdir(dir)).not.toContain('snapshot.tmp')
      await writeFile(join(dir, 'snapshot.tmp'), installed.subarray(0, 1000))
      const s = await openStore(options)
      expect((await contents(s)).snapshot).toEqual(meta(20, 1))
    })

    it('crash right after the rename, before the new segment: the new state', async () => {
      const { newState, newSegments } = await prepare()
      await copyFile(join(after, 'snapshot'), join(dir, 'snapshot'))
      const s = await expectRecovered(newState)
      // the old segments are gone; the log lives in the segment the install named
      expect(await segments()).toEqual(newSegments)
      expect(s.term(45)).toBe(3)
      expect(s.hardState()).toEqual({ term: 2, vote: 'a', commit: 45 })
    })

    it('crash while the new segment header was being written: the new state', async () => {
      const { newState, newSegments } = await prepare()
      await copyFile(join(after, 'snapshot'), join(dir, 'snapshot'))
      await writeFile(
        join(dir, newSegments[0]!),
        (await readFile(join(after, newSegments[0]!))).subarray(0, 7),
      )
      await expectRecovered(newState)
      expect((await segments())[0]! >= newSegments[0]!).toBe(true)
    })

    it('crash before the old segments were deleted, or midway: the new state', async () => {
      const { newState, newSegments, oldSegments } = await prepare()
      await copyFile(join(after, 'snapshot'), join(dir, 'snapshot'))
      for (const name of newSegments) await copyFile(join(after, name), join(dir, name))
      // some old segments already deleted, leaving a gap among them
      await rm(join(dir, oldSegments[1]!))
      await expectRecovered(newState)
      expect(await segments()).toEqual(newSegments)
    })

    it('crash after writes that followed the install, over the old segments: the state after them', async () => {
      const { newState, newSegments } = await prepare(async (s) => {
        for (let i = 46; i <= 90; i += 5) await s.append(range(i, i + 4, 3, 100))
        await s.saveHardState({ term: 3, vote: 'b', commit: 80 })
      })
      expect(newSegments.length).toBeGreaterThan(1)
      expect(newState.entries).toHaveLength(45)
      // the old snapshot file and segments, with the new snapshot and segments beside them
      await copyFile(join(after, 'snapshot'), join(dir, 'snapshot'))
      for (const name of newSegments) await copyFile(join(after, name), join(dir, name))
      await expectRecovered(newState)
    })

    it('refuses an installed snapshot whose log segments are missing in the middle', async () => {
      const { newSegments } = await prepare(async (s) => {
        for (let i = 46; i <= 90; i += 5) await s.append(range(i, i + 4, 3, 100))
      })
      expect(newSegments.length).toBeGreaterThan(2)
      await rm(join(after, newSegments[1]!))
      await expect(FileLogStore.open(after, options)).rejects.toBeInstanceOf(CorruptLogError)
    })
  })

  describe('segments', () => {
    it('rolls over and deletes whole segments below the compaction point', async () => {
      const s = await openStore({ segmentSize: 4096, cacheBytes: 0 })
      for (let i = 1; i <= 400; i += 4) await s.append(range(i, i + 3, 1 + Math.floor(i / 100), 100))
      const before = await segments()
      expect(before.length).toBeGreaterThan(8)
      await s.saveSnapshot(meta(300, 3))
      await s.compact(300)
      const after = await segments()
      expect(after.length).toBeLessThan(before.length)
      expect(after.at(-1)).toBe(before.at(-1))
      expect(before.slice(before.length - after.length)).toEqual(after)
      // the segment that holds entry 301 survived, and reads still work
      const termOf = (k: number) => 1 + Math.floor((k - ((k - 1) % 4)) / 100)
      expect(await s.entries(1, 400)).toEqual(range(301, 400, termOf, 100))
      await s.close()

      const s2 = await openStore({ segmentSize: 4096, cacheBytes: 0 })
      expect(s2.firstIndex()).toBe(301)
      expect(s2.lastIndex()).toBe(400)
      expect(s2.term(300)).toBe(3)
      expect(indices(await s2.entries(1, 1000))).toEqual(range(301, 400, 1).map((e) => e.index))
      // compacting past the end: everything but the current segment goes
      await s2.saveSnapshot(meta(1000, 9))
      await s2.compact(1000)
      for (let i = 1001; i <= 1100; i++) await s2.append([entry(i, 9, 100)])
      await s2.compact(1050)
      const last = await segments()
      expect(last.length).toBeLessThanOrEqual(3)
      await s2.close()
      const s3 = await openStore({ segmentSize: 4096 })
      expect(s3.firstIndex()).toBe(1051)
      expect(s3.term(1050)).toBe(9)
      expect(await s3.entries(1, 2000)).toEqual(range(1051, 1100, 9, 100))
    })

    it('keeps a truncation that reaches into deleted segments', async () => {
      const s = await openStore({ segmentSize: 2048 })
      for (let i = 1; i <= 100; i++) await s.append([entry(i, 1, 100)])
      await s.compact(60)
      // the new leader's suffix overwrites 61.. within the compacted segments' successor
      await s.write({ truncateFrom: 61, entries: range(61, 70, 2, 100) })
      await s.compact(65)
      await s.close()
      const s2 = await openStore({ segmentSize: 2048 })
      expect(s2.firstIndex()).toBe(66)
      expect(await s2.entries(1, 200)).toEqual(range(66, 70, 2, 100))
    })

    it('keeps the term of a compaction point rewritten after its segment started', async () => {
      const s = await openStore({ segmentSize: 1024 })
      await s.append(range(1, 10, 1, 100)) // fills the first segment
      // the second segment's header says the log ends at (10, term 1); then 5.. is rewritten in term 2
      await s.write({ truncateFrom: 5, entries: range(5, 10, 2) })
      await s.compact(10) // in the same segment; the first segment goes
      expect(s.term(10)).toBe(2)
      expect(await segments()).toHaveLength(1)
      await s.close()
      const s2 = await openStore({ segmentSize: 1024 })
      expect(s2.firstIndex()).toBe(11)
      expect(s2.term(10)).toBe(2)
    })

    it('fails every later call after an I/O error, and still closes', async () => {
      const s = await openStore({ segmentSize: 512 })
      await s.append(range(1, 10, 1, 100))
      await rm(dir, { recursive: true, force: true })
      // the next write starts a segment in a directory that is gone
      const err = await s.append([entry(11, 1)]).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(StorageError)
      await expect(s.append([entry(12, 1)])).rejects.toBe(err)
      await expect(s.saveHardState({ term: 1, vote: null, commit: 0 })).rejects.toBe(err)
      await s.close()
    })

    it('fsyncs entries, terms and votes, and a barrier, but not a hard state that only raises commit', async () => {
      const s = await openStore()
      // Every FileHandle shares one prototype: count the store's fdatasync calls on it.
      const probe = await open(join(dir, 'probe'), 'w')
      const datasync = vi.spyOn(Object.getPrototypeOf(probe) as FileHandle, 'datasync')
      await probe.close()
      try {
        await s.write({ hardState: { term: 1, vote: 'a', commit: 0 }, entries: range(1, 3, 1, 10) })
        const synced = datasync.mock.calls.length
        expect(synced).toBeGreaterThan(0)
        await s.write({ hardState: { term: 1, vote: 'a', commit: 2 } })
        await s.write({ hardState: { term: 1, vote: 'a', commit: 3 } })
        expect(datasync.mock.calls.length).toBe(synced)
        // a barrier makes them durable; a second one finds nothing left to sync
        await s.write({})
        expect(datasync.mock.calls.length).toBe(synced + 1)
        await s.write({})
        expect(datasync.mock.calls.length).toBe(synced + 1)
        // a new vote must be durable before it is acknowledged, and so must an entry
        await s.write({ hardState: { term: 2, vote: 'b', commit: 3 } })
        expect(datasync.mock.calls.length).toBe(synced + 2)
        await s.write({ hardState: { term: 2, vote: 'b', commit: 3 }, entries: [entry(4, 2)] })
        expect(datasync.mock.calls.length).toBe(synced + 3)
      } finally {
        datasync.mockRestore()
      }
      await s.close()
      const again = await openStore()
      expect(again.hardState()).toEqual({ term: 2, vote: 'b', commit: 3 })
      expect(again.lastIndex()).toBe(4)
    })

    it('refuses to open a directory twice in one process', async () => {
      const s = await openStore()
      const err = await FileLogStore.open(dir).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(DataDirLockedError)
      expect((err as DataDirLockedError).code).toBe('DATA_DIR_LOCKED')
      expect((err as DataDirLockedError).pid).toBe(process.pid)
      await s.close()
      await (await openStore()).close()
    })

    it('takes over a lock file left empty (a crash while writing it)', async () => {
      await mkdir(dir, { recursive: true })
      await writeFile(join(dir, LOCK_FILE), '')
      const s = await openStore()
      expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid)
      await s.close()
    })
  })

  describe('crash safety', () => {
    const fixture = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url))
    const WINDOW = 8

    /** Runs the writer from operation `start` until it acknowledged `target`, then SIGKILLs it. */
    async function runWriter(
      start: number,
      seed: number,
      segmentSize: number,
      fsync: boolean,
      target: number,
      mix: Mix,
    ) {
      const child = spawn(
        process.execPath,
        [fixture, dir, String(start), String(seed), String(segmentSize), fsync ? '1' : '0', mix],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
      let lastAck = start
      let stderr = ''
      let buffered = ''
      let killed = false
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d
      })
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        child.on('close', (code, signal) => resolve({ code, signal }))
      })
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        buffered += d
        const lines = buffered.split('\n')
        buffered = lines.pop()!
        for (const line of lines) {
          const [word, n] = line.split(' ')
          if (word === 'ack') lastAck = Math.max(lastAck, Number(n))
        }
        if (!killed && lastAck >= target) {
          killed = true
          child.kill('SIGKILL')
        }
      })
      try {
        const { code, signal } = await within(secs(60), exited, `writer reaching op ${target}`)
        if (signal !== 'SIGKILL') throw new Error(`writer exited on its own (${code}): ${stderr}`)
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      }
      return lastAck
    }

    async function diskBytes(): Promise<number> {
      let total = 0
      for (const name of await segments()) total += (await stat(join(dir, name))).size
      return total
    }

    /** Everything a store holds, as canonical bytes. */
    async function fingerprint(store: LogStore): Promise<Uint8Array> {
      return encodeCanonical(await contents(store))
    }

    async function crashLoop(
      seed: number,
      segmentSize: number,
      fsync: boolean,
      rounds: number,
      mix: Mix = 'raft',
      opsPerRound: [min: number, spread: number] = [150, 350],
    ) {
      const workload = new Workload(seed, mix)
      const model = new MemoryLogStore()
      let matched = 0
      let torn = 0
      let tornTails = 0
      // evidence of installs interrupted at each step: before the rename (a snapshot.tmp was left), after
      // it but before the new segment had its header (open created it), before the old log was deleted
      let tmpLeft = 0
      let segmentCreatedOnOpen = 0
      let oldLogDeletedOnOpen = 0
      for (let round = 0; round < rounds; round++) {
        const target = matched + opsPerRound[0] + Math.floor(Math.random() * opsPerRound[1])
        const lastAck = await runWriter(matched, seed, segmentSize, fsync, target, mix).catch(
          (err: Error) => {
            throw new Error(`seed ${seed} round ${round}: ${err.message}`, { cause: err })
          },
        )
        while (workload.count < lastAck) await applyOp(model, workload.next())
        const sizeBefore = await diskBytes()
        const segsBefore = await segments()
        if ((await readdir(dir)).includes('snapshot.tmp')) tmpLeft++
        const store = await FileLogStore.open(dir, { segmentSize, fsync })
        if ((await diskBytes()) < sizeBefore) tornTails++
        const segsAfter = await segments()
        if (segsAfter.some((n) => !segsBefore.includes(n))) segmentCreatedOnOpen++
        if (segsBefore[0] !== undefined && segsAfter[0]! > segsBefore[0]) oldLogDeletedOnOpen++
        const actual = await fingerprint(store)
        const snap = store.snapshot()
        if (store.firstIndex() > 1) expect(snap?.index).toBeGreaterThanOrEqual(store.firstIndex() - 1)
        await store.close()
        // the store must be exactly the model after some operation at or after the last acknowledged one
        let found = equalBytes(actual, await fingerprint(model))
        while (!found && workload.count < lastAck + WINDOW + 1) {
          await applyOp(model, workload.next())
          found = equalBytes(actual, await fingerprint(model))
        }
        expect(found, `seed ${seed} round ${round}: state after op ${lastAck}..${lastAck + WINDOW + 1}`).toBe(
          true,
        )
        if (workload.count > lastAck) torn++
        matched = workload.count
      }
      return {
        ops: matched,
        unacknowledgedButDurable: torn,
        tornTailsCut: tornTails,
        tmpLeft,
        segmentCreatedOnOpen,
        oldLogDeletedOnOpen,
      }
    }

    // CRASH_SEED=n reproduces a run
    const pickSeed = () => Number(process.env.CRASH_SEED ?? 0) || 1 + Math.floor(Math.random() * 1e9)

    it('loses no acknowledged write when the writer is killed with SIGKILL (fsync on)', async () => {
      const seed = pickSeed()
      const result = await crashLoop(seed, 64 * 1024, true, 5)
      console.log(`crash test (fsync on, seed ${seed}):`, result)
      expect(result.ops).toBeGreaterThan(500)
    })

    it('loses no acknowledged write when the writer is killed with SIGKILL (fsync off, small segments)', async () => {
      const seed = pickSeed()
      const result = await crashLoop(seed, 8 * 1024, false, 5)
      console.log(`crash test (fsync off, seed ${seed}):`, result)
      expect(result.ops).toBeGreaterThan(500)
    })

    it('installs a snapshot atomically when the writer is killed with SIGKILL amid repeated installs', async () => {
      const seed = pickSeed()
      const result = await crashLoop(seed, 8 * 1024, true, 6, 'installs', [20, 40])
      console.log(`crash test (installs, fsync on, seed ${seed}):`, result)
      expect(result.ops).toBeGreaterThan(120)
    })
  })

  describe('throughput', () => {
    it('prints appends per second with and without fsync', async () => {
      const rows: {
        mode: string
        fsync: boolean
        batch: number
        inFlight: number
        appendsPerSec: number
        writeP50Ms: number
      }[] = []
      const payload = 100
      for (const fsync of [true, false]) {
        for (const [batch, inFlight] of [
          [1, 1],
          [16, 1],
          [256, 1],
          [1, 64],
          [16, 64],
        ] as const) {
          const sub = join(dir, `${fsync ? 'sync' : 'nosync'}-${batch}-${inFlight}`)
          const s = await FileLogStore.open(sub, { fsync })
          stores.push(s)
          const proto = random(payload)
          let next = 1
          const latencies: number[] = []
          const started = performance.now()
          const deadline = started + 600
          const one = async () => {
            const entries = []
            for (let i = 0; i < batch; i++)
              entries.push({ index: next++, term: 1, kind: 'command' as const, data: proto })
            const t = performance.now()
            await s.append(entries)
            latencies.push(performance.now() - t)
          }
          const lanes = Array.from({ length: inFlight }, async () => {
            while (performance.now() < deadline) await one()
          })
          await Promise.all(lanes)
          const elapsed = (performance.now() - started) / 1000
          latencies.sort((a, b) => a - b)
          rows.push({
            mode: inFlight > 1 ? 'pipelined' : 'sequential',
            fsync,
            batch,
            inFlight,
            appendsPerSec: Math.round((next - 1) / elapsed),
            writeP50Ms: Number(latencies[Math.floor(latencies.length / 2)]!.toFixed(3)),
          })
          expect(s.lastIndex()).toBe(next - 1)
        }
      }
      console.log(`FileLogStore throughput (${payload}-byte entries, 0.6 s each):`)
      console.table(rows)
      for (const r of rows) expect(r.appendsPerSec).toBeGreaterThan(50)
    })
  })
})

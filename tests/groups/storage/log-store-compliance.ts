import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  ClosedError,
  type HardState,
  InvalidArgumentError,
  type LogEntry,
  type LogStore,
  type SnapshotMeta,
  StorageError,
} from '../../../platform/node/index.ts'

/**
 * One backing store (a directory, a database) that stores can be opened over, again and again.
 * `open()` of a non-durable store may return a fresh, empty store each time.
 */
export interface LogStoreHarness {
  open(): Promise<LogStore>
  /** Removes whatever the harness created. */
  cleanup(): Promise<void>
}

/** Runs the behaviour every LogStore must have. `factory` makes a fresh harness per test. */
export function runLogStoreCompliance(name: string, factory: () => Promise<LogStoreHarness>): void {
  describe(`LogStore compliance: ${name}`, () => {
    let harness: LogStoreHarness
    let store: LogStore
    const opened: LogStore[] = []

    async function open(): Promise<LogStore> {
      const s = await harness.open()
      opened.push(s)
      return s
    }

    /** Closes `store` and opens the same backing again (durable stores only). */
    async function reopen(): Promise<LogStore> {
      await store.close()
      store = await open()
      return store
    }

    beforeEach(async () => {
      harness = await factory()
      store = await open()
    })

    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close()
      await harness.cleanup()
    })

    describe('basics', () => {
      it('starts empty', async () => {
        expect(store.firstIndex()).toBe(1)
        expect(store.lastIndex()).toBe(0)
        expect(store.term(0)).toBe(0)
        expect(store.term(1)).toBeUndefined()
        expect(store.snapshot()).toBeUndefined()
        expect(await store.readSnapshot()).toBeUndefined()
        expect(await store.entries(1, 100)).toEqual([])
        const loaded = await store.load()
        expect(loaded.hardState).toEqual({ term: 0, vote: null, commit: 0 })
        expect(loaded.snapshot).toBeUndefined()
        expect(loaded.snapshotData).toBeUndefined()
        expect(loaded.entries).toEqual([])
      })

      it('appends and reads ranges (inclusive, clamped)', async () => {
        await store.append(range(1, 10, 1))
        await store.append(range(11, 15, 2))
        expect(store.firstIndex()).toBe(1)
        expect(store.lastIndex()).toBe(15)
        expect(store.term(10)).toBe(1)
        expect(store.term(11)).toBe(2)
        expect(store.term(16)).toBeUndefined()
        expect(await store.entries(1, 15)).toEqual(range(1, 15, (i) => (i <= 10 ? 1 : 2)))
        expect(indices(await store.entries(3, 5))).toEqual([3, 4, 5])
        expect(indices(await store.entries(7, 7))).toEqual([7])
        expect(indices(await store.entries(0, 3))).toEqual([1, 2, 3])
        expect(indices(await store.entries(14, 100))).toEqual([14, 15])
        expect(await store.entries(16, 20)).toEqual([])
        expect(await store.entries(5, 4)).toEqual([])
      })

      it('rejects appends that would leave a gap or overlap, changing nothing', async () => {
        await store.append(range(1, 5, 1))
        await expect(store.append(range(7, 8, 1))).rejects.toBeInstanceOf(InvalidArgumentError)
        await expect(store.append(range(5, 6, 1))).rejects.toBeInstanceOf(InvalidArgumentError)
        await expect(store.append([entry(6, 1), entry(8, 1)])).rejects.toBeInstanceOf(InvalidArgumentError)
        await expect(store.append([{ ...entry(6, 1), term: -1 }])).rejects.toBeInstanceOf(
          InvalidArgumentError,
        )
        await expect(
          store.write({ hardState: { term: 9, vote: 'x', commit: 0 }, entries: [entry(9, 1)] }),
        ).rejects.toBeInstanceOf(InvalidArgumentError)
        expect(store.lastIndex()).toBe(5)
        expect(store.hardState().term).toBe(0)
        await store.append(range(6, 6, 1))
        expect(store.lastIndex()).toBe(6)
      })

      it('truncates, then appends from the truncation point', async () => {
        await store.append(range(1, 10, 1))
        await store.truncateFrom(6)
        expect(store.lastIndex()).toBe(5)
        expect(store.term(6)).toBeUndefined()
        expect(indices(await store.entries(1, 10))).toEqual([1, 2, 3, 4, 5])
        await store.append(range(6, 8, 2))
        expect(await store.entries(5, 8)).toEqual([entry(5, 1), entry(6, 2), entry(7, 2), entry(8, 2)])
        await store.truncateFrom(100) // past the end: nothing
        expect(store.lastIndex()).toBe(8)
        await store.truncateFrom(1)
        expect(store.lastIndex()).toBe(0)
        expect(store.firstIndex()).toBe(1)
        expect(await store.entries(1, 10)).toEqual([])
        await store.append(range(1, 2, 3))
        expect(await store.entries(1, 2)).toEqual(range(1, 2, 3))
      })

      it('round-trips the hard state, unknown fields included', async () => {
        const hs = { term: 7, vote: 'peer-a', abstained: true, commit: 42, extra: { nested: [1, 2] } }
        await store.saveHardState(hs)
        expect(store.hardState()).toEqual(hs)
        await store.saveHardState({ term: 8, vote: null, commit: 43 })
        expect(store.hardState()).toEqual({ term: 8, vote: null, commit: 43 })
        expect((await store.load()).hardState).toEqual({ term: 8, vote: null, commit: 43 })
        // what the store hands out is a copy
        const got = store.hardState()
        got.term = 99
        expect(store.hardState().term).toBe(8)
      })

      it('applies a combined write: truncation, then entries, then hard state', async () => {
        await store.append(range(1, 10, 1))
        const hs: HardState = { term: 2, vote: 'leader', commit: 4 }
        await store.write({ hardState: hs, truncateFrom: 5, entries: range(5, 7, 2) })
        expect(store.hardState()).toEqual(hs)
        expect(store.lastIndex()).toBe(7)
        expect(await store.entries(1, 10)).toEqual([...range(1, 4, 1), ...range(5, 7, 2)])
        // truncation alone, hard state alone, and an empty batch (a barrier)
        await store.write({ truncateFrom: 7 })
        expect(store.lastIndex()).toBe(6)
        await store.write({ hardState: { ...hs, commit: 6 } })
        expect(store.hardState().commit).toBe(6)
        await store.write({})
        expect(store.lastIndex()).toBe(6)
      })

      it('keeps binary data, every entry kind and unknown fields', async () => {
        const all = new Uint8Array(256).map((_, i) => i)
        const entries: LogEntry[] = [
          { index: 1, term: 1, kind: 'command', data: all },
          { index: 2, term: 1, kind: 'command', data: new Uint8Array(0) },
          { index: 3, term: 1, kind: 'noop' },
          { index: 4, term: 2, kind: 'config', config: { voters: ['a', 'b', 'c'] }, clusterId: 'cluster-1' },
          { index: 5, term: 2, kind: 'command', data: random(70_000) },
          { index: 6, term: 2, kind: 'command', data: all, future: { flag: true, n: 2n ** 70n } } as LogEntry,
        ]
        await store.append(entries)
        const got = await store.entries(1, 6)
        expect(got).toEqual(entries)
        expect(got[0]!.data).toBeInstanceOf(Uint8Array)
        // the caller's buffers are not shared with the store
        entries[0]!.data![0] = 200
        expect((await store.entries(1, 1))[0]!.data![0]).toBe(0)
        got[0]!.data![1] = 201
        expect((await store.entries(1, 1))[0]!.data![1]).toBe(1)
      })

      it('drops undefined fields like canonical CBOR does', async () => {
        await store.append([{ index: 1, term: 1, kind: 'noop', data: undefined }])
        const [e] = await store.entries(1, 1)
        expect(e).toEqual({ index: 1, term: 1, kind: 'noop' })
        expect(Object.hasOwn(e!, 'data')).toBe(false)
      })

      it('bounds reads by maxBytes, always returning at least one entry', async () => {
        await store.append(range(1, 10, 1, 1000))
        const some = await store.entries(1, 10, { maxBytes: 3500 })
        expect(indices(some)).toEqual([1, 2, 3])
        expect(indices(await store.entries(4, 10, { maxBytes: 1 }))).toEqual([4])
        expect(indices(await store.entries(1, 10, { maxBytes: 1e9 }))).toHaveLength(10)
      })

      it('writes large batches', async () => {
        const big = range(1, 20_000, 1, 16)
        await store.write({ hardState: { term: 1, vote: null, commit: 0 }, entries: big })
        expect(store.lastIndex()).toBe(20_000)
        const got = await store.entries(1, 20_000)
        expect(got).toHaveLength(20_000)
        expect(got[12_345]).toEqual(big[12_345])
        const huge = { index: 20_001, term: 1, kind: 'command' as const, data: random(4 * 1024 * 1024) }
        await store.append([huge])
        expect((await store.entries(20_001, 20_001))[0]).toEqual(huge)
      })

      it('orders concurrent writes and resolves them in call order', async () => {
        const order: number[] = []
        const pending: Promise<void>[] = []
        for (let i = 1; i <= 200; i++) {
          const p =
            i % 50 === 0
              ? store.write({ hardState: { term: 1, vote: null, commit: i - 1 }, entries: [entry(i, 1)] })
              : store.append([entry(i, 1)])
          pending.push(p.then(() => void order.push(i)))
          // the view already reflects it
          expect(store.lastIndex()).toBe(i)
        }
        // reads issued while writes are in flight see them
        expect(indices(await store.entries(195, 200))).toEqual([195, 196, 197, 198, 199, 200])
        await Promise.all(pending)
        expect(order).toEqual(range(1, 200, 1).map((e) => e.index))
        expect(await store.entries(1, 200)).toEqual(range(1, 200, 1))
        expect(store.hardState().commit).toBe(199)
      })

      it('resolves a snapshot and the writes around it in call order', async () => {
        const order: string[] = []
        const track = (name: string, p: Promise<void>) => p.then(() => void order.push(name))
        await Promise.all([
          track('append 1', store.append(range(1, 1, 1))),
          track('snapshot', store.saveSnapshot(meta(1, 1), random(4 * 1024 * 1024))),
          track('append 2', store.append(range(2, 2, 1))),
          track('hard state', store.saveHardState({ term: 1, vote: null, commit: 2 })),
          track('compact', store.compact(1)),
          track('append 3', store.append(range(3, 3, 1))),
        ])
        expect(order).toEqual(['append 1', 'snapshot', 'append 2', 'hard state', 'compact', 'append 3'])
        expect(indices(await store.entries(1, 3))).toEqual([2, 3])
      })

      it('orders interleaved truncations, appends and compactions issued without waiting', async () => {
        const ops = [
          store.append(range(1, 10, 1)),
          store.truncateFrom(8),
          store.append(range(8, 12, 2)),
          store.saveSnapshot(meta(5, 1)),
          store.compact(5),
          store.truncateFrom(11),
          store.append(range(11, 11, 3)),
          store.saveHardState({ term: 3, vote: 'z', commit: 9 }),
        ]
        await Promise.all(ops)
        expect(store.firstIndex()).toBe(6)
        expect(await store.entries(1, 20)).toEqual([...range(6, 7, 1), ...range(8, 10, 2), entry(11, 3)])
        expect(store.hardState()).toEqual({ term: 3, vote: 'z', commit: 9 })
      })

      it('rejects calls after close', async () => {
        await store.append(range(1, 2, 1))
        await store.close()
        await expect(store.append([entry(3, 1)])).rejects.toBeInstanceOf(ClosedError)
        await expect(store.entries(1, 2)).rejects.toBeInstanceOf(ClosedError)
        await expect(store.load()).rejects.toBeInstanceOf(ClosedError)
        await store.close() // idempotent
      })

      it('rejects bad arguments', async () => {
        await expect(store.truncateFrom(-1)).rejects.toBeInstanceOf(InvalidArgumentError)
        await expect(store.compact(1.5)).rejects.toBeInstanceOf(InvalidArgumentError)
        await expect(store.saveHardState({ term: -1, vote: null, commit: 0 })).rejects.toBeInstanceOf(
          InvalidArgumentError,
        )
        await expect(
          store.saveSnapshot({ index: 1, term: 1, config: {} } as unknown as SnapshotMeta),
        ).rejects.toBeInstanceOf(InvalidArgumentError)
        expect(StorageError).toBeDefined()
      })
    })

    describe('snapshots and compaction', () => {
      it('saves a snapshot with its payload, then compacts the log', async () => {
        await store.append(range(1, 10, 1))
        await store.append(range(11, 12, 2))
        const data = random(100_000)
        await store.saveSnapshot(meta(11, 2, 'c1'), data)
        expect(store.snapshot()).toEqual(meta(11, 2, 'c1'))
        await store.compact(5)
        expect(store.firstIndex()).toBe(6)
        expect(store.lastIndex()).toBe(12)
        expect(store.term(5)).toBe(1) // the compaction point keeps its term
        expect(store.term(4)).toBeUndefined()
        expect(indices(await store.entries(1, 12))).toEqual([6, 7, 8, 9, 10, 11, 12])
        const snap = await store.readSnapshot()
        expect(snap?.meta).toEqual(meta(11, 2, 'c1'))
        expect(snap?.data).toEqual(data)
        const loaded = await store.load()
        expect(loaded.snapshot).toEqual(meta(11, 2, 'c1'))
        expect(loaded.snapshotData).toEqual(data)
        expect(indices(loaded.entries)).toEqual([6, 7, 8, 9, 10, 11, 12])
        // a later snapshot replaces it; one without a payload has none
        await store.saveSnapshot(meta(12, 2))
        expect((await store.readSnapshot())?.data).toBeUndefined()
        expect((await store.load()).snapshotData).toBeUndefined()
      })

      it('compacts past the end: the log restarts after the snapshot', async () => {
        await store.append(range(1, 10, 1))
        await store.saveSnapshot(meta(20, 3))
        await store.compact(20)
        expect(store.firstIndex()).toBe(21)
        expect(store.lastIndex()).toBe(20)
        expect(store.term(20)).toBe(3) // from the snapshot
        expect(await store.entries(1, 30)).toEqual([])
        await expect(store.append([entry(11, 3)])).rejects.toBeInstanceOf(InvalidArgumentError)
        await store.append(range(21, 22, 3))
        expect(indices(await store.entries(1, 30))).toEqual([21, 22])
        expect(store.term(21)).toBe(3)
      })

      it('compacts past the end without a snapshot there: the term is unknown', async () => {
        await store.append(range(1, 3, 1))
        await store.compact(10)
        expect(store.lastIndex()).toBe(10)
        expect(store.term(10)).toBeUndefined()
        await store.append(range(11, 11, 2))
        expect(store.term(11)).toBe(2)
      })

      it('compacts, then truncates and appends', async () => {
        await store.append(range(1, 10, 1))
        await store.compact(5)
        await store.truncateFrom(8)
        expect(indices(await store.entries(1, 10))).toEqual([6, 7])
        await store.truncateFrom(3) // inside the compacted prefix: empties the log
        expect(store.lastIndex()).toBe(5)
        expect(store.firstIndex()).toBe(6)
        expect(store.term(5)).toBe(1)
        await store.append(range(6, 7, 2))
        expect(await store.entries(1, 10)).toEqual(range(6, 7, 2))
      })

      it('compacts idempotently', async () => {
        await store.append(range(1, 10, 1))
        await store.compact(6)
        await store.compact(6)
        await store.compact(3)
        await store.compact(0)
        expect(store.firstIndex()).toBe(7)
        expect(store.lastIndex()).toBe(10)
        expect(indices(await store.entries(1, 10))).toEqual([7, 8, 9, 10])
      })

      it('compacts the whole log, then continues it', async () => {
        await store.append(range(1, 10, 1))
        await store.compact(10)
        expect(store.lastIndex()).toBe(10)
        expect(store.term(10)).toBe(1)
        await store.append(range(11, 12, 1))
        expect(indices(await store.entries(1, 20))).toEqual([11, 12])
      })
    })

    describe('installSnapshot', () => {
      /** Everything the store shows, through its view and through load(). */
      async function state(s: LogStore = store) {
        const loaded = await s.load()
        return {
          first: s.firstIndex(),
          last: s.lastIndex(),
          pointTerm: s.term(s.firstIndex() - 1),
          hardState: s.hardState(),
          snapshot: s.snapshot(),
          read: await s.readSnapshot(),
          loaded,
        }
      }

      /** What the store must show right after installing `m` with `data` over hard state `hs`. */
      function installed(m: SnapshotMeta, data: Uint8Array, hs: HardState) {
        const hardState = { ...hs, commit: Math.max(hs.commit, m.index) }
        return {
          first: m.index + 1,
          last: m.index,
          pointTerm: m.term,
          hardState,
          snapshot: m,
          read: { meta: m, data },
          loaded: { hardState, snapshot: m, snapshotData: data, entries: [] },
        }
      }

      it('replaces a longer log: the log is empty after the snapshot, commit rises to it', async () => {
        const hs = { term: 3, vote: 'a', abstained: true, commit: 5, extra: { kept: [1] } }
        await store.write({ hardState: hs, entries: [...range(1, 12, 1), ...range(13, 20, 2)] })
        await store.saveSnapshot(meta(4, 1), random(100))
        await store.compact(4)
        const data = random(50_000)
        await store.installSnapshot(meta(10, 1, 'c1'), data)
        expect(await state()).toEqual(installed(meta(10, 1, 'c1'), data, hs))
        expect(store.hardState()).toEqual({ ...hs, commit: 10 })
        expect(store.term(9)).toBeUndefined()
        expect(store.term(11)).toBeUndefined()
        expect(await store.entries(1, 100)).toEqual([])
        await expect(store.append([entry(10, 1)])).rejects.toBeInstanceOf(InvalidArgumentError)
        await expect(store.append([entry(12, 1)])).rejects.toBeInstanceOf(InvalidArgumentError)
        await store.append(range(11, 13, 3))
        expect(await store.entries(1, 100)).toEqual(range(11, 13, 3))
        expect(store.term(10)).toBe(1)
      })

      it('replaces a shorter log, and keeps a commit already past the snapshot', async () => {
        const hs = { term: 4, vote: null, commit: 3 }
        await store.write({ hardState: hs, entries: range(1, 5, 1) })
        const data = random(10)
        await store.installSnapshot(meta(50, 4), data)
        expect(await state()).toEqual(installed(meta(50, 4), data, hs))
        await store.append(range(51, 52, 4))
        expect(store.lastIndex()).toBe(52)
        expect(indices(await store.entries(1, 100))).toEqual([51, 52])
        // a second install behind the commit point leaves the commit alone
        await store.saveHardState({ term: 4, vote: null, commit: 60 })
        await store.installSnapshot(meta(55, 4), data)
        expect(store.hardState().commit).toBe(60)
        expect(store.firstIndex()).toBe(56)
      })

      it('drops entries of other terms past the snapshot, whatever the term at its index was', async () => {
        await store.write({
          hardState: { term: 3, vote: 'b', commit: 8 },
          entries: [...range(1, 10, 1), ...range(11, 20, 2)],
        })
        // the leader's snapshot says index 15 is in term 3; here it holds a stale term-2 entry
        const data = random(1000)
        await store.installSnapshot(meta(15, 3), data)
        expect(await state()).toEqual(installed(meta(15, 3), data, { term: 3, vote: 'b', commit: 8 }))
        expect(store.term(15)).toBe(3)
        expect(store.term(16)).toBeUndefined()
        // the leader's suffix continues it: as a plain append and as a batch with a (no-op) truncation
        await store.append(range(16, 17, 3))
        await store.write({
          truncateFrom: 18,
          entries: range(18, 19, 3),
          hardState: { term: 3, vote: 'b', commit: 19 },
        })
        expect(await store.entries(1, 100)).toEqual(range(16, 19, 3))
        expect(store.hardState()).toEqual({ term: 3, vote: 'b', commit: 19 })
        // and a later local snapshot and compaction work as usual
        await store.saveSnapshot(meta(17, 3), random(20))
        await store.compact(17)
        expect(store.firstIndex()).toBe(18)
        expect(await store.entries(1, 100)).toEqual(range(18, 19, 3))
      })

      it('installs over an empty store, with an empty payload', async () => {
        const data = new Uint8Array(0)
        await store.installSnapshot(meta(7, 2), data)
        expect(await state()).toEqual(installed(meta(7, 2), data, { term: 0, vote: null, commit: 0 }))
        await store.append(range(8, 8, 2))
        expect(await store.entries(1, 10)).toEqual([entry(8, 2)])
      })

      it('orders installs among writes, snapshots and compactions issued without waiting', async () => {
        const order: string[] = []
        const track = (name: string, p: Promise<void>) => p.then(() => void order.push(name))
        const a = random(3 * 1024 * 1024)
        const b = random(1000)
        await Promise.all([
          track('append 1-10', store.append(range(1, 10, 1))),
          track('snapshot 5', store.saveSnapshot(meta(5, 1), random(2 * 1024 * 1024))),
          track('hard state', store.saveHardState({ term: 2, vote: 'x', commit: 3 })),
          track('install 8', store.installSnapshot(meta(8, 2), a)),
          track('append 9-12', store.append(range(9, 12, 2))),
          track('write 12-14', store.write({ truncateFrom: 12, entries: range(12, 14, 3) })),
          track('compact 10', store.compact(10)),
          track('install 20', store.installSnapshot(meta(20, 4), b)),
          track('append 21-22', store.append(range(21, 22, 4))),
          track('hard state 2', store.saveHardState({ term: 4, vote: 'y', commit: 21 })),
        ])
        expect(order).toEqual([
          'append 1-10',
          'snapshot 5',
          'hard state',
          'install 8',
          'append 9-12',
          'write 12-14',
          'compact 10',
          'install 20',
          'append 21-22',
          'hard state 2',
        ])
        expect(store.firstIndex()).toBe(21)
        expect(store.term(20)).toBe(4)
        expect(await store.entries(1, 100)).toEqual(range(21, 22, 4))
        expect(store.hardState()).toEqual({ term: 4, vote: 'y', commit: 21 })
        expect(await store.readSnapshot()).toEqual({ meta: meta(20, 4), data: b })
        if (store.durable) {
          const expected = await state()
          expect(await state(await reopen())).toEqual(expected)
        }
      })

      it('applies to the view at once, in call order', async () => {
        const first = store.append(range(1, 10, 1))
        const install = store.installSnapshot(meta(6, 1), random(10))
        expect(store.firstIndex()).toBe(7)
        expect(store.lastIndex()).toBe(6)
        expect(store.snapshot()).toEqual(meta(6, 1))
        expect(store.hardState().commit).toBe(6)
        expect(await store.entries(1, 10)).toEqual([])
        const next = store.append(range(7, 8, 2))
        expect(indices(await store.entries(1, 10))).toEqual([7, 8])
        await Promise.all([first, install, next])
        expect(await store.entries(1, 10)).toEqual(range(7, 8, 2))
      })

      it('is undone by a later reset and replaced by a later snapshot', async () => {
        await store.append(range(1, 5, 1))
        await store.installSnapshot(meta(10, 2), random(10))
        await store.append(range(11, 12, 2))
        const data = random(20)
        await store.saveSnapshot(meta(12, 2), data)
        expect(await store.readSnapshot()).toEqual({ meta: meta(12, 2), data })
        expect(indices(await store.entries(1, 20))).toEqual([11, 12])
        if (store.durable) {
          const s = await reopen()
          expect(s.firstIndex()).toBe(11)
          expect(s.term(10)).toBe(2)
          expect(await s.readSnapshot()).toEqual({ meta: meta(12, 2), data })
          expect(indices(await s.entries(1, 20))).toEqual([11, 12])
        }
        await store.installSnapshot(meta(30, 3), random(10))
        await store.reset()
        expect((await state()).loaded).toEqual({ hardState: { term: 0, vote: null, commit: 0 }, entries: [] })
        expect(store.firstIndex()).toBe(1)
        if (store.durable) {
          const s = await reopen()
          expect(await s.load()).toEqual({ hardState: { term: 0, vote: null, commit: 0 }, entries: [] })
        }
      })

      it('rejects a bad snapshot, changing nothing', async () => {
        await store.write({ hardState: { term: 2, vote: 'a', commit: 4 }, entries: range(1, 8, 2) })
        await store.saveSnapshot(meta(3, 2), random(10))
        await store.compact(3)
        const before = await state()
        const bad: unknown[][] = [
          [null, random(1)],
          [{ index: 9, term: 2 }, random(1)],
          [{ index: 9, term: 2, config: {} }, random(1)],
          [{ ...meta(9, 2), index: -1 }, random(1)],
          [{ ...meta(9, 2), index: 9.5 }, random(1)],
          [{ ...meta(9, 2), term: -2 }, random(1)],
          [meta(9, 2), undefined],
          [meta(9, 2), 'data'],
          [meta(9, 2), [1, 2, 3]],
        ]
        for (const [m, d] of bad) {
          await expect(
            store.installSnapshot(m as SnapshotMeta, d as Uint8Array),
            JSON.stringify([m, d]),
          ).rejects.toBeInstanceOf(InvalidArgumentError)
        }
        expect(await state()).toEqual(before)
        await store.append(range(9, 9, 2))
        expect(store.lastIndex()).toBe(9)
        if (store.durable) {
          const s = await reopen()
          expect(s.lastIndex()).toBe(9)
          expect(s.firstIndex()).toBe(4)
          expect((await s.readSnapshot())?.meta).toEqual(meta(3, 2))
        }
      })

      it('rejects after close', async () => {
        await store.close()
        await expect(store.installSnapshot(meta(1, 1), random(1))).rejects.toBeInstanceOf(ClosedError)
      })

      it('keeps an install across reopens (durable stores)', async ({ skip }) => {
        if (!store.durable) skip()
        await store.write({ hardState: { term: 5, vote: 'c', commit: 2 }, entries: range(1, 30, 5, 200) })
        const data = random(200_000)
        await store.installSnapshot(meta(12, 6, 'c2'), data)
        const expected = installed(meta(12, 6, 'c2'), data, { term: 5, vote: 'c', commit: 2 })
        let s = await reopen()
        expect(await state(s)).toEqual(expected)
        await s.write({ hardState: { term: 6, vote: 'd', commit: 13 }, entries: range(13, 15, 6, 200) })
        s = await reopen()
        expect(s.firstIndex()).toBe(13)
        expect(s.term(12)).toBe(6)
        expect(s.hardState()).toEqual({ term: 6, vote: 'd', commit: 13 })
        expect(await s.entries(1, 100)).toEqual(range(13, 15, 6, 200))
        expect((await s.load()).snapshotData).toEqual(data)
        // an install over a reopened store, then a compaction in the new log
        await s.append(range(16, 40, 6, 200))
        await s.installSnapshot(meta(20, 6), data)
        await s.append(range(21, 30, 7, 200))
        await s.saveSnapshot(meta(25, 7))
        await s.compact(25)
        s = await reopen()
        expect(s.firstIndex()).toBe(26)
        expect(s.term(25)).toBe(7)
        expect(await s.entries(1, 100)).toEqual(range(26, 30, 7, 200))
        expect(await s.readSnapshot()).toEqual({ meta: meta(25, 7) })
      })
    })

    describe('reset', () => {
      it('wipes hard state, snapshot and log', async () => {
        await store.write({ hardState: { term: 5, vote: 'a', commit: 3 }, entries: range(1, 10, 5) })
        await store.saveSnapshot(meta(4, 5), random(1000))
        await store.compact(4)
        await store.reset()
        expect(store.firstIndex()).toBe(1)
        expect(store.lastIndex()).toBe(0)
        expect(store.term(0)).toBe(0)
        expect(store.hardState()).toEqual({ term: 0, vote: null, commit: 0 })
        expect(store.snapshot()).toBeUndefined()
        const loaded = await store.load()
        expect(loaded.entries).toEqual([])
        expect(loaded.snapshot).toBeUndefined()
        await store.append(range(1, 3, 1))
        expect(await store.entries(1, 3)).toEqual(range(1, 3, 1))
      })

      it('orders a reset between writes issued without waiting', async () => {
        const ops = [
          store.append(range(1, 5, 1)),
          store.saveSnapshot(meta(3, 1), random(10)),
          store.reset(),
          store.append(range(1, 2, 7)),
          store.saveSnapshot(meta(1, 7)),
        ]
        await Promise.all(ops)
        expect(await store.entries(1, 10)).toEqual(range(1, 2, 7))
        expect(store.snapshot()).toEqual(meta(1, 7))
        expect((await store.readSnapshot())?.meta).toEqual(meta(1, 7))
      })
    })

    describe('durability (durable stores)', () => {
      it('keeps everything across a reopen', async ({ skip }) => {
        if (!store.durable) skip()
        const hs = { term: 4, vote: 'b', abstained: true, commit: 9, extra: 'kept' }
        const data = random(5000)
        await store.write({ hardState: { term: 1, vote: null, commit: 0 }, entries: range(1, 20, 1, 100) })
        await store.write({ truncateFrom: 15, entries: range(15, 25, 3, 100) })
        await store.saveSnapshot(meta(10, 1, 'c9'), data)
        await store.compact(8)
        await store.saveHardState(hs)
        const before = await store.entries(1, 100)
        const s = await reopen()
        expect(s.firstIndex()).toBe(9)
        expect(s.lastIndex()).toBe(25)
        expect(s.term(8)).toBe(1)
        expect(s.term(20)).toBe(3)
        const loaded = await s.load()
        expect(loaded.hardState).toEqual(hs)
        expect(loaded.snapshot).toEqual(meta(10, 1, 'c9'))
        expect(loaded.snapshotData).toEqual(data)
        expect(loaded.entries).toEqual(before)
        // and it can go on
        await s.append(range(26, 27, 3))
        await s.truncateFrom(27)
        const s2 = await reopen()
        expect(s2.lastIndex()).toBe(26)
        expect(indices(await s2.entries(24, 30))).toEqual([24, 25, 26])
      })

      it('keeps a compaction past the end across a reopen', async ({ skip }) => {
        if (!store.durable) skip()
        await store.append(range(1, 5, 1))
        await store.saveSnapshot(meta(50, 4))
        await store.compact(50)
        let s = await reopen()
        expect(s.firstIndex()).toBe(51)
        expect(s.lastIndex()).toBe(50)
        expect(s.term(50)).toBe(4)
        await s.append(range(51, 52, 4))
        s = await reopen()
        expect(await s.entries(1, 100)).toEqual(range(51, 52, 4))
      })

      it('keeps a reset across a reopen', async ({ skip }) => {
        if (!store.durable) skip()
        await store.write({ hardState: { term: 3, vote: 'a', commit: 1 }, entries: range(1, 3, 3) })
        await store.saveSnapshot(meta(2, 3), random(10))
        await store.reset()
        await store.append(range(1, 1, 1))
        const s = await reopen()
        const loaded = await s.load()
        expect(loaded.hardState).toEqual({ term: 0, vote: null, commit: 0 })
        expect(loaded.snapshot).toBeUndefined()
        expect(loaded.entries).toEqual([entry(1, 1)])
      })

      it('persists writes issued without waiting, once the last one resolves', async ({ skip }) => {
        if (!store.durable) skip()
        const pending: Promise<void>[] = []
        for (let i = 1; i <= 500; i++) pending.push(store.append([entry(i, 1 + Math.floor(i / 100))]))
        await pending.at(-1)
        const s = await reopen()
        expect(s.lastIndex()).toBe(500)
        expect(s.term(499)).toBe(5)
        expect(await s.entries(1, 500)).toEqual(range(1, 500, (i) => 1 + Math.floor(i / 100)))
      })
    })

    // Ports of mosaik's InMemoryLogStore unit tests (src/groups/log/storage.rs). mosaik's `prune_prefix`
    // is `compact`, `truncate` is `truncateFrom`, `get_range` is `entries`, `available()` is
    // `firstIndex() - 1 ..= lastIndex()`, and `last()` is `lastIndex()`, which stays at the compaction
    // point when the log is empty (mosaik returns None there).
    describe('mosaik InMemoryLogStore tests', () => {
      /** Entries 1..=n with command i * 10 in term 1, as mosaik's `populate`. */
      async function populate(n: number): Promise<void> {
        await store.append(range(1, n, 1).map((e) => ({ ...e, data: cmd(e.index * 10) })))
      }
      async function get(index: number): Promise<[number, number] | undefined> {
        const [e] = await store.entries(index, index)
        return e === undefined ? undefined : [value(e), e.term]
      }
      function available(): [number, number] {
        return [store.firstIndex() - 1, store.lastIndex()]
      }

      it('prune_prefix_basic', async () => {
        await populate(5)
        await store.compact(2)
        expect(available()).toEqual([2, 5])
        expect(await get(1)).toBeUndefined()
        expect(await get(2)).toBeUndefined()
        expect(await get(3)).toEqual([30, 1])
        expect(await get(4)).toEqual([40, 1])
        expect(await get(5)).toEqual([50, 1])
      })

      it('prune_prefix_last_unchanged', async () => {
        await populate(5)
        const before = [store.lastIndex(), store.term(store.lastIndex())]
        await store.compact(3)
        expect([store.lastIndex(), store.term(store.lastIndex())]).toEqual(before)
        expect(before).toEqual([5, 1])
      })

      it('prune_prefix_then_append', async () => {
        await populate(3)
        await store.compact(2)
        expect(store.lastIndex() + 1).toBe(4)
        await store.append([{ ...entry(4, 2), data: cmd(60) }])
        expect(await get(4)).toEqual([60, 2])
        expect([store.lastIndex(), store.term(store.lastIndex())]).toEqual([4, 2])
      })

      it('prune_prefix_get_range', async () => {
        await populate(6)
        await store.compact(2)
        const within = await store.entries(3, 5)
        expect(within.map((e) => [e.term, e.index, value(e)])).toEqual([
          [1, 3, 30],
          [1, 4, 40],
          [1, 5, 50],
        ])
        const overlapping = await store.entries(1, 4)
        expect(overlapping.map((e) => [e.term, e.index, value(e)])).toEqual([
          [1, 3, 30],
          [1, 4, 40],
        ])
        expect(await store.entries(1, 2)).toEqual([])
      })

      it('prune_prefix_then_truncate', async () => {
        await populate(6)
        await store.compact(2)
        await store.truncateFrom(5)
        expect([store.lastIndex(), store.term(store.lastIndex())]).toEqual([4, 1])
        expect(await get(5)).toBeUndefined()
        expect(await get(6)).toBeUndefined()
        expect(await get(4)).toEqual([40, 1])
      })

      it('prune_prefix_idempotent', async () => {
        await populate(5)
        await store.compact(3)
        await store.compact(2)
        await store.compact(3)
        expect(available()).toEqual([3, 5])
        expect(await get(4)).toEqual([40, 1])
      })

      it('prune_prefix_all_entries', async () => {
        await populate(3)
        await store.compact(3)
        expect(await store.entries(1, 3)).toEqual([]) // mosaik: last() is None
        expect(available()).toEqual([3, 3])
        await store.append([{ ...entry(4, 2), data: cmd(100) }])
        expect(store.lastIndex()).toBe(4)
        expect(await get(4)).toEqual([100, 2])
      })

      it('prune_prefix_zero_is_noop', async () => {
        await populate(3)
        await store.compact(0)
        expect(available()).toEqual([0, 3])
        expect(await get(1)).toEqual([10, 1])
      })

      it('truncate_at_pruned_boundary_clears_remaining', async () => {
        await populate(5)
        await store.compact(3)
        await store.truncateFrom(2)
        expect(await store.entries(1, 10)).toEqual([]) // mosaik: last() is None
        expect(store.lastIndex()).toBe(3)
      })
    })
  })
}

// ---------------------------------------------------------------------------------------------------
// Helpers, exported for the implementation-specific suites

/** A command entry whose payload is derived from index and term (`size` bytes). */
export function entry(index: number, term: number, size = 8): LogEntry {
  const data = new Uint8Array(size)
  for (let i = 0; i < size; i++) data[i] = (index * 31 + term * 7 + i) & 0xff
  return { index, term, kind: 'command', data }
}

/** Entries `from..=to`, in `term` (a number or a function of the index). */
export function range(
  from: number,
  to: number,
  term: number | ((index: number) => number),
  size = 8,
): LogEntry[] {
  const out: LogEntry[] = []
  for (let i = from; i <= to; i++) out.push(entry(i, typeof term === 'number' ? term : term(i), size))
  return out
}

export function indices(entries: readonly LogEntry[]): number[] {
  return entries.map((e) => e.index)
}

export function meta(index: number, term: number, clusterId?: string): SnapshotMeta {
  const m: SnapshotMeta = { index, term, config: { voters: ['a', 'b', 'c'] } }
  if (clusterId !== undefined) m.clusterId = clusterId
  return m
}

export function random(n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)))
  return out
}

function cmd(n: number): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setFloat64(0, n)
  return out
}

function value(e: LogEntry): number {
  const d = e.data!
  return new DataView(d.buffer, d.byteOffset, d.byteLength).getFloat64(0)
}

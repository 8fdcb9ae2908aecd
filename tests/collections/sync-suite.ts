/**
 * mosaik's tests/collections/sync/{map,set,vec,depq}.rs share one structure; this is that structure,
 * run once per collection type by the sync-*.test.ts files (which add each type's own tests).
 *
 * How mosaik's snapshot sync maps onto this port. mosaik's collections always catch a late reader up
 * with a snapshot fetched in batches of `fetch_batch_size` items. Here a late member replays the log
 * while the log still holds what it misses, and installs a snapshot (fetched in 256 KiB chunks from
 * several members) once the log is compacted, which every member does each `consensus.snapshotEvery`
 * entries. So each case's batch size becomes the compaction interval, and cases that write their data
 * in one `extend` compact after every entry (`snapshotEvery: 1`): otherwise a single entry would never
 * be compacted and no snapshot would be needed. Every test asserts which path the late reader took
 * through the group's `stats.snapshotsInstalled`.
 *
 * Sizes: the 100k cases run only with MOSAIK_LONG=1; timeouts are mosaik's `2000 + 10 * size` ms,
 * scaled by TIME_FACTOR.
 */
import { setImmediate } from 'node:timers/promises'
import { expect, it } from 'vitest'
import type { ConsensusOptions, Network, Version } from '../../platform/node/index.ts'
import { ms, secs, within } from '../support/time.ts'
import { consensus, type Handle, type NodePool, online, reachWithin, sid, stats, T } from './support.ts'

export const LONG = process.env.MOSAIK_LONG === '1'
/** The 100k cases compact a full snapshot every 100 entries: minutes, not seconds, on a small machine. */
const LONG_TIMEOUT = secs(300)

export type Value = number | string

/** What the shared tests need to know about one collection type. Item `i` has a value `value(i)`. */
export interface SyncKind<R extends Handle, W extends R> {
  writer(net: Network, id: string, consensus: ConsensusOptions): W
  reader(net: Network, id: string, consensus: ConsensusOptions): R
  /** Writes item i as one command (insert / push_back). */
  put(w: W, i: number, value: Value): Promise<Version>
  /** Writes items [from, to) as one command (extend). */
  putAll(w: W, from: number, to: number, value: (i: number) => Value): Promise<Version>
  clear(w: W): Promise<Version>
  size(h: R): number
  /** Whether the replica holds item i with this value. */
  holds(h: R, i: number, value: Value): boolean
  /**
   * What a concurrent reader may rely on at any instant, given the replica's size (mosaik: `len() > 0`
   * implies the first item is readable, and for Vec the last one too).
   */
  consistent(h: R): void
}

const x10 = (i: number) => i * 10

/** Asserts that `h` holds exactly items [0, count) with their values (reports the first few misses). */
export function expectItems<R extends Handle>(
  kind: SyncKind<R, R>,
  h: R,
  count: number,
  value: (i: number) => Value,
  label: string,
): void {
  expect(kind.size(h), `${label}: size`).toBe(count)
  const missing: number[] = []
  for (let i = 0; i < count && missing.length < 5; i++) if (!kind.holds(h, i, value(i))) missing.push(i)
  expect(missing, `${label}: items missing or with the wrong value`).toEqual([])
}

/** The shared tests, registered in the caller's describe block. */
export function syncSuite<R extends Handle, W extends R>(kind: SyncKind<R, W>, pool: NodePool): void {
  const k = kind as unknown as SyncKind<R, R>
  const check = (h: R, count: number, value: (i: number) => Value, label: string) =>
    expectItems(k, h, count, value, label)

  /** A writer on node 0 and a reader on node 1, both online. */
  async function start(snapshotEvery?: number) {
    const c = { ...consensus, snapshotEvery }
    const w0 = pool.track(kind.writer(pool.nets[0]!, sid(), c))
    const r1 = pool.track(kind.reader(pool.nets[1]!, sid(), c))
    await online(w0, r1)
    return { w0, r1, c }
  }
  const late = (c: ConsensusOptions, node = 2) => pool.track(kind.reader(pool.nets[node]!, sid(), c))

  async function populate(w0: W, from: number, to: number, oneshot: boolean, value = x10): Promise<Version> {
    if (oneshot) return kind.putAll(w0, from, to, value)
    let v = w0.version
    for (let i = from; i < to; i++) v = await kind.put(w0, i, value(i))
    return v
  }

  // frozen: [size, compaction interval (mosaik's fetch batch), one extend?, long?]
  const frozen: [number, number, boolean, boolean][] = [
    [1, 100, false, false],
    [100, 30, false, false],
    [1000, 100, false, false],
    [10_000, 100, false, false],
    [10_000, 1000, false, false],
    [100_000, 100, false, true],
    [100_000, 1, true, true],
  ]
  for (const [size, every, oneshot, long] of frozen) {
    it.skipIf(long && !LONG)(
      `frozen: ${size} items (${oneshot ? 'one extend' : 'one command each'}), compaction every ${every}`,
      async () => {
        const { w0, r1, c } = await start(every)
        const v = await populate(w0, 0, size, oneshot)
        const t = ms(2000 + 10 * size)
        await reachWithin(t, v, w0, r1)
        check(r1, size, x10, 'r1')
        check(w0, size, x10, 'w0')
        const compacted = stats(w0).compactions > 0
        expect(compacted, 'the log was compacted').toBe(oneshot || size >= every)

        const r2 = late(c)
        await online(r2)
        await reachWithin(t, v, r2)
        check(r2, size, x10, 'r2')
        check(r1, size, x10, 'r1')
        check(w0, size, x10, 'w0')
        expect(stats(r2).snapshotsInstalled > 0, 'r2 installed a snapshot').toBe(compacted)
      },
      long ? LONG_TIMEOUT : undefined,
    )
  }

  // writes_during_sync: [initial, extra, compaction interval, initial in one extend?, long?]
  const during: [number, number, number, boolean, boolean][] = [
    [100, 50, 1, true, false],
    [1000, 500, 1, true, false],
    [100_000, 5000, 100, false, true],
    [100_000, 5000, 100, true, true],
    [100_000, 5000, 1000, false, true],
    [100_000, 5000, 1000, true, true],
  ]
  for (const [initial, extra, every, oneshot, long] of during) {
    it.skipIf(long && !LONG)(
      `writes_during_sync: ${initial} items (${oneshot ? 'one extend' : 'one command each'}), then ${extra} more while a late reader syncs, compaction every ${every}`,
      async () => {
        const total = initial + extra
        const { w0, r1, c } = await start(every)
        let v = await populate(w0, 0, initial, oneshot)
        await reachWithin(ms(2000 + 10 * initial), v, w0, r1)
        const compacted = stats(w0).compactions > 0

        const r2 = late(c)
        v = await populate(w0, initial, total, false)
        await reachWithin(ms(2000 + 10 * total), v, w0, r1, r2)
        for (const [h, label] of [
          [w0, 'w0'],
          [r1, 'r1'],
          [r2, 'r2'],
        ] as const)
          check(h, total, x10, label)
        if (compacted) expect(stats(r2).snapshotsInstalled).toBeGreaterThan(0)
      },
      long ? LONG_TIMEOUT : undefined,
    )
  }

  it('empty: a reader of an empty collection converges to empty', async () => {
    const { w0, r1, c } = await start()
    expect(k.size(r1)).toBe(0)
    expect(k.holds(r1, 0, x10(0))).toBe(false)
    // Beyond mosaik: a late reader of the empty collection too.
    const r2 = late(c)
    await online(r2)
    await reachWithin(T, w0.version, r2)
    expect(k.size(r2)).toBe(0)
  })

  it('single_entry: one item reaches a reader and, through a snapshot, a late reader', async () => {
    const { w0, r1, c } = await start(1)
    const v = await kind.put(w0, 0, 420)
    await reachWithin(secs(5), v, r1)
    expect(k.size(r1)).toBe(1)
    expect(k.holds(r1, 0, 420)).toBe(true)
    expect(k.holds(r1, 1, 10)).toBe(false)

    const r2 = late(c)
    await online(r2)
    await reachWithin(secs(5), v, r2)
    expect(k.size(r2)).toBe(1)
    expect(k.holds(r2, 0, 420)).toBe(true)
    expect(stats(r2).snapshotsInstalled).toBeGreaterThan(0)
  })

  it('reader_before_writer: a reader alone stays offline; the writer appears and extends 100', async () => {
    const c = { ...consensus }
    const r1 = pool.track(kind.reader(pool.nets[1]!, sid(), c))
    // A group of readers only has no leader (observers never stand): nothing happens in a short window.
    const alone = await Promise.race([
      r1.when.online().then(() => 'online'),
      new Promise((resolve) => setTimeout(resolve, ms(600), 'offline')),
    ])
    expect(alone).toBe('offline')

    const w0 = pool.track(kind.writer(pool.nets[0]!, sid(), c))
    await online(w0, r1)
    const v = await kind.putAll(w0, 0, 100, x10)
    await reachWithin(secs(5), v, r1)
    check(r1, 100, x10, 'r1')
  })

  // extreme_batch_sizes: [size, compaction interval]; the data is one extend.
  const extreme: [number, number][] = [
    [10, 10_000],
    [100, 100_000],
    [100, 1],
    [1000, 1],
  ]
  for (const [size, every] of extreme) {
    it(`extreme_batch_sizes: ${size} items, compaction every ${every}`, async () => {
      const { w0, r1, c } = await start(every)
      const v = await kind.putAll(w0, 0, size, x10)
      const t = ms(5000 + 10 * size)
      await reachWithin(t, v, r1)
      check(r1, size, x10, 'r1')

      const r2 = late(c)
      await online(r2)
      await reachWithin(t, v, r2)
      check(r2, size, x10, 'r2')
      expect(stats(r2).snapshotsInstalled > 0, 'r2 installed a snapshot').toBe(every === 1)
    })
  }

  it('many_readers: five readers join at once and each installs the 1000-item snapshot', async () => {
    const size = 1000
    const c = { ...consensus, snapshotEvery: 1 }
    const w0 = pool.track(kind.writer(pool.nets[0]!, sid(), c))
    await online(w0)
    const v = await kind.putAll(w0, 0, size, x10)
    await reachWithin(secs(5), v, w0)

    const readers = pool.nets.slice(1, 6).map((net) => pool.track(kind.reader(net, sid(), c)))
    expect(readers).toHaveLength(5)
    await within(secs(15), Promise.all(readers.map((r) => r.when.online())), 'readers online')
    await reachWithin(secs(10), v, ...readers)
    readers.forEach((r, i) => {
      check(r, size, x10, `reader ${i}`)
      expect(stats(r).snapshotsInstalled, `reader ${i} installed a snapshot`).toBeGreaterThan(0)
    })
  })

  it('incremental_after_convergence: 500 more items reach converged readers through the log', async () => {
    const { w0, r1, c } = await start()
    const r2 = late(c)
    await online(r2)
    const v1 = await kind.putAll(w0, 0, 500, (i) => i)
    await reachWithin(secs(5), v1, r1, r2)
    expect([k.size(r1), k.size(r2)]).toEqual([500, 500])

    let v2 = v1
    for (let i = 500; i < 1000; i++) v2 = await kind.put(w0, i, i)
    await reachWithin(secs(10), v2, r1, r2)
    for (const [h, label] of [
      [w0, 'w0'],
      [r1, 'r1'],
      [r2, 'r2'],
    ] as const)
      check(h, 1000, (i) => i, label)
    // Incremental: by the log, never by a new snapshot.
    expect(stats(r1).snapshotsInstalled).toBe(0)
    expect(stats(r2).snapshotsInstalled).toBe(0)
  })

  it('concurrent_reads_during_sync: reads never see a partial state while 10k items install', async () => {
    const size = 10_000
    const { w0, r1, c } = await start(1)
    const v = await kind.putAll(w0, 0, size, x10)
    await reachWithin(secs(10), v, r1)

    // Start reading at once (mosaik waits for r2 to be online first): the replica must go from empty
    // to complete in one step, and every read in between must be consistent.
    const r2 = late(c)
    const sizes = new Set<number>()
    let reads = 0
    const readLoop = async () => {
      while (true) {
        const n = k.size(r2)
        sizes.add(n)
        k.consistent(r2)
        reads++
        if (n === size) return
        await setImmediate()
      }
    }
    await within(ms(10_000 + 10 * size), readLoop(), 'reader sees every item')
    expect(reads).toBeGreaterThan(1)
    expect([...sizes].sort((a, b) => a - b)).toEqual([0, size])
    await reachWithin(T, v, r2)
    check(r2, size, x10, 'r2')
    expect(stats(r2).snapshotsInstalled).toBeGreaterThan(0)
  })

  // extend_during_snapshot_sync: [initial, extend, compaction interval]
  const extendDuring: [number, number, number][] = [
    [1000, 500, 100],
    [10_000, 5000, 100],
    [10_000, 5000, 1000],
  ]
  for (const [initial, extendSize, every] of extendDuring) {
    it(`extend_during_snapshot_sync: ${initial} items, then one extend of ${extendSize} while a late reader installs the snapshot (compaction every ${every})`, async () => {
      const total = initial + extendSize
      const { w0, r1, c } = await start(every)
      let v = await populate(w0, 0, initial, false)
      await reachWithin(ms(2000 + 10 * initial), v, w0, r1)
      expect(stats(w0).compactions).toBeGreaterThan(0)

      const r2 = late(c)
      v = await kind.putAll(w0, initial, total, x10)
      const t = ms(5000 + 10 * total)
      await reachWithin(t, v, w0, r1, r2)
      for (const [h, label] of [
        [w0, 'w0'],
        [r1, 'r1'],
        [r2, 'r2'],
      ] as const)
        check(h, total, x10, label)
      expect(stats(r2).snapshotsInstalled).toBeGreaterThan(0)
    })
  }

  it('clear_and_repopulate: 500, clear, 200 new; a late reader gets only the new ones', async () => {
    const { w0, r1, c } = await start(1)
    const v1 = await kind.putAll(w0, 0, 500, (i) => i)
    await reachWithin(secs(5), v1, r1)
    expect(k.size(r1)).toBe(500)
    const v2 = await kind.clear(w0)
    await reachWithin(secs(5), v2, r1)
    expect(k.size(r1)).toBe(0)
    const repopulated = (i: number) => i * 100 + 1
    const v3 = await kind.putAll(w0, 0, 200, repopulated)
    await reachWithin(secs(5), v3, r1)
    check(w0, 200, repopulated, 'w0')
    check(r1, 200, repopulated, 'r1')

    const r2 = late(c)
    await online(r2)
    await reachWithin(secs(5), v3, r2)
    check(r2, 200, repopulated, 'r2')
    expect(stats(r2).snapshotsInstalled).toBeGreaterThan(0)
  })

  it('large values: 100 values of 10 KB, compaction every 10', async () => {
    const count = 100
    const payload = (i: number) => String(i).padStart(10_000, '0')
    const { w0, r1, c } = await start(10)
    let v = w0.version
    for (let i = 0; i < count; i++) v = await kind.put(w0, i, payload(i))
    await reachWithin(secs(30), v, r1)
    check(r1, count, payload, 'r1')

    const r2 = late(c)
    await online(r2)
    await reachWithin(secs(30), v, r2)
    check(r2, count, payload, 'r2')
    expect(stats(r2).snapshotsInstalled).toBeGreaterThan(0)
  })

  it('recreate_reader: a reader closed and opened again on its node syncs 200 items cleanly', async () => {
    const c = { ...consensus, snapshotEvery: 1 }
    const w0 = pool.track(kind.writer(pool.nets[0]!, sid(), c))
    await online(w0)
    const v1 = await kind.putAll(w0, 0, 100, (i) => i)
    await reachWithin(secs(5), v1, w0)

    const first = pool.track(kind.reader(pool.nets[1]!, sid(), c))
    await online(first)
    await reachWithin(secs(5), v1, first)
    expect(k.size(first)).toBe(100)
    await first.close()

    const v2 = await kind.putAll(w0, 100, 200, (i) => i)
    await reachWithin(secs(5), v2, w0)
    const again = pool.track(kind.reader(pool.nets[1]!, sid(), c))
    await online(again)
    await reachWithin(secs(10), v2, again)
    check(again, 200, (i) => i, 'recreated reader')
    expect(stats(again).snapshotsInstalled).toBeGreaterThan(0)
  })
}

/**
 * mosaik's late-joiner check, shared by the per-type tests: a reader on node 2 comes online, reaches
 * `v` and (the log being compacted after every entry) installs a snapshot.
 */
export async function lateReader<R extends Handle>(
  open: (net: Network, id: string, consensus: ConsensusOptions) => R,
  pool: NodePool,
  c: ConsensusOptions,
  v: Version,
): Promise<R> {
  const r2 = pool.track(open(pool.nets[2]!, sid(), c))
  await online(r2)
  await reachWithin(secs(5), v, r2)
  expect(stats(r2).snapshotsInstalled, 'the late reader installed a snapshot').toBeGreaterThan(0)
  return r2
}

/**
 * Ports of mosaik's tests/collections/set.rs (18 tests; 17 ported). Skipped: `construct_from_macro`
 * (no `collection!` macro in TypeScript). mosaik's `insert`/`contains`/`remove`/`is_subset` are
 * `add`/`has`/`delete`/`isSubsetOf` here, after JavaScript's Set.
 */
import { describe, expect, it } from 'vitest'
import { collections, Digest, type Network } from '../../platform/node/index.ts'
import { consensus, factories, online, reach, reachWithin, sid, T, useNodes } from './support.ts'

const pool = useNodes(4)

const { writer, reader } = factories(pool, 'Set')
const sorted = (xs: Iterable<number>) => [...xs].sort((a, b) => a - b)

describe('collections::set', () => {
  it('smoke_no_catchup: every read and write operation, writer and reader', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)

    expect(r.isEmpty).toBe(true)
    expect(r.size).toBe(0)
    expect(r.has(1)).toBe(false)
    expect([...r]).toHaveLength(0)

    let v = await w.add(10)
    await reach(v, r)
    expect(r.size).toBe(1)
    expect(r.isEmpty).toBe(false)
    expect(r.has(10)).toBe(true)
    expect(r.has(20)).toBe(false)

    v = await w.add(20)
    await reach(v, r)
    expect(r.size).toBe(2)
    expect(r.has(20)).toBe(true)

    // a duplicate changes nothing
    v = await w.add(10)
    await reach(v, r)
    expect(r.size).toBe(2)

    v = await w.extend([30, 40, 50])
    await reach(v, r)
    expect(r.size).toBe(5)
    for (const x of [10, 30, 40, 50]) expect(r.has(x)).toBe(true)
    expect(r.has(99)).toBe(false)
    expect(sorted(r)).toEqual([10, 20, 30, 40, 50])
    expect(sorted(r.values())).toEqual([10, 20, 30, 40, 50])

    v = await w.delete(30)
    await reach(v, r)
    expect(r.size).toBe(4)
    expect(r.has(30)).toBe(false)

    v = await w.clear()
    await reach(v, r)
    expect(r.isEmpty).toBe(true)
    expect(r.size).toBe(0)
  })

  it('catchup_single_reader: a late reader gets 103 elements; a later remove replicates', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    await online(w)
    for (let i = 0; i < 100; i++) await w.add(i)
    let v = await w.extend([100, 101, 102])
    await reach(v, w)

    const r = reader(n1!)
    await online(r)
    await reachWithin(T, v, r)
    expect(r.size).toBe(103)
    for (let i = 0; i < 103; i++) expect(r.has(i)).toBe(true)

    v = await w.delete(50)
    await reach(v, r)
    expect(r.size).toBe(102)
    expect(r.has(50)).toBe(false)
  })

  it('multiple_readers: three readers converge on every change', async () => {
    const [n0, n1, n2, n3] = pool.nets
    const w = writer(n0!)
    const rs = [reader(n1!), reader(n2!), reader(n3!)]
    await online(w, ...rs)

    await reach(await w.extend([1, 2, 3, 4, 5]), ...rs)
    for (const r of rs) {
      expect(r.size).toBe(5)
      expect(r.has(1) && r.has(5)).toBe(true)
    }
    await reach(await w.add(6), ...rs)
    for (const r of rs) {
      expect(r.has(6)).toBe(true)
      expect(r.size).toBe(6)
    }
    await reach(await w.delete(1), ...rs)
    for (const r of rs) {
      expect(r.size).toBe(5)
      expect(r.has(1)).toBe(false)
    }
  })

  it('multiple_writers: two writers take turns; all three replicas agree', async () => {
    const [n0, n1, n2] = pool.nets
    const w0 = writer(n0!)
    const w1 = writer(n1!)
    const r = reader(n2!)
    await online(w0, w1, r)

    await reach(await w0.add(1), r)
    await reach(await w1.add(2), r)
    await reach(await w0.add(3), r)
    expect(sorted(r)).toEqual([1, 2, 3])

    const v = await w1.extend([4, 5])
    await reach(v, r, w0, w1)
    expect(r.size).toBe(5)
    expect(r.has(4) && r.has(5)).toBe(true)
    expect([...w0]).toEqual([...r])
    expect([...w1]).toEqual([...r])
  })

  it('catchup_multiple_readers: late readers at 51 and at 82 elements agree', async () => {
    const [n0, n1, n2] = pool.nets
    const w = writer(n0!)
    await online(w)
    for (let i = 0; i < 50; i++) await w.add(i)
    const mid = await w.add(999)
    await reach(mid, w)

    const r1 = reader(n1!)
    await online(r1)
    await reachWithin(T, mid, r1)
    expect(r1.size).toBe(51)
    expect(r1.has(999)).toBe(true)

    for (let i = 50; i < 80; i++) await w.add(i)
    const late = await w.add(1000)
    await reach(late, w)

    const r2 = reader(n2!)
    await online(r2)
    await reachWithin(T, late, r2, r1)
    expect(r1.size).toBe(82)
    expect(r2.size).toBe(82)
    expect(r1.has(1000) && r2.has(1000)).toBe(true)
    expect([...r1]).toEqual([...r2])
  })

  it('insert_duplicate: adding the same element again keeps one', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    for (let i = 0; i < 3; i++) {
      await reach(await w.add(1), r)
      expect(r.size).toBe(1)
    }
  })

  it('extend_with_duplicates: overlapping elements are kept once', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.extend([1, 2, 3]), r)
    expect(r.size).toBe(3)
    await reach(await w.extend([2, 3, 4, 5]), r)
    expect(r.size).toBe(5)
    expect(r.has(1) && r.has(4) && r.has(5)).toBe(true)
  })

  it('remove_nonexistent: removing a missing element is a committed no-op', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.extend([1, 2, 3]), r)
    await reach(await w.delete(999), r)
    expect(sorted(r)).toEqual([1, 2, 3])
  })

  it('clear_then_rebuild: after clear the set starts fresh', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.extend([1, 2, 3]), r)
    expect(r.size).toBe(3)
    await reach(await w.clear(), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.add(100), r)
    expect(r.size).toBe(1)
    expect(r.has(100)).toBe(true)
    expect(r.has(1)).toBe(false)
  })

  it('extend_empty: extending with nothing returns the current version and writes no entry', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    const v1 = await w.add(1)
    await reach(v1, r, w)
    expect(await w.extend([])).toBe(w.version)
    expect(r.size).toBe(1)
    const v2 = await w.add(2)
    expect(v2).toBe(v1 + 1)
    await reach(v2, r)
    expect(r.size).toBe(2)
  })

  it('subset_check: two readers of the same set are subsets of each other', async () => {
    const [n0, n1, n2] = pool.nets
    const w = writer(n0!)
    const r1 = reader(n1!)
    const r2 = reader(n2!)
    await online(w, r1, r2)
    await reach(await w.extend([1, 2, 3, 4, 5]), r1, r2)
    expect(r1.isSubsetOf(r2)).toBe(true)
    expect(r2.isSubsetOf(r1)).toBe(true)
    // Beyond mosaik: any iterable works as the other side.
    expect(r1.isSubsetOf([5, 4, 3, 2, 1, 0])).toBe(true)
    expect(r1.isSubsetOf([1, 2, 3])).toBe(false)
  })

  it('many_writers_many_readers: two writers and two readers agree on {2..6}', async () => {
    const [n0, n1, n2, n3] = pool.nets
    const w0 = writer(n0!)
    const w1 = writer(n1!)
    const r0 = reader(n2!)
    const r1 = reader(n3!)
    await online(w0, w1, r0, r1)

    await reach(await w0.extend([1, 2, 3]), r0, r1)
    await reach(await w1.extend([4, 5]), r0, r1)
    expect(r0.size).toBe(5)
    expect(r1.size).toBe(5)
    await reach(await w0.delete(1), r0, r1)
    const v = await w1.add(6)
    await reach(v, r0, r1, w0, w1)

    const expected = [...w0]
    expect([...w1]).toEqual(expected)
    expect([...r0]).toEqual(expected)
    expect([...r1]).toEqual(expected)
    expect(sorted(expected)).toEqual([2, 3, 4, 5, 6])
  })

  it('late_writer_catchup: a late writer sees the state, then contributes', async () => {
    const [n0, n1] = pool.nets
    const w0 = writer(n0!)
    await online(w0)
    const v = await w0.extend([1, 2, 3, 4, 5])
    await reach(v, w0)

    const w1 = writer(n1!)
    await online(w1)
    await reachWithin(T, v, w1)
    expect(w1.size).toBe(5)

    const v1 = await w1.add(99)
    await reach(v1, w0)
    expect(w0.size).toBe(6)
    expect(w0.has(99) && w1.has(99)).toBe(true)
  })

  it('writer_reads_own_writes: strings', async () => {
    const [n0] = pool.nets
    const w = writer<string>(n0!)
    await online(w)
    let v = await w.add('hello')
    await reach(v, w)
    expect(w.size).toBe(1)
    expect(w.has('hello')).toBe(true)
    expect(w.has('missing')).toBe(false)
    v = await w.add('foo')
    await reach(v, w)
    expect(new Set(w)).toEqual(new Set(['hello', 'foo']))
  })

  it('remove_all_elements: removing one by one empties the set; it can be refilled', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.extend([1, 2, 3]), r)
    expect(r.size).toBe(3)
    await reach(await w.delete(1), r)
    expect(r.size).toBe(2)
    await reach(await w.delete(2), r)
    expect(r.size).toBe(1)
    await reach(await w.delete(3), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.add(4), r)
    expect(r.size).toBe(1)
    expect(r.has(4)).toBe(true)
  })

  it('remove_many: several elements in one command, missing ones and an empty list', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.extend([1, 2, 3, 4, 5]), r)
    expect(r.size).toBe(5)

    await reach(await w.removeMany([2, 4, 5]), r)
    expect(sorted(r)).toEqual([1, 3])
    await reach(await w.removeMany([1, 99, 100]), r)
    expect(sorted(r)).toEqual([3])
    expect(await w.removeMany([])).toBe(w.version)
    expect(r.size).toBe(1)
    await reach(await w.add(10), r)
    expect(r.size).toBe(2)
  })

  it('construct_from_def: a shared definition opens the writer and the reader', async () => {
    const [n0, n1] = pool.nets
    const STORE = Digest.from(sid())
    const DEF = {
      writer: (net: Network) => pool.track(collections.Set.writer<string>(net, STORE, { consensus })),
      reader: (net: Network) => pool.track(collections.Set.reader<string>(net, STORE, { consensus })),
    } as const
    const w = DEF.writer(n0!)
    const r = DEF.reader(n1!)
    await online(w, r)
    const v = await w.add('hello')
    await reach(v, w)
    expect(w.size).toBe(1)
    await reach(v, r)
    expect(r.size).toBe(1)
    expect(r.has('hello')).toBe(true)
  })

  // Beyond mosaik: elements compare by canonical encoding, so structurally equal objects are one.
  it('object elements compare by their canonical encoding', async () => {
    const [n0, n1] = pool.nets
    const w = writer<{ x: number; tags: string[] }>(n0!)
    const r = reader<{ x: number; tags: string[] }>(n1!)
    await online(w, r)
    const v = await w.extend([
      { x: 1, tags: ['a'] },
      { tags: ['a'], x: 1 },
      { x: 1, tags: ['b'] },
    ])
    await reach(v, r)
    expect(r.size).toBe(2)
    expect(r.has({ tags: ['b'], x: 1 })).toBe(true)
  })
})

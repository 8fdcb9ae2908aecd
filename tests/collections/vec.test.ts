/**
 * Ports of mosaik's tests/collections/vec.rs (18 tests; 17 ported). Skipped: `construct_from_macro`
 * (no `collection!` macro in TypeScript). Where mosaik is unsafe, the fixed behaviour is asserted:
 * an insert past the end is refused with OutOfRangeError on every replica (mosaik's `im::Vector`
 * panics in `apply`, reference §5 item 12), and pops resolve with a Version only, as in mosaik.
 */
import { describe, expect, it } from 'vitest'
import { collections, Digest, type Network, OutOfRangeError } from '../../platform/node/index.ts'
import { consensus, factories, online, reach, reachWithin, sid, T, useNodes } from './support.ts'

const pool = useNodes(4)

const { writer, reader } = factories(pool, 'Vec')

describe('collections::vec', () => {
  it('smoke_no_catchup: every read and write operation, writer and reader', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)

    // empty state
    expect(r.isEmpty).toBe(true)
    expect(r.length).toBe(0)
    expect(r.size).toBe(0)
    expect(r.front()).toBeUndefined()
    expect(r.back()).toBeUndefined()
    expect(r.get(0)).toBeUndefined()
    expect(r.includes(0)).toBe(false)
    expect(r.indexOf(0)).toBe(-1)
    expect([...r]).toHaveLength(0)

    // push_back
    let v = await w.pushBack(10)
    await reach(v, r)
    expect(r.length).toBe(1)
    expect(r.isEmpty).toBe(false)
    expect(r.get(0)).toBe(10)
    expect(r.front()).toBe(10) // mosaik's front / head
    expect(r.back()).toBe(10) // mosaik's back / last
    expect(r.includes(10)).toBe(true)
    expect(r.indexOf(10)).toBe(0)

    // push_front: [5, 10]
    v = await w.pushFront(5)
    await reach(v, r)
    expect(r.length).toBe(2)
    expect([r.front(), r.back(), r.get(0), r.get(1)]).toEqual([5, 10, 5, 10])

    // extend: [5, 10, 20, 30, 40]
    v = await w.extend([20, 30, 40])
    await reach(v, r)
    expect(r.length).toBe(5)
    expect([r.get(2), r.get(3), r.get(4)]).toEqual([20, 30, 40])

    // insert at an index: [5, 10, 15, 20, 30, 40]
    v = await w.insert(2, 15)
    await reach(v, r)
    expect(r.length).toBe(6)
    expect([r.get(2), r.get(3)]).toEqual([15, 20])

    // contains and index_of
    expect(r.includes(15)).toBe(true)
    expect(r.includes(99)).toBe(false)
    expect(r.indexOf(15)).toBe(2)
    expect(r.indexOf(99)).toBe(-1)

    // iteration
    expect([...r]).toEqual([5, 10, 15, 20, 30, 40])
    expect(r.toArray()).toEqual([5, 10, 15, 20, 30, 40])

    // swap: [40, 10, 15, 20, 30, 5]
    v = await w.swap(0, 5)
    await reach(v, r)
    expect([r.front(), r.back()]).toEqual([40, 5])

    // pop_back: [40, 10, 15, 20, 30]
    v = await w.popBack()
    await reach(v, r)
    expect(r.length).toBe(5)
    expect(r.back()).toBe(30)

    // pop_front: [10, 15, 20, 30]
    v = await w.popFront()
    await reach(v, r)
    expect(r.length).toBe(4)
    expect(r.front()).toBe(10)

    // remove by index: [10, 20, 30]
    v = await w.remove(1)
    await reach(v, r)
    expect(r.length).toBe(3)
    expect(r.get(1)).toBe(20)

    // truncate: [10, 20]
    v = await w.truncate(2)
    await reach(v, r)
    expect(r.length).toBe(2)
    expect(r.get(2)).toBeUndefined()

    // clear
    v = await w.clear()
    await reach(v, r)
    expect(r.isEmpty).toBe(true)
    expect(r.length).toBe(0)
  })

  it('catchup_single_reader: a late reader gets 107 items; a later remove replicates', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    await online(w)
    for (let i = 0; i < 100; i++) await w.pushBack(i + 5)
    let v = await w.extend([10, 20, 30, 40, 50, 60, 70])
    await reach(v, w)

    const r = reader(n1!)
    await online(r)
    await reachWithin(T, v, r)
    expect(r.length).toBe(107)
    for (let i = 0; i < 100; i++) expect(r.get(i)).toBe(i + 5)
    for (let i = 0; i < 7; i++) expect(r.get(100 + i)).toBe((i + 1) * 10)

    v = await w.remove(50)
    await reach(v, r)
    expect(r.length).toBe(106)
    expect(r.get(50)).toBe(56)
  })

  it('multiple_readers: three readers follow extend, push_front and pop_back', async () => {
    const [n0, n1, n2, n3] = pool.nets
    const w = writer(n0!)
    const rs = [reader(n1!), reader(n2!), reader(n3!)]
    await online(w, ...rs)

    await reach(await w.extend([1, 2, 3, 4, 5]), ...rs)
    for (const r of rs) expect([...r]).toEqual([1, 2, 3, 4, 5])

    await reach(await w.pushFront(0), ...rs)
    for (const r of rs) {
      expect(r.front()).toBe(0)
      expect(r.length).toBe(6)
    }

    await reach(await w.popBack(), ...rs)
    for (const r of rs) {
      expect(r.length).toBe(5)
      expect(r.back()).toBe(4)
    }
  })

  it('multiple_writers: the order is decided by the log; all replicas agree', async () => {
    const [n0, n1, n2] = pool.nets
    const w0 = writer(n0!)
    const w1 = writer(n1!)
    const r = reader(n2!)
    await online(w0, w1, r)

    await reach(await w0.pushBack(100), r)
    await reach(await w1.pushBack(200), r)
    await reach(await w0.pushBack(300), r)
    expect(r.length).toBe(3)
    for (const x of [100, 200, 300]) expect(r.includes(x)).toBe(true)

    const v = await w1.extend([400, 500])
    await reach(v, r, w0, w1)
    expect(r.length).toBe(5)
    expect(r.includes(400)).toBe(true)
    expect(r.includes(500)).toBe(true)
    expect(w0.toArray()).toEqual(r.toArray())
    expect(w1.toArray()).toEqual(r.toArray())
  })

  it('catchup_multiple_readers: late readers at 51 and at 82 items agree', async () => {
    const [n0, n1, n2] = pool.nets
    const w = writer(n0!)
    await online(w)
    for (let i = 0; i < 50; i++) await w.pushBack(i)
    const mid = await w.pushBack(999)
    await reach(mid, w)

    const r1 = reader(n1!)
    await online(r1)
    await reachWithin(T, mid, r1)
    expect(r1.length).toBe(51)
    expect(r1.back()).toBe(999)

    for (let i = 50; i < 80; i++) await w.pushBack(i)
    const late = await w.pushBack(1000)
    await reach(late, w)

    const r2 = reader(n2!)
    await online(r2)
    await reachWithin(T, late, r2, r1)
    expect(r1.length).toBe(82)
    expect(r2.length).toBe(82)
    expect(r1.back()).toBe(1000)
    expect(r2.back()).toBe(1000)
    expect(r1.toArray()).toEqual(r2.toArray())
  })

  it('push_front_back_ordering: alternating pushes keep their order', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await w.pushBack(3) // [3]
    await w.pushFront(2) // [2, 3]
    await w.pushBack(4) // [2, 3, 4]
    await w.pushFront(1) // [1, 2, 3, 4]
    const v = await w.pushBack(5) // [1, 2, 3, 4, 5]
    await reach(v, r)
    expect([...r]).toEqual([1, 2, 3, 4, 5])
  })

  it('pop_until_empty: pops from both ends, then pops on empty are committed no-ops', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.extend([1, 2, 3, 4]), r)
    expect(r.length).toBe(4)

    // Pops resolve with the version only (as in mosaik): read the value before popping if needed.
    const popped = await w.popFront()
    expect(typeof popped).toBe('number')
    await reach(popped, r)
    expect(r.front()).toBe(2)
    await reach(await w.popBack(), r)
    expect(r.back()).toBe(3)

    await reach(await w.popFront(), r)
    await reach(await w.popBack(), r)
    expect(r.isEmpty).toBe(true)

    const before = w.version
    const v1 = await w.popBack()
    expect(v1).toBeGreaterThan(before)
    await reach(v1, r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.popFront(), r)
    expect(r.isEmpty).toBe(true)
  })

  it('swap_variations: normal, same index, and out of range (a committed no-op)', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.extend([10, 20, 30]), r)

    await reach(await w.swap(0, 2), r)
    expect([...r]).toEqual([30, 20, 10])
    await reach(await w.swap(1, 1), r)
    expect([...r]).toEqual([30, 20, 10])
    await reach(await w.swap(0, 999), r)
    expect([...r]).toEqual([30, 20, 10])
    // Beyond mosaik: negative and fractional indices are out of range too.
    await reach(await w.swap(-1, 0), r)
    await reach(await w.swap(0.5, 1), r)
    expect([...r]).toEqual([30, 20, 10])
  })

  it('insert_at_positions: into empty, at the front, at the end and in the middle', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.insert(0, 50), r)
    expect([...r]).toEqual([50])
    await reach(await w.insert(0, 10), r)
    expect([...r]).toEqual([10, 50])
    await reach(await w.insert(2, 90), r) // index == length: appends
    expect([...r]).toEqual([10, 50, 90])
    await reach(await w.insert(1, 30), r)
    expect([...r]).toEqual([10, 30, 50, 90])
  })

  // mosaik §5 item 12: `Vec::insert(index > len)` is not bounds-checked and panics while applying.
  it('insert past the end is refused with OutOfRangeError on every replica and changes nothing', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    const v0 = await w.extend([1, 2, 3])
    await reach(v0, r)

    const err = await w.insert(4, 99).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(OutOfRangeError)
    const oor = err as OutOfRangeError<number>
    expect(oor.value).toBe(99) // the value comes back
    expect(oor.version).toBeGreaterThan(v0) // the refusal was decided in the log, the same everywhere
    await reach(oor.version, r, w)
    expect([...w]).toEqual([1, 2, 3])
    expect([...r]).toEqual([1, 2, 3])
    await expect(w.insert(-1, 99)).rejects.toBeInstanceOf(OutOfRangeError)

    // The group keeps working after the refusal.
    await reach(await w.insert(3, 4), r)
    expect([...r]).toEqual([1, 2, 3, 4])
  })

  it('truncate_edge_cases: beyond the length and equal to it are no-ops; 3, then 0', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.extend([1, 2, 3, 4, 5]), r)
    await reach(await w.truncate(100), r)
    expect(r.length).toBe(5)
    await reach(await w.truncate(5), r)
    expect(r.length).toBe(5)
    await reach(await w.truncate(3), r)
    expect([...r]).toEqual([1, 2, 3])
    await reach(await w.truncate(0), r)
    expect(r.isEmpty).toBe(true)
  })

  it('clear_then_rebuild: after clear the vec starts fresh', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.extend([1, 2, 3]), r)
    expect(r.length).toBe(3)
    await reach(await w.clear(), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.pushBack(100), r)
    expect(r.length).toBe(1)
    expect(r.get(0)).toBe(100)
  })

  it('extend_empty: extending with nothing returns the current version and writes no entry', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    const v1 = await w.pushBack(1)
    await reach(v1, r, w)
    expect(await w.extend([])).toBe(w.version)
    expect(r.length).toBe(1)
    const v2 = await w.pushBack(2)
    expect(v2).toBe(v1 + 1)
    await reach(v2, r)
    expect(r.length).toBe(2)
  })

  it('remove_out_of_bounds: removing past the end is a committed no-op', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.extend([1, 2, 3]), r)
    await reach(await w.remove(100), r)
    expect([...r]).toEqual([1, 2, 3])
    await reach(await w.remove(-1), r)
    expect([...r]).toEqual([1, 2, 3])
  })

  it('many_writers_many_readers: two writers and two readers agree on [20..60]', async () => {
    const [n0, n1, n2, n3] = pool.nets
    const w0 = writer(n0!)
    const w1 = writer(n1!)
    const r0 = reader(n2!)
    const r1 = reader(n3!)
    await online(w0, w1, r0, r1)

    await reach(await w0.extend([10, 20, 30]), r0, r1)
    await reach(await w1.extend([40, 50]), r0, r1)
    expect(r0.length).toBe(5)
    expect(r1.length).toBe(5)
    await reach(await w0.popFront(), r0, r1)
    const v = await w1.pushBack(60)
    await reach(v, w0, w1, r0, r1)

    const expected = w0.toArray()
    expect(w1.toArray()).toEqual(expected)
    expect(r0.toArray()).toEqual(expected)
    expect(r1.toArray()).toEqual(expected)
    expect(expected).toEqual([20, 30, 40, 50, 60])
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
    expect(w1.length).toBe(5)

    const v1 = await w1.pushBack(99)
    await reach(v1, w0)
    expect(w0.length).toBe(6)
    expect(w0.includes(99)).toBe(true)
    expect(w1.includes(99)).toBe(true)
  })

  it('writer_reads_own_writes: strings', async () => {
    const [n0] = pool.nets
    const w = writer<string>(n0!)
    await online(w)
    let v = await w.pushBack('hello')
    await reach(v, w)
    expect(w.length).toBe(1)
    expect(w.get(0)).toBe('hello')
    expect(w.includes('hello')).toBe(true)
    expect(w.indexOf('hello')).toBe(0)
    expect(w.front()).toBe('hello')
    expect(w.back()).toBe('hello')
    v = await w.pushBack('world')
    await reach(v, w)
    expect([...w]).toEqual(['hello', 'world'])
  })

  it('construct_from_def: a shared definition opens the writer and the reader', async () => {
    const [n0, n1] = pool.nets
    const STORE = Digest.from(sid())
    const DEF = {
      writer: (net: Network) => pool.track(collections.Vec.writer<string>(net, STORE, { consensus })),
      reader: (net: Network) => pool.track(collections.Vec.reader<string>(net, STORE, { consensus })),
    } as const
    const w = DEF.writer(n0!)
    const r = DEF.reader(n1!)
    await online(w, r)
    const v = await w.pushBack('hello')
    await reach(v, w)
    expect(w.length).toBe(1)
    await reach(v, r)
    expect(r.length).toBe(1)
    expect(r.get(0)).toBe('hello')
  })
})

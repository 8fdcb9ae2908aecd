/**
 * Ports of mosaik's tests/collections/depq.rs (39 tests; 38 ported). Skipped: `construct_from_macro`
 * (no `collection!` macro in TypeScript); `bounded_collection_macro` keeps its behaviour (a capacity-5
 * queue evicts its lowest entry) without the macro. mosaik's `BoundedPriorityQueue<P, K, V, CAP>` is
 * the `capacity` option; `iter_asc`/`iter_desc` are `ascending()`/`descending()`; ranges are
 * `{ gte, gt, lte, lt }` objects. Where mosaik leaves a choice open (which entry of a bucket `get_min`
 * returns, which one eviction drops), the documented TypeScript choice is asserted.
 */
import { describe, expect, it } from 'vitest'
import { collections, Digest, type Network } from '../../platform/node/index.ts'
import { consensus, factories, groupOf, online, reach, reachWithin, sid, T, useNodes } from './support.ts'

const pool = useNodes(4)

const { writer, reader } = factories(pool, 'PriorityQueue')
const entry = (priority: number, key: number, value: number) => ({ priority, key, value })
const triples = (it: Iterable<{ priority: number; key: unknown; value: unknown }>) =>
  [...it].map((e) => [e.priority, e.key, e.value])
const priorities = (it: Iterable<{ priority: number }>) => [...it].map((e) => e.priority)

describe('collections::depq', () => {
  it('smoke_no_catchup: every read and write operation, writer and reader', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)

    expect(r.isEmpty).toBe(true)
    expect(r.size).toBe(0)
    expect(r.get(1)).toBeUndefined()
    expect(r.getPriority(1)).toBeUndefined()
    expect(r.has(1)).toBe(false)
    expect(r.getMin()).toBeUndefined()
    expect(r.getMax()).toBeUndefined()
    expect(r.minPriority).toBeUndefined()
    expect(r.maxPriority).toBeUndefined()
    expect([...r]).toHaveLength(0)
    expect(r.capacity).toBe(Number.POSITIVE_INFINITY)

    let v = await w.insert(10, 1, 100)
    await reach(v, r)
    expect(r.size).toBe(1)
    expect(r.isEmpty).toBe(false)
    expect(r.get(1)).toBe(100)
    expect(r.getPriority(1)).toBe(10)
    expect(r.has(1)).toBe(true)
    expect(r.has(2)).toBe(false)
    expect(r.getMin()).toEqual(entry(10, 1, 100))
    expect(r.getMax()).toEqual(entry(10, 1, 100))
    expect([r.minPriority, r.maxPriority]).toEqual([10, 10])

    await reach(await w.insert(5, 2, 200), r)
    v = await w.insert(20, 3, 300)
    await reach(v, r)
    expect(r.size).toBe(3)
    expect(r.getMin()).toEqual(entry(5, 2, 200))
    expect(r.getMax()).toEqual(entry(20, 3, 300))
    expect([r.minPriority, r.maxPriority]).toEqual([5, 20])

    // an insert on an existing key replaces its priority and value
    v = await w.insert(15, 1, 150)
    await reach(v, r)
    expect(r.size).toBe(3)
    expect(r.get(1)).toBe(150)
    expect(r.getPriority(1)).toBe(15)

    v = await w.extend([
      [1, 4, 400],
      [30, 5, 500],
      [8, 6, 600],
    ])
    await reach(v, r)
    expect(r.size).toBe(6)
    expect([r.get(4), r.getPriority(4), r.get(5), r.getPriority(5)]).toEqual([400, 1, 500, 30])
    expect([r.minPriority, r.maxPriority]).toEqual([1, 30])

    const asc = priorities(r.ascending())
    expect(asc).toEqual([...asc].sort((a, b) => a - b))
    expect(asc).toHaveLength(6)
    const desc = priorities(r.descending())
    expect(desc).toEqual([...desc].sort((a, b) => b - a))
    expect(desc).toHaveLength(6)
    expect(triples(r)).toEqual(triples(r.ascending()))

    expect(r.has(4)).toBe(true)
    expect(r.has(99)).toBe(false)

    v = await w.remove(4)
    await reach(v, r)
    expect(r.size).toBe(5)
    expect(r.get(4)).toBeUndefined()
    expect(r.has(4)).toBe(false)
    expect(r.minPriority).toBe(5)

    v = await w.clear()
    await reach(v, r)
    expect(r.isEmpty).toBe(true)
    expect(r.size).toBe(0)
    expect(r.getMin()).toBeUndefined()
    expect(r.getMax()).toBeUndefined()
  })

  it('catchup_single_reader: 100 + 3 entries; min 0, max 1020; a later remove replicates', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    await online(w)
    for (let i = 0; i < 100; i++) await w.insert(i * 10, i, i * 100)
    let v = await w.extend([
      [1000, 100, 10000],
      [1010, 101, 10100],
      [1020, 102, 10200],
    ])
    await reach(v, w)

    const r = reader(n1!)
    await online(r)
    await reachWithin(T, v, r)
    expect(r.size).toBe(103)
    for (let i = 0; i < 100; i++) {
      expect(r.get(i)).toBe(i * 100)
      expect(r.getPriority(i)).toBe(i * 10)
    }
    expect([r.get(100), r.get(101), r.get(102)]).toEqual([10000, 10100, 10200])
    expect(r.minPriority).toBe(0)
    expect(r.maxPriority).toBe(1020)

    v = await w.remove(50)
    await reach(v, r)
    expect(r.size).toBe(102)
    expect(r.get(50)).toBeUndefined()
  })

  it('multiple_readers: three readers converge on every change', async () => {
    const [n0, n1, n2, n3] = pool.nets
    const w = writer(n0!)
    const rs = [reader(n1!), reader(n2!), reader(n3!)]
    await online(w, ...rs)
    await reach(
      await w.extend([
        [10, 1, 100],
        [20, 2, 200],
        [30, 3, 300],
        [40, 4, 400],
        [50, 5, 500],
      ]),
      ...rs,
    )
    for (const r of rs) {
      expect(r.size).toBe(5)
      expect([r.minPriority, r.maxPriority]).toEqual([10, 50])
      expect([r.get(1), r.get(5)]).toEqual([100, 500])
    }
    await reach(await w.insert(60, 6, 600), ...rs)
    for (const r of rs) {
      expect(r.get(6)).toBe(600)
      expect(r.size).toBe(6)
      expect(r.maxPriority).toBe(60)
    }
    await reach(await w.remove(1), ...rs)
    for (const r of rs) {
      expect(r.size).toBe(5)
      expect(r.get(1)).toBeUndefined()
      expect(r.minPriority).toBe(20)
    }
  })

  it('multiple_writers: two writers take turns; all three replicas agree', async () => {
    const [n0, n1, n2] = pool.nets
    const w0 = writer(n0!)
    const w1 = writer(n1!)
    const r = reader(n2!)
    await online(w0, w1, r)
    await reach(await w0.insert(10, 1, 100), r)
    await reach(await w1.insert(20, 2, 200), r)
    await reach(await w0.insert(30, 3, 300), r)
    expect(r.size).toBe(3)
    expect([r.get(1), r.get(2), r.get(3)]).toEqual([100, 200, 300])
    const v = await w1.extend([
      [40, 4, 400],
      [50, 5, 500],
    ])
    await reach(v, r, w0, w1)
    expect(r.size).toBe(5)
    expect([r.get(4), r.get(5)]).toEqual([400, 500])
    expect(triples(w0.ascending())).toEqual(triples(r.ascending()))
    expect(triples(w1.ascending())).toEqual(triples(r.ascending()))
  })

  it('catchup_multiple_readers: late readers at 51 and at 82 entries agree', async () => {
    const [n0, n1, n2] = pool.nets
    const w = writer(n0!)
    await online(w)
    for (let i = 0; i < 50; i++) await w.insert(i * 10, i, i * 100)
    const mid = await w.insert(9990, 999, 99_900)
    await reach(mid, w)

    const r1 = reader(n1!)
    await online(r1)
    await reachWithin(T, mid, r1)
    expect(r1.size).toBe(51)
    expect(r1.get(999)).toBe(99_900)

    for (let i = 50; i < 80; i++) await w.insert(i * 10, i, i * 100)
    const late = await w.insert(10000, 1000, 100_000)
    await reach(late, w)

    const r2 = reader(n2!)
    await online(r2)
    await reachWithin(T, late, r2, r1)
    expect(r1.size).toBe(82)
    expect(r2.size).toBe(82)
    expect([r1.get(1000), r2.get(1000)]).toEqual([100_000, 100_000])
    expect(triples(r1.ascending())).toEqual(triples(r2.ascending()))
  })

  it('insert_overwrite: an upsert moves the key and drops its old bucket', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.insert(10, 1, 100), r)
    expect([r.get(1), r.getPriority(1)]).toEqual([100, 10])
    await reach(await w.insert(99, 1, 999), r)
    expect([r.get(1), r.getPriority(1)]).toEqual([999, 99])
    expect(r.size).toBe(1)
    expect([r.minPriority, r.maxPriority]).toEqual([99, 99])
  })

  it('update_priority: moves a key and keeps its value; a missing key is a no-op', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [10, 1, 100],
        [20, 2, 200],
        [30, 3, 300],
      ]),
      r,
    )
    await reach(await w.updatePriority(1, 50), r)
    expect([r.get(1), r.getPriority(1)]).toEqual([100, 50])
    expect(r.size).toBe(3)
    expect([r.minPriority, r.maxPriority]).toEqual([20, 50])
    await reach(await w.updatePriority(999, 1), r)
    expect(r.size).toBe(3)
    expect(r.get(999)).toBeUndefined()
  })

  it('update_value: replaces a value and keeps its priority; a missing key is a no-op', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [10, 1, 100],
        [20, 2, 200],
        [30, 3, 300],
      ]),
      r,
    )
    await reach(await w.updateValue(2, 999), r)
    expect([r.get(2), r.getPriority(2)]).toEqual([999, 20])
    expect(r.size).toBe(3)
    await reach(await w.updateValue(999, 42), r)
    expect(r.size).toBe(3)
    expect(r.get(999)).toBeUndefined()
  })

  it('remove_range: ..25, 45.., then 20..=40, then ..', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    const five: [number, number, number][] = [
      [10, 1, 100],
      [20, 2, 200],
      [30, 3, 300],
      [40, 4, 400],
      [50, 5, 500],
    ]
    await reach(await w.extend(five), r)
    expect(r.size).toBe(5)

    await reach(await w.removeRange({ lt: 25 }), r) // ..25
    expect(r.size).toBe(3)
    expect([r.get(1), r.get(2), r.get(3)]).toEqual([undefined, undefined, 300])
    expect(r.minPriority).toBe(30)

    await reach(await w.removeRange({ gte: 45 }), r) // 45..
    expect(r.size).toBe(2)
    expect(r.get(5)).toBeUndefined()
    expect(r.maxPriority).toBe(40)

    await reach(await w.clear(), r)
    await reach(await w.extend(five), r)
    await reach(await w.removeRange({ gte: 20, lte: 40 }), r) // 20..=40
    expect(r.size).toBe(2)
    expect([r.get(1), r.get(5)]).toEqual([100, 500])
    expect([r.get(2), r.get(3), r.get(4)]).toEqual([undefined, undefined, undefined])

    await reach(await w.removeRange({}), r) // ..
    expect(r.isEmpty).toBe(true)

    // Beyond mosaik's cases: exclusive lower bound and inclusive upper bound.
    await reach(await w.extend(five), r)
    await reach(await w.removeRange({ gt: 20, lte: 40 }), r) // (20, 40]
    expect(priorities(r)).toEqual([10, 20, 50])
  })

  it('remove_nonexistent: removing a missing key is a committed no-op', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [10, 1, 100],
        [20, 2, 200],
        [30, 3, 300],
      ]),
      r,
    )
    await reach(await w.remove(999), r)
    expect(r.size).toBe(3)
    expect([r.get(1), r.get(2), r.get(3)]).toEqual([100, 200, 300])
  })

  it('clear_then_rebuild: after clear the queue starts fresh', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [10, 1, 100],
        [20, 2, 200],
        [30, 3, 300],
      ]),
      r,
    )
    expect(r.size).toBe(3)
    await reach(await w.clear(), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.insert(99, 100, 1000), r)
    expect(r.size).toBe(1)
    expect([r.get(100), r.getPriority(100)]).toEqual([1000, 99])
    expect(r.get(1)).toBeUndefined()
  })

  it('extend_empty: extending with nothing returns the current version and writes no entry', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    const v1 = await w.insert(10, 1, 100)
    await reach(v1, r, w)
    expect(await w.extend([])).toBe(w.version)
    expect(r.size).toBe(1)
    const v2 = await w.insert(20, 2, 200)
    expect(v2).toBe(v1 + 1)
    await reach(v2, r)
    expect(r.size).toBe(2)
  })

  it('extend_overwrite: extend replaces priority and value of overlapping keys', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [10, 1, 100],
        [20, 2, 200],
        [30, 3, 300],
      ]),
      r,
    )
    expect(r.size).toBe(3)
    await reach(
      await w.extend([
        [99, 2, 999],
        [88, 3, 888],
        [40, 4, 400],
      ]),
      r,
    )
    expect(r.size).toBe(4)
    expect([r.get(1), r.getPriority(1)]).toEqual([100, 10])
    expect([r.get(2), r.getPriority(2)]).toEqual([999, 99])
    expect([r.get(3), r.getPriority(3)]).toEqual([888, 88])
    expect(r.get(4)).toBe(400)
  })

  it('same_priority_bucket: equal priorities share a bucket until its last key leaves', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [10, 1, 100],
        [10, 2, 200],
        [10, 3, 300],
        [20, 4, 400],
      ]),
      r,
    )
    expect(r.size).toBe(4)
    expect([r.minPriority, r.maxPriority]).toEqual([10, 20])
    // mosaik returns one of keys 1, 2, 3; this port returns the first inserted among equals.
    expect(r.getMin()).toEqual(entry(10, 1, 100))
    expect(r.getMax()).toEqual(entry(20, 4, 400))
    await reach(await w.remove(2), r)
    expect(r.size).toBe(3)
    expect(r.minPriority).toBe(10)
    await reach(await w.remove(1), r)
    await reach(await w.remove(3), r)
    expect(r.size).toBe(1)
    expect(r.minPriority).toBe(20)
  })

  it('many_writers_many_readers: ascending order is the same everywhere', async () => {
    const [n0, n1, n2, n3] = pool.nets
    const w0 = writer(n0!)
    const w1 = writer(n1!)
    const r0 = reader(n2!)
    const r1 = reader(n3!)
    await online(w0, w1, r0, r1)
    await reach(
      await w0.extend([
        [10, 1, 100],
        [20, 2, 200],
        [30, 3, 300],
      ]),
      r0,
      r1,
    )
    await reach(
      await w1.extend([
        [40, 4, 400],
        [50, 5, 500],
      ]),
      r0,
      r1,
    )
    expect(r0.size).toBe(5)
    expect(r1.size).toBe(5)
    await reach(await w0.remove(1), r0, r1)
    const v = await w1.insert(60, 6, 600)
    await reach(v, w1, w0, r0, r1)
    const expected = triples(w0.ascending())
    expect(triples(w1.ascending())).toEqual(expected)
    expect(triples(r0.ascending())).toEqual(expected)
    expect(triples(r1.ascending())).toEqual(expected)
    expect(expected.map(([, k]) => k)).toEqual([2, 3, 4, 5, 6])
  })

  it('late_writer_catchup: a late writer sees the state, then contributes', async () => {
    const [n0, n1] = pool.nets
    const w0 = writer(n0!)
    await online(w0)
    const v = await w0.extend([
      [10, 1, 100],
      [20, 2, 200],
      [30, 3, 300],
      [40, 4, 400],
      [50, 5, 500],
    ])
    await reach(v, w0)
    const w1 = writer(n1!)
    await online(w1)
    await reachWithin(T, v, w1)
    expect(w1.size).toBe(5)
    const v1 = await w1.insert(99, 99, 990)
    await reach(v1, w0, w1)
    expect(w0.size).toBe(6)
    expect(w0.get(99)).toBe(990)
    expect(w1.get(99)).toBe(990)
  })

  it('writer_reads_own_writes: string keys and values', async () => {
    const [n0] = pool.nets
    const w = writer<string, string>(n0!)
    await online(w)
    await reach(await w.insert(10, 'hello', 'world'), w)
    expect(w.size).toBe(1)
    expect(w.get('hello')).toBe('world')
    expect(w.getPriority('hello')).toBe(10)
    expect(w.has('hello')).toBe(true)
    expect(w.has('missing')).toBe(false)
    await reach(await w.insert(20, 'foo', 'bar'), w)
    expect(triples(w.ascending())).toEqual([
      [10, 'hello', 'world'],
      [20, 'foo', 'bar'],
    ])
  })

  it('remove_all_entries: removing one by one empties the queue; it can be refilled', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [10, 1, 100],
        [20, 2, 200],
        [30, 3, 300],
      ]),
      r,
    )
    expect(r.size).toBe(3)
    await reach(await w.remove(1), r)
    expect(r.size).toBe(2)
    await reach(await w.remove(2), r)
    expect(r.size).toBe(1)
    await reach(await w.remove(3), r)
    expect(r.isEmpty).toBe(true)
    expect(r.getMin()).toBeUndefined()
    expect(r.getMax()).toBeUndefined()
    await reach(await w.insert(42, 4, 400), r)
    expect(r.size).toBe(1)
    expect([r.get(4), r.getPriority(4)]).toEqual([400, 42])
  })

  it('remove_keys: several keys in one command, missing ones and an empty list', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [10, 1, 100],
        [20, 2, 200],
        [30, 3, 300],
        [40, 4, 400],
        [50, 5, 500],
      ]),
      r,
    )
    expect(r.size).toBe(5)
    await reach(await w.removeKeys([2, 4, 5]), r)
    expect(r.size).toBe(2)
    expect([r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)]).toEqual([
      100,
      undefined,
      300,
      undefined,
      undefined,
    ])
    expect([r.minPriority, r.maxPriority]).toEqual([10, 30])
    await reach(await w.removeKeys([1, 99, 100]), r)
    expect(r.size).toBe(1)
    expect(r.get(1)).toBeUndefined()
    expect(r.get(3)).toBe(300)
    expect(await w.removeKeys([])).toBe(w.version)
    expect(r.size).toBe(1)
    await reach(await w.insert(60, 10, 1000), r)
    expect(r.size).toBe(2)
  })

  it('remove_range_empty: a range removal on an empty queue is a committed no-op', async () => {
    const [n0] = pool.nets
    const w = writer(n0!)
    await online(w)
    await reach(await w.removeRange({ lt: 100 }), w)
    expect(w.isEmpty).toBe(true)
    await reach(await w.insert(10, 1, 100), w)
    expect(w.size).toBe(1)
  })

  it('iter_ordering_after_mutations: ascending and descending after remove and update_priority', async () => {
    const [n0] = pool.nets
    const w = writer(n0!)
    await online(w)
    await reach(
      await w.extend([
        [50, 1, 100],
        [10, 2, 200],
        [30, 3, 300],
        [20, 4, 400],
        [40, 5, 500],
      ]),
      w,
    )
    expect(priorities(w.ascending())).toEqual([10, 20, 30, 40, 50])
    expect(priorities(w.descending())).toEqual([50, 40, 30, 20, 10])
    await reach(await w.remove(3), w) // priority 30
    expect(priorities(w.ascending())).toEqual([10, 20, 40, 50])
    expect(priorities(w.descending())).toEqual([50, 40, 20, 10])
    await reach(await w.updatePriority(2, 45), w) // 10 -> 45
    expect(priorities(w.ascending())).toEqual([20, 40, 45, 50])
  })

  it('compare_exchange_value_success: keeps the priority', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.insert(10, 1, 100), r)
    expect([r.get(1), r.getPriority(1)]).toEqual([100, 10])
    await reach(await w.compareExchangeValue(1, 100, 200), r)
    expect([r.get(1), r.getPriority(1)]).toEqual([200, 10])
    expect(r.size).toBe(1)
  })

  it('compare_exchange_value_remove: a new value of undefined removes the entry', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [10, 1, 100],
        [20, 2, 200],
      ]),
      r,
    )
    expect(r.size).toBe(2)
    await reach(await w.compareExchangeValue(1, 100, undefined), r)
    expect(r.get(1)).toBeUndefined()
    expect(r.has(1)).toBe(false)
    expect(r.size).toBe(1)
    expect(r.get(2)).toBe(200)
  })

  it('compare_exchange_value_mismatch: a wrong expectation changes nothing', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.insert(10, 1, 100), r)
    await reach(await w.compareExchangeValue(1, 999, 200), r)
    expect([r.get(1), r.getPriority(1)]).toEqual([100, 10])
    await reach(await w.compareExchangeValue(1, 999, undefined), r)
    expect(r.get(1)).toBe(100)
    expect(r.size).toBe(1)
  })

  it('compare_exchange_value_missing_key: a committed no-op', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.compareExchangeValue(1, 100, 200), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.insert(10, 1, 100), r)
    await reach(await w.compareExchangeValue(99, 100, 200), r)
    expect(r.size).toBe(1)
    expect(r.get(99)).toBeUndefined()
  })

  it('compare_exchange_value_replicates_to_readers', async () => {
    const [n0, n1, n2] = pool.nets
    const w = writer(n0!)
    const r1 = reader(n1!)
    const r2 = reader(n2!)
    await online(w, r1, r2)
    await reach(
      await w.extend([
        [10, 1, 100],
        [20, 2, 200],
      ]),
      r1,
      r2,
    )
    await reach(await w.compareExchangeValue(1, 100, 150), r1, r2)
    for (const r of [r1, r2]) expect([r.get(1), r.getPriority(1)]).toEqual([150, 10])
  })

  it('compare_exchange_value_chained: 100 -> 200 -> 300 -> removed', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.insert(10, 1, 100), r)
    await reach(await w.compareExchangeValue(1, 100, 200), r)
    expect(r.get(1)).toBe(200)
    await reach(await w.compareExchangeValue(1, 200, 300), r)
    expect(r.get(1)).toBe(300)
    await reach(await w.compareExchangeValue(1, 300, undefined), r)
    expect(r.get(1)).toBeUndefined()
    expect(r.isEmpty).toBe(true)
  })

  it('compare_exchange_value_preserves_priority: other entries and the order are untouched', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [5, 1, 100],
        [10, 2, 200],
        [20, 3, 300],
      ]),
      r,
    )
    await reach(await w.compareExchangeValue(2, 200, 250), r)
    expect([r.get(2), r.getPriority(2)]).toEqual([250, 10])
    expect([r.minPriority, r.maxPriority]).toEqual([5, 20])
    expect([r.get(1), r.get(3)]).toEqual([100, 300])
    expect(priorities(r.ascending())).toEqual([5, 10, 20])
  })

  it('compare_exchange_value_mixed_with_mutations: with update_value, update_priority and insert', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.insert(10, 1, 100), r)
    await reach(await w.compareExchangeValue(1, 100, 200), r)
    expect(r.get(1)).toBe(200)
    await reach(await w.updateValue(1, 300), r)
    expect(r.get(1)).toBe(300)
    await reach(await w.compareExchangeValue(1, 300, 400), r)
    expect(r.get(1)).toBe(400)
    await reach(await w.updatePriority(1, 50), r)
    expect(r.getPriority(1)).toBe(50)
    await reach(await w.compareExchangeValue(1, 400, 500), r)
    expect([r.get(1), r.getPriority(1)]).toEqual([500, 50])
    await reach(await w.compareExchangeValue(1, 500, undefined), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.insert(1, 1, 10), r)
    expect(r.get(1)).toBe(10)
    expect(r.size).toBe(1)
  })

  it('compare_exchange_value_catchup: a late reader sees the swapped values', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    await online(w)
    await reach(await w.insert(10, 1, 100), w)
    await reach(await w.compareExchangeValue(1, 100, 200), w)
    await reach(await w.insert(20, 2, 300), w)
    const v = await w.compareExchangeValue(2, 300, 400)
    await reach(v, w)
    const r = reader(n1!)
    await online(r)
    await reachWithin(T, v, r)
    expect([r.get(1), r.getPriority(1), r.get(2), r.getPriority(2)]).toEqual([200, 10, 400, 20])
    expect(r.size).toBe(2)
  })

  it('compare_exchange_value_remove_affects_minmax', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [5, 1, 100],
        [10, 2, 200],
        [20, 3, 300],
      ]),
      r,
    )
    expect([r.minPriority, r.maxPriority]).toEqual([5, 20])
    await reach(await w.compareExchangeValue(1, 100, undefined), r)
    expect([r.minPriority, r.maxPriority]).toEqual([10, 20])
    expect(r.size).toBe(2)
    await reach(await w.compareExchangeValue(3, 300, undefined), r)
    expect([r.minPriority, r.maxPriority]).toEqual([10, 10])
    expect(r.size).toBe(1)
  })

  it('construct_from_def: a shared definition opens the writer and the reader', async () => {
    const [n0, n1] = pool.nets
    const STORE = Digest.from(sid())
    const DEF = {
      writer: (net: Network) =>
        pool.track(collections.PriorityQueue.writer<number, string, string>(net, STORE, { consensus })),
      reader: (net: Network) =>
        pool.track(collections.PriorityQueue.reader<number, string, string>(net, STORE, { consensus })),
    } as const
    const w = DEF.writer(n0!)
    const r = DEF.reader(n1!)
    await online(w, r)
    const v = await w.insert(15, 'hello', 'world')
    await reach(v, w)
    expect(w.size).toBe(1)
    await reach(v, r)
    expect(r.size).toBe(1)
    expect(r.get('hello')).toBe('world')
    expect(r.getPriority('hello')).toBe(15)
  })

  it('bounded_evicts_lowest_priority: capacity 3, a fourth entry evicts priority 10', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!, sid(), 3)
    const r = reader(n1!, sid(), 3)
    expect(r.capacity).toBe(3)
    await online(w, r)
    await reach(await w.insert(10, 1, 100), r)
    await reach(await w.insert(20, 2, 200), r)
    await reach(await w.insert(30, 3, 300), r)
    expect(r.size).toBe(3)
    await reach(await w.insert(40, 4, 400), r)
    expect(r.size).toBe(3)
    expect([r.has(1), r.has(2), r.has(3), r.has(4)]).toEqual([false, true, true, true])
    expect([r.minPriority, r.maxPriority]).toEqual([20, 40])
  })

  it('bounded_insert_lower_than_all: the new entry itself is evicted', async () => {
    const [n0] = pool.nets
    const w = writer(n0!, sid(), 2)
    await online(w)
    await w.insert(10, 1, 100)
    await w.insert(20, 2, 200)
    expect(w.size).toBe(2)
    await w.insert(5, 3, 300)
    expect(w.size).toBe(2)
    expect([w.has(3), w.has(1), w.has(2)]).toEqual([false, true, true])
  })

  it('bounded_extend_evicts_multiple: capacity 3 keeps the three highest of five', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!, sid(), 3)
    const r = reader(n1!, sid(), 3)
    await online(w, r)
    await w.insert(1, 1, 100)
    await w.insert(2, 2, 200)
    await reach(
      await w.extend([
        [3, 3, 300],
        [4, 4, 400],
        [5, 5, 500],
      ]),
      r,
    )
    expect(r.size).toBe(3)
    expect([...r].map((e) => e.key)).toEqual([3, 4, 5])
  })

  it('bounded_update_priority_no_eviction: an in-place priority change evicts nothing', async () => {
    const [n0] = pool.nets
    const w = writer(n0!, sid(), 3)
    await online(w)
    await w.insert(10, 1, 100)
    await w.insert(20, 2, 200)
    await w.insert(30, 3, 300)
    expect(w.size).toBe(3)
    await w.updatePriority(1, 50)
    expect(w.size).toBe(3)
    expect(w.has(1)).toBe(true)
    expect(w.getPriority(1)).toBe(50)
    expect([w.minPriority, w.maxPriority]).toEqual([20, 50])
  })

  it('bounded_upsert_no_eviction: re-inserting a key at capacity evicts nothing', async () => {
    const [n0] = pool.nets
    const w = writer(n0!, sid(), 2)
    await online(w)
    await w.insert(10, 1, 100)
    await w.insert(20, 2, 200)
    expect(w.size).toBe(2)
    await w.insert(5, 1, 150)
    expect(w.size).toBe(2)
    expect([w.get(1), w.getPriority(1), w.has(2)]).toEqual([150, 5, true])
  })

  it('bounded_collection_macro (without the macro): capacity 5 evicts k0 for k5', async () => {
    const [n0, n1] = pool.nets
    const w = writer<string, string>(n0!, sid(), 5)
    const r = reader<string, string>(n1!, sid(), 5)
    await online(w, r)
    for (let i = 0; i < 5; i++) await w.insert(i, `k${i}`, `v${i}`)
    await reach(await w.insert(10, 'k5', 'v5'), r)
    expect(r.size).toBe(5)
    expect(r.has('k0')).toBe(false)
    expect(r.has('k5')).toBe(true)
  })

  // Beyond mosaik: the capacity is part of the group id, so queues that would evict differently never
  // share a group.
  it('queues of different capacities on one store id are different groups', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!, sid(), 3)
    const r = reader(n1!, sid(), 4)
    await online(w)
    await w.insert(1, 1, 1)
    await r.when.reaches(0) // joined
    expect(groupOf(w).id.equals(groupOf(r).id)).toBe(false)
  })
})

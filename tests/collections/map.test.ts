/**
 * Ports of mosaik's tests/collections/map.rs (29 tests; 28 ported). Skipped: `construct_from_macro`
 * (the `collection!` macro has no TypeScript counterpart). `construct_from_def` becomes a shared
 * definition object built on a `Digest` store id. mosaik's late-joining nodes become late-joining
 * handles on nodes that are already up: from the group's point of view it is the same (a new member
 * joins behind the log).
 */
import { describe, expect, it } from 'vitest'
import { collections, Digest, type Network } from '../../platform/node/index.ts'
import { ms, within } from '../support/time.ts'
import { consensus, factories, online, reach, reachWithin, S, sid, T, useNodes } from './support.ts'

const pool = useNodes(4)

const { writer, reader } = factories(pool, 'Map')
const sorted = (xs: Iterable<number>) => [...xs].sort((a, b) => a - b)

describe('collections::map', () => {
  it('smoke_no_catchup: every read and write operation, writer and reader', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)

    // empty state
    expect(r.isEmpty).toBe(true)
    expect(r.size).toBe(0)
    expect(r.get(1)).toBeUndefined()
    expect(r.has(1)).toBe(false)
    expect([...r]).toHaveLength(0)
    expect([...r.keys()]).toHaveLength(0)
    expect([...r.values()]).toHaveLength(0)

    // insert
    let v = await w.set(1, 10)
    await reach(v, r)
    expect(r.size).toBe(1)
    expect(r.isEmpty).toBe(false)
    expect(r.get(1)).toBe(10)
    expect(r.has(1)).toBe(true)
    expect(r.has(2)).toBe(false)

    // insert another key
    v = await w.set(2, 20)
    await reach(v, r)
    expect(r.size).toBe(2)
    expect(r.get(2)).toBe(20)

    // update an existing key: the length is unchanged
    v = await w.set(1, 100)
    await reach(v, r)
    expect(r.size).toBe(2)
    expect(r.get(1)).toBe(100)

    // extend
    v = await w.extend([
      [3, 30],
      [4, 40],
      [5, 50],
    ])
    await reach(v, r)
    expect(r.size).toBe(5)
    expect([r.get(3), r.get(4), r.get(5)]).toEqual([30, 40, 50])
    expect(r.has(3)).toBe(true)
    expect(r.has(99)).toBe(false)

    // iteration, keys, values
    expect(new Map(r)).toEqual(
      new Map([
        [1, 100],
        [2, 20],
        [3, 30],
        [4, 40],
        [5, 50],
      ]),
    )
    expect(sorted(r.keys())).toEqual([1, 2, 3, 4, 5])
    expect(sorted(r.values())).toEqual([20, 30, 40, 50, 100])
    const seen: [number, number][] = []
    r.forEach((value, key) => {
      seen.push([key, value])
    })
    expect(seen).toEqual([...r.entries()])

    // remove
    v = await w.delete(3)
    await reach(v, r)
    expect(r.size).toBe(4)
    expect(r.get(3)).toBeUndefined()
    expect(r.has(3)).toBe(false)

    // clear
    v = await w.clear()
    await reach(v, r)
    expect(r.isEmpty).toBe(true)
    expect(r.size).toBe(0)
  })

  it('catchup_single_reader: a late reader gets 103 entries; later removes replicate', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    await online(w)
    for (let i = 0; i < 100; i++) await w.set(i, i * 10)
    let v = await w.extend([
      [100, 1000],
      [101, 1010],
      [102, 1020],
    ])
    await reach(v, w)

    const r = reader(n1!)
    await online(r)
    await reachWithin(T, v, r)
    expect(r.size).toBe(103)
    for (let i = 0; i < 100; i++) expect(r.get(i)).toBe(i * 10)
    expect([r.get(100), r.get(101), r.get(102)]).toEqual([1000, 1010, 1020])

    v = await w.delete(50)
    await reach(v, r)
    expect(r.size).toBe(102)
    expect(r.get(50)).toBeUndefined()
  })

  it('multiple_readers: three readers converge on every change', async () => {
    const [n0, n1, n2, n3] = pool.nets
    const w = writer(n0!)
    const rs = [reader(n1!), reader(n2!), reader(n3!)]
    await online(w, ...rs)

    let v = await w.extend([
      [1, 10],
      [2, 20],
      [3, 30],
      [4, 40],
      [5, 50],
    ])
    await reach(v, ...rs)
    for (const r of rs) {
      expect(r.size).toBe(5)
      expect([r.get(1), r.get(5)]).toEqual([10, 50])
    }

    v = await w.set(6, 60)
    await reach(v, ...rs)
    for (const r of rs) {
      expect(r.get(6)).toBe(60)
      expect(r.size).toBe(6)
    }

    v = await w.delete(1)
    await reach(v, ...rs)
    for (const r of rs) {
      expect(r.size).toBe(5)
      expect(r.get(1)).toBeUndefined()
    }
  })

  it('multiple_writers: two writers take turns; all three replicas agree', async () => {
    const [n0, n1, n2] = pool.nets
    const w0 = writer(n0!)
    const w1 = writer(n1!)
    const r = reader(n2!)
    await online(w0, w1, r)

    await reach(await w0.set(1, 100), r)
    await reach(await w1.set(2, 200), r)
    await reach(await w0.set(3, 300), r)
    expect(r.size).toBe(3)
    expect([r.get(1), r.get(2), r.get(3)]).toEqual([100, 200, 300])

    const v = await w1.extend([
      [4, 400],
      [5, 500],
    ])
    await reach(v, r, w0, w1)
    expect(r.size).toBe(5)
    expect([r.get(4), r.get(5)]).toEqual([400, 500])
    expect([...w0]).toEqual([...r])
    expect([...w1]).toEqual([...r])
  })

  it('catchup_multiple_readers: late readers at 51 and at 82 entries agree', async () => {
    const [n0, n1, n2] = pool.nets
    const w = writer(n0!)
    await online(w)
    for (let i = 0; i < 50; i++) await w.set(i, i * 10)
    const mid = await w.set(999, 9990)
    await reach(mid, w)

    const r1 = reader(n1!)
    await online(r1)
    await reachWithin(T, mid, r1)
    expect(r1.size).toBe(51)
    expect(r1.get(999)).toBe(9990)

    for (let i = 50; i < 80; i++) await w.set(i, i * 10)
    const late = await w.set(1000, 10000)
    await reach(late, w)

    const r2 = reader(n2!)
    await online(r2)
    await reachWithin(T, late, r2, r1)
    expect(r1.size).toBe(82)
    expect(r2.size).toBe(82)
    expect(r1.get(1000)).toBe(10000)
    expect(r2.get(1000)).toBe(10000)
    expect([...r1]).toEqual([...r2])
  })

  it('insert_overwrite: setting a key again replaces its value', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.set(1, 10), r)
    expect(r.get(1)).toBe(10)
    await reach(await w.set(1, 99), r)
    expect(r.get(1)).toBe(99)
    expect(r.size).toBe(1)
    await reach(await w.set(1, 200), r)
    expect(r.get(1)).toBe(200)
    expect(r.size).toBe(1)
  })

  it('extend_overwrite: extend replaces overlapping keys and adds new ones', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    let v = await w.extend([
      [1, 10],
      [2, 20],
      [3, 30],
    ])
    await reach(v, r)
    expect(r.size).toBe(3)
    v = await w.extend([
      [2, 200],
      [3, 300],
      [4, 400],
    ])
    await reach(v, r)
    expect(r.size).toBe(4)
    expect([r.get(1), r.get(2), r.get(3), r.get(4)]).toEqual([10, 200, 300, 400])
  })

  it('remove_nonexistent: removing a missing key is a committed no-op', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    const before = await w.extend([
      [1, 10],
      [2, 20],
      [3, 30],
    ])
    await reach(before, r)
    const v = await w.delete(999)
    expect(v).toBeGreaterThan(before)
    await reach(v, r)
    expect(r.size).toBe(3)
    expect([r.get(1), r.get(2), r.get(3)]).toEqual([10, 20, 30])
  })

  it('clear_then_rebuild: after clear the map starts fresh', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [1, 10],
        [2, 20],
        [3, 30],
      ]),
      r,
    )
    expect(r.size).toBe(3)
    await reach(await w.clear(), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.set(100, 1000), r)
    expect(r.size).toBe(1)
    expect(r.get(100)).toBe(1000)
    expect(r.get(1)).toBeUndefined()
  })

  it('extend_empty: extending with nothing returns the current version and writes no entry', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    const v1 = await w.set(1, 10)
    await reach(v1, r, w)
    const empty = await w.extend([])
    expect(empty).toBe(w.version)
    expect(r.size).toBe(1)
    const v2 = await w.set(2, 20)
    // No log entry was written for the empty extend: the next write directly follows the first.
    expect(v2).toBe(v1 + 1)
    await reach(v2, r)
    expect(r.size).toBe(2)
  })

  it('many_writers_many_readers: two writers and two readers agree on {2..6}', async () => {
    const [n0, n1, n2, n3] = pool.nets
    const w0 = writer(n0!)
    const w1 = writer(n1!)
    const r0 = reader(n2!)
    const r1 = reader(n3!)
    await online(w0, w1, r0, r1)

    await reach(
      await w0.extend([
        [1, 10],
        [2, 20],
        [3, 30],
      ]),
      r0,
      r1,
    )
    await reach(
      await w1.extend([
        [4, 40],
        [5, 50],
      ]),
      r0,
      r1,
    )
    expect(r0.size).toBe(5)
    expect(r1.size).toBe(5)
    await reach(await w0.delete(1), r0, r1)
    const v = await w1.set(6, 60)
    await reach(v, r0, r1, w0, w1)

    const expected = [...w0]
    expect([...w1]).toEqual(expected)
    expect([...r0]).toEqual(expected)
    expect([...r1]).toEqual(expected)
    expect(sorted(w0.keys())).toEqual([2, 3, 4, 5, 6])
  })

  it('late_writer_catchup: a late writer sees the state, then contributes', async () => {
    const [n0, n1] = pool.nets
    const w0 = writer(n0!)
    await online(w0)
    const v = await w0.extend([
      [1, 10],
      [2, 20],
      [3, 30],
      [4, 40],
      [5, 50],
    ])
    await reach(v, w0)

    const w1 = writer(n1!)
    await online(w1)
    await reachWithin(T, v, w1)
    expect(w1.size).toBe(5)

    const v1 = await w1.set(99, 990)
    await reach(v1, w0)
    expect(w0.size).toBe(6)
    expect(w0.get(99)).toBe(990)
    expect(w1.get(99)).toBe(990)
  })

  it('writer_reads_own_writes: string keys and values', async () => {
    const [n0] = pool.nets
    const w = writer<string, string>(n0!)
    await online(w)
    let v = await w.set('hello', 'world')
    await reach(v, w)
    expect(w.size).toBe(1)
    expect(w.get('hello')).toBe('world')
    expect(w.has('hello')).toBe(true)
    expect(w.has('missing')).toBe(false)

    v = await w.set('foo', 'bar')
    await reach(v, w)
    expect(Object.fromEntries(w)).toEqual({ hello: 'world', foo: 'bar' })
    expect(new Set(w.keys())).toEqual(new Set(['hello', 'foo']))
    expect(new Set(w.values())).toEqual(new Set(['world', 'bar']))
  })

  it('remove_all_entries: removing one by one empties the map; it can be refilled', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [1, 10],
        [2, 20],
        [3, 30],
      ]),
      r,
    )
    expect(r.size).toBe(3)
    await reach(await w.delete(1), r)
    expect(r.size).toBe(2)
    await reach(await w.delete(2), r)
    expect(r.size).toBe(1)
    await reach(await w.delete(3), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.set(4, 40), r)
    expect(r.size).toBe(1)
    expect(r.get(4)).toBe(40)
  })

  it('remove_many: several keys in one command, missing keys and an empty list', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [1, 10],
        [2, 20],
        [3, 30],
        [4, 40],
        [5, 50],
      ]),
      r,
    )
    expect(r.size).toBe(5)

    await reach(await w.removeMany([2, 4, 5]), r)
    expect(r.size).toBe(2)
    expect([r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)]).toEqual([
      10,
      undefined,
      30,
      undefined,
      undefined,
    ])

    await reach(await w.removeMany([1, 99, 100]), r)
    expect(r.size).toBe(1)
    expect(r.get(1)).toBeUndefined()
    expect(r.get(3)).toBe(30)

    // An empty list writes nothing and returns the current version.
    expect(await w.removeMany([])).toBe(w.version)
    expect(r.size).toBe(1)

    await reach(await w.set(10, 100), r)
    expect(r.size).toBe(2)
  })

  it('remove_many past a compaction: one command removing most keys removes exactly those', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    const keys = Array.from({ length: 200 }, (_, i) => i)
    await reach(await w.extend(keys.map((k) => [k, k * 10] as [number, number])), r)
    // Removed entries become most of the table after the 101st key: it is compacted mid-command.
    await reach(await w.removeMany(keys.slice(0, 150)), r)
    for (const m of [w, r]) {
      expect(m.size).toBe(50)
      expect([...m.keys()]).toEqual(keys.slice(150))
      expect(m.get(175)).toBe(1750)
    }
  })

  it('compare_exchange_success: replaces the value when the expected one matches', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.set(1, 10), r)
    expect(r.get(1)).toBe(10)
    await reach(await w.compareExchange(1, 10, 99), r)
    expect(r.get(1)).toBe(99)
    expect(r.size).toBe(1)
  })

  it('compare_exchange_insert_new_key: expected absent inserts', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.compareExchange(1, undefined, 10), r)
    expect(r.get(1)).toBe(10)
    expect(r.size).toBe(1)
  })

  it('compare_exchange_remove_key: a new value of undefined removes the key', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [1, 10],
        [2, 20],
      ]),
      r,
    )
    expect(r.size).toBe(2)
    await reach(await w.compareExchange(1, 10, undefined), r)
    expect(r.get(1)).toBeUndefined()
    expect(r.has(1)).toBe(false)
    expect(r.size).toBe(1)
    expect(r.get(2)).toBe(20)
  })

  it('compare_exchange_mismatch_no_change: a wrong or absent expectation changes nothing', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.set(1, 10), r)
    await reach(await w.compareExchange(1, 999, 200), r)
    expect(r.get(1)).toBe(10)
    await reach(await w.compareExchange(1, undefined, 300), r)
    expect(r.get(1)).toBe(10)
  })

  it('compare_exchange_mismatch_on_missing_key: expecting a value of a missing key inserts nothing', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.compareExchange(1, 42, 99), r)
    expect(r.isEmpty).toBe(true)
    expect(r.get(1)).toBeUndefined()
  })

  it('compare_exchange_replicates_to_readers: two readers see the swap', async () => {
    const [n0, n1, n2] = pool.nets
    const w = writer(n0!)
    const r1 = reader(n1!)
    const r2 = reader(n2!)
    await online(w, r1, r2)
    await reach(
      await w.extend([
        [1, 10],
        [2, 20],
      ]),
      r1,
      r2,
    )
    await reach(await w.compareExchange(1, 10, 100), r1, r2)
    for (const r of [r1, r2]) {
      expect(r.get(1)).toBe(100)
      expect(r.get(2)).toBe(20)
    }
  })

  it('compare_exchange_chained: absent -> 1 -> 2 -> 3 -> absent', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.compareExchange(1, undefined, 1), r)
    expect(r.get(1)).toBe(1)
    await reach(await w.compareExchange(1, 1, 2), r)
    expect(r.get(1)).toBe(2)
    await reach(await w.compareExchange(1, 2, 3), r)
    expect(r.get(1)).toBe(3)
    await reach(await w.compareExchange(1, 3, undefined), r)
    expect(r.get(1)).toBeUndefined()
    expect(r.isEmpty).toBe(true)
  })

  it('compare_exchange_mixed_with_insert_remove: interleaved with set, delete and clear', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.set(1, 10), r)
    expect(r.get(1)).toBe(10)
    await reach(await w.compareExchange(1, 10, 20), r)
    expect(r.get(1)).toBe(20)
    await reach(await w.delete(1), r)
    expect(r.get(1)).toBeUndefined()
    await reach(await w.compareExchange(1, undefined, 30), r)
    expect(r.get(1)).toBe(30)
    await reach(await w.clear(), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.compareExchange(1, undefined, 40), r)
    expect(r.get(1)).toBe(40)
    expect(r.size).toBe(1)
    await reach(await w.set(2, 50), r)
    expect(r.size).toBe(2)
  })

  it('compare_exchange_multiple_keys: independent swaps on several keys', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(
      await w.extend([
        [1, 10],
        [2, 20],
        [3, 30],
      ]),
      r,
    )
    await reach(await w.compareExchange(1, 10, 100), r)
    await reach(await w.compareExchange(2, 20, undefined), r)
    await reach(await w.compareExchange(4, undefined, 40), r)
    expect([r.get(1), r.get(2), r.get(3), r.get(4)]).toEqual([100, undefined, 30, 40])
    expect(r.size).toBe(3)
  })

  it('compare_exchange_none_to_none: absent -> absent on a missing key is a no-op', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.compareExchange(1, undefined, undefined), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.set(1, 10), r)
    expect(r.get(1)).toBe(10)
  })

  it('compare_exchange_catchup: a late reader sees the result of a chain of swaps', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    await online(w)
    await reach(await w.compareExchange(1, undefined, 10), w)
    await reach(await w.compareExchange(2, undefined, 20), w)
    const v = await w.compareExchange(1, 10, 100)
    await reach(v, w)

    const r = reader(n1!)
    await online(r)
    await reachWithin(T, v, r)
    expect(r.get(1)).toBe(100)
    expect(r.get(2)).toBe(20)
    expect(r.size).toBe(2)
  })

  it('compare_exchange_string_keys: insert, update and delete through swaps', async () => {
    const [n0, n1] = pool.nets
    const w = writer<string, string>(n0!)
    const r = reader<string, string>(n1!)
    await online(w, r)
    await reach(await w.compareExchange('key', undefined, 'value'), r)
    expect(r.get('key')).toBe('value')
    await reach(await w.compareExchange('key', 'value', 'updated'), r)
    expect(r.get('key')).toBe('updated')
    await reach(await w.compareExchange('key', 'updated', undefined), r)
    expect(r.get('key')).toBeUndefined()
    expect(r.isEmpty).toBe(true)
  })

  it('construct_from_def: a shared definition opens the writer and the reader', async () => {
    const [n0, n1] = pool.nets
    // mosaik's `CollectionDef::new(unique_id!("test1"))`: a typed definition on a fixed store id. A
    // Digest store id and the string it hashes name the same collection.
    const STORE = Digest.from(sid())
    const DEF = {
      writer: (net: Network) => pool.track(collections.Map.writer<string, string>(net, STORE, { consensus })),
      reader: (net: Network) => pool.track(collections.Map.reader<string, string>(net, sid(), { consensus })),
    } as const
    const w = DEF.writer(n0!)
    const r = DEF.reader(n1!)
    expect(w.storeId.equals(r.storeId)).toBe(true)
    await online(w, r)
    const v = await w.set('hello', 'world')
    await reach(v, w)
    expect(w.size).toBe(1)
    await reach(v, r)
    expect(r.size).toBe(1)
    expect(r.get('hello')).toBe('world')
  })

  // Beyond mosaik's tests: change notifications (mosaik's `when().updated()`), for re-rendering a UI.
  it('updated events, when.updated() and updates() follow the changes a replica applies', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    const seen: number[] = []
    const off = r.on('updated', ({ version }) => seen.push(version))
    const next = r.when.updated()
    const v1 = await w.set(1, 1)
    expect(await within(S, next, 'when.updated')).toBe(v1)

    const controller = new AbortController()
    const iterated: number[] = []
    const v3 = (async () => {
      await w.set(2, 2)
      return w.set(3, 3)
    })()
    for await (const v of r.updates({ signal: controller.signal })) {
      iterated.push(v)
      if (v >= (await v3)) controller.abort()
    }
    off()
    expect(iterated.length).toBeGreaterThan(0)
    expect(iterated.at(-1)).toBe(await v3)
    expect(seen[0]).toBe(v1)
    expect(seen).toEqual([...seen].sort((a, b) => a - b))
    expect(seen.at(-1)).toBe(await v3)
    expect(r.get(3)).toBe(3)
    // A signal that is already aborted rejects at once.
    const aborted = AbortSignal.abort()
    const outcome = await within(
      ms(500),
      r.when.updated({ signal: aborted }).then(
        () => 'resolved',
        (e: unknown) => e,
      ),
      'an aborted when.updated()',
    )
    expect(outcome).toBe(aborted.reason)
  })

  // Beyond mosaik: keys and values compare by canonical encoding, so objects work as keys.
  it('object keys compare by their canonical encoding', async () => {
    const [n0, n1] = pool.nets
    const w = writer<{ a: number; b: string }, number[]>(n0!)
    const r = reader<{ a: number; b: string }, number[]>(n1!)
    await online(w, r)
    await w.set({ a: 1, b: 'x' }, [1])
    const v = await w.set({ b: 'x', a: 1 }, [2]) // the same key, properties in another order
    await reach(v, r)
    expect(r.size).toBe(1)
    expect(r.get({ a: 1, b: 'x' })).toEqual([2])
    expect(r.has({ a: 1, b: 'y' })).toBe(false)
  })
})

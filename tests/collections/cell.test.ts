/**
 * Ports of mosaik's tests/collections/cell.rs (24 tests; 23 ported). Skipped: `construct_from_macro`
 * (no `collection!` macro in TypeScript). mosaik's `None` is `undefined`; `is_none` is `isEmpty`.
 */
import { describe, expect, it } from 'vitest'
import { collections, Digest, type Network } from '../../platform/node/index.ts'
import { consensus, factories, online, reach, reachWithin, sid, T, useNodes } from './support.ts'

const pool = useNodes(4)

const { writer, reader } = factories(pool, 'Cell')

describe('collections::cell', () => {
  it('smoke_no_catchup: write, set and clear', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)

    expect(r.isEmpty).toBe(true)
    expect(r.isSome).toBe(false)
    expect(r.read()).toBeUndefined()
    expect(r.get()).toBeUndefined()

    let v = await w.write(42)
    await reach(v, r)
    expect(r.isEmpty).toBe(false)
    expect(r.isSome).toBe(true)
    expect(r.read()).toBe(42)
    expect(r.get()).toBe(42)

    v = await w.write(99)
    await reach(v, r)
    expect(r.read()).toBe(99)

    v = await w.set(123)
    await reach(v, r)
    expect(r.read()).toBe(123)

    v = await w.clear()
    await reach(v, r)
    expect(r.isEmpty).toBe(true)
    expect(r.read()).toBeUndefined()
  })

  it('catchup_single_reader: after 100 writes and 999 a late reader reads 999', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    await online(w)
    for (let i = 0; i < 100; i++) await w.write(i)
    let v = await w.write(999)
    await reach(v, w)

    const r = reader(n1!)
    await online(r)
    await reachWithin(T, v, r)
    expect(r.read()).toBe(999)

    v = await w.write(1000)
    await reach(v, r)
    expect(r.read()).toBe(1000)
  })

  it('multiple_readers: three readers follow writes and a clear', async () => {
    const [n0, n1, n2, n3] = pool.nets
    const w = writer(n0!)
    const rs = [reader(n1!), reader(n2!), reader(n3!)]
    await online(w, ...rs)
    await reach(await w.write(42), ...rs)
    for (const r of rs) expect(r.read()).toBe(42)
    await reach(await w.write(100), ...rs)
    for (const r of rs) expect(r.read()).toBe(100)
    await reach(await w.clear(), ...rs)
    for (const r of rs) expect(r.isEmpty).toBe(true)
  })

  it('multiple_writers: the last write wins, in sequence', async () => {
    const [n0, n1, n2] = pool.nets
    const w0 = writer(n0!)
    const w1 = writer(n1!)
    const r = reader(n2!)
    await online(w0, w1, r)
    await reach(await w0.write(10), r)
    expect(r.read()).toBe(10)
    await reach(await w1.write(20), r)
    expect(r.read()).toBe(20)
    const v = await w0.write(30)
    await reach(v, r, w0, w1)
    expect(r.read()).toBe(30)
    expect(w0.read()).toBe(w1.read())
    expect(w0.read()).toBe(r.read())
  })

  it('catchup_multiple_readers: late readers at 999 and at 1000', async () => {
    const [n0, n1, n2] = pool.nets
    const w = writer(n0!)
    await online(w)
    for (let i = 0; i < 50; i++) await w.write(i)
    const mid = await w.write(999)
    await reach(mid, w)

    const r1 = reader(n1!)
    await online(r1)
    await reachWithin(T, mid, r1)
    expect(r1.read()).toBe(999)

    for (let i = 50; i < 80; i++) await w.write(i)
    const late = await w.write(1000)
    await reach(late, w)

    const r2 = reader(n2!)
    await online(r2)
    await reachWithin(T, late, r2, r1)
    expect(r1.read()).toBe(1000)
    expect(r2.read()).toBe(1000)
  })

  it('overwrite_keeps_latest', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    for (const x of [1, 2, 3]) {
      await reach(await w.write(x), r)
      expect(r.read()).toBe(x)
    }
    expect(r.isEmpty).toBe(false)
  })

  it('clear_then_write', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.write(42), r)
    expect(r.read()).toBe(42)
    await reach(await w.clear(), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.write(100), r)
    expect(r.read()).toBe(100)
    expect(r.isEmpty).toBe(false)
  })

  it('clear_empty: clearing an empty cell is a committed no-op', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.clear(), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.write(1), r)
    expect(r.read()).toBe(1)
  })

  it('many_writers_many_readers: everyone reads 30 in the end', async () => {
    const [n0, n1, n2, n3] = pool.nets
    const w0 = writer(n0!)
    const w1 = writer(n1!)
    const r0 = reader(n2!)
    const r1 = reader(n3!)
    await online(w0, w1, r0, r1)
    await reach(await w0.write(10), r0, r1)
    expect([r0.read(), r1.read()]).toEqual([10, 10])
    await reach(await w1.write(20), r0, r1)
    expect([r0.read(), r1.read()]).toEqual([20, 20])
    await reach(await w0.clear(), r0, r1)
    const v = await w1.write(30)
    await reach(v, r0, r1, w0)
    for (const h of [w0, w1, r0, r1]) expect(h.read()).toBe(30)
  })

  it('late_writer_catchup: a late writer sees 42, then writes 99', async () => {
    const [n0, n1] = pool.nets
    const w0 = writer(n0!)
    await online(w0)
    const v = await w0.write(42)
    await reach(v, w0)

    const w1 = writer(n1!)
    await online(w1)
    await reachWithin(T, v, w1)
    expect(w1.read()).toBe(42)

    const v1 = await w1.write(99)
    await reach(v1, w0)
    expect(w0.read()).toBe(99)
    expect(w1.read()).toBe(99)
  })

  it('writer_reads_own_writes: strings', async () => {
    const [n0] = pool.nets
    const w = writer<string>(n0!)
    await online(w)
    await reach(await w.write('hello'), w)
    expect(w.read()).toBe('hello')
    expect(w.isEmpty).toBe(false)
    await reach(await w.write('world'), w)
    expect(w.read()).toBe('world')
  })

  it('compare_exchange_success', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.write(42), r)
    expect(r.read()).toBe(42)
    await reach(await w.compareExchange(42, 99), r)
    expect(r.read()).toBe(99)
  })

  it('compare_exchange_from_none: expecting empty fills the cell', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.compareExchange(undefined, 10), r)
    expect(r.read()).toBe(10)
  })

  it('compare_exchange_to_none: a new value of undefined empties the cell', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.write(42), r)
    expect(r.read()).toBe(42)
    await reach(await w.compareExchange(42, undefined), r)
    expect(r.isEmpty).toBe(true)
  })

  it('compare_exchange_mismatch_no_change: a wrong or empty expectation changes nothing', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.write(42), r)
    await reach(await w.compareExchange(100, 200), r)
    expect(r.read()).toBe(42)
    await reach(await w.compareExchange(undefined, 300), r)
    expect(r.read()).toBe(42)
  })

  it('compare_exchange_mismatch_on_empty: expecting a value of an empty cell changes nothing', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.compareExchange(42, 99), r)
    expect(r.isEmpty).toBe(true)
  })

  it('compare_exchange_replicates_to_readers', async () => {
    const [n0, n1, n2] = pool.nets
    const w = writer(n0!)
    const r1 = reader(n1!)
    const r2 = reader(n2!)
    await online(w, r1, r2)
    await reach(await w.write(1), r1, r2)
    await reach(await w.compareExchange(1, 2), r1, r2)
    expect(r1.read()).toBe(2)
    expect(r2.read()).toBe(2)
  })

  it('compare_exchange_chained: empty -> 1 -> 2 -> 3 -> empty', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.compareExchange(undefined, 1), r)
    expect(r.read()).toBe(1)
    await reach(await w.compareExchange(1, 2), r)
    expect(r.read()).toBe(2)
    await reach(await w.compareExchange(2, 3), r)
    expect(r.read()).toBe(3)
    await reach(await w.compareExchange(3, undefined), r)
    expect(r.isEmpty).toBe(true)
  })

  it('compare_exchange_mixed_with_write_clear', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.write(10), r)
    expect(r.read()).toBe(10)
    await reach(await w.compareExchange(10, 20), r)
    expect(r.read()).toBe(20)
    await reach(await w.clear(), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.compareExchange(undefined, 30), r)
    expect(r.read()).toBe(30)
    await reach(await w.write(40), r)
    expect(r.read()).toBe(40)
  })

  it('compare_exchange_none_to_none: empty -> empty is a committed no-op', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    await reach(await w.compareExchange(undefined, undefined), r)
    expect(r.isEmpty).toBe(true)
    await reach(await w.write(1), r)
    expect(r.read()).toBe(1)
  })

  it('compare_exchange_catchup: a late reader sees the end of a chain of swaps', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    await online(w)
    await reach(await w.compareExchange(undefined, 1), w)
    await reach(await w.compareExchange(1, 2), w)
    const v = await w.compareExchange(2, 3)
    await reach(v, w)
    const r = reader(n1!)
    await online(r)
    await reachWithin(T, v, r)
    expect(r.read()).toBe(3)
  })

  it('write_clear_cycle: ten write/clear cycles, then 999', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    await online(w, r)
    for (let i = 0; i < 10; i++) {
      await reach(await w.write(i), r)
      expect(r.read()).toBe(i)
      await reach(await w.clear(), r)
      expect(r.isEmpty).toBe(true)
    }
    await reach(await w.write(999), r)
    expect(r.read()).toBe(999)
  })

  it('construct_from_def: a shared definition opens the writer and the reader', async () => {
    const [n0, n1] = pool.nets
    const STORE = Digest.from(sid())
    const DEF = {
      writer: (net: Network) => pool.track(collections.Cell.writer<string>(net, STORE, { consensus })),
      reader: (net: Network) => pool.track(collections.Cell.reader<string>(net, STORE, { consensus })),
    } as const
    const w = DEF.writer(n0!)
    const r = DEF.reader(n1!)
    await online(w, r)
    const v = await w.set('hello')
    await reach(v, w)
    expect(w.isSome).toBe(true)
    await reach(v, r)
    expect(r.isSome).toBe(true)
    expect(r.get()).toBe('hello')
  })

  // Beyond mosaik: compare-and-swap compares canonical encodings, so object values work.
  it('compare-and-swap on object values compares their canonical encoding', async () => {
    const [n0, n1] = pool.nets
    const w = writer<{ x: number; y: number }>(n0!)
    const r = reader<{ x: number; y: number }>(n1!)
    await online(w, r)
    await w.set({ x: 1, y: 2 })
    await w.compareExchange({ x: 2, y: 2 }, { x: 3, y: 3 }) // mismatch
    const v = await w.compareExchange({ y: 2, x: 1 }, { x: 4, y: 4 }) // equal, properties reordered
    await reach(v, r)
    expect(r.get()).toEqual({ x: 4, y: 4 })
  })
})

/**
 * Ports of mosaik's tests/collections/once.rs (9 tests; 8 ported). Skipped: `construct_from_macro`
 * (no `collection!` macro in TypeScript). The first committed write wins; later writes still commit
 * (and move the version) but change nothing.
 */
import { describe, expect, it } from 'vitest'
import { collections, Digest, type Network } from '../../platform/node/index.ts'
import { ms, within } from '../support/time.ts'
import { consensus, factories, online, reach, reachWithin, sid, T, useNodes } from './support.ts'

const pool = useNodes(4)

const { writer, reader } = factories(pool, 'Once')

describe('collections::once', () => {
  it('smoke: the first write wins; later write and set keep 42', async () => {
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

    const before = v
    v = await w.write(99)
    expect(v).toBeGreaterThan(before) // the ignored write still commits
    await reach(v, r)
    expect(r.read()).toBe(42)

    v = await w.set(123)
    await reach(v, r)
    expect(r.read()).toBe(42)
  })

  it('catchup_single_reader: 999 first, then 51 ignored writes; a late reader sees 999', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    await online(w)
    await w.write(999)
    for (let i = 0; i < 50; i++) await w.write(i)
    const last = await w.write(0)
    await reach(last, w)

    const r = reader(n1!)
    await online(r)
    await reachWithin(T, last, r)
    expect(r.read()).toBe(999)
  })

  it('multiple_readers: every reader keeps 42', async () => {
    const [n0, n1, n2, n3] = pool.nets
    const w = writer(n0!)
    const rs = [reader(n1!), reader(n2!), reader(n3!)]
    await online(w, ...rs)
    await reach(await w.write(42), ...rs)
    for (const r of rs) expect(r.read()).toBe(42)
    await reach(await w.write(100), ...rs)
    for (const r of rs) expect(r.read()).toBe(42)
  })

  it('multiple_writers: the first value, 10, wins across writers', async () => {
    const [n0, n1, n2] = pool.nets
    const w0 = writer(n0!)
    const w1 = writer(n1!)
    const r = reader(n2!)
    await online(w0, w1, r)
    await reach(await w0.write(10), r)
    expect(r.read()).toBe(10)
    await reach(await w1.write(20), r)
    expect(r.read()).toBe(10)
    const v = await w0.write(30)
    await reach(v, r, w0, w1)
    expect([w0.read(), w1.read(), r.read()]).toEqual([10, 10, 10])
  })

  it('writer_reads_own_write: strings', async () => {
    const [n0] = pool.nets
    const w = writer<string>(n0!)
    await online(w)
    await reach(await w.write('hello'), w)
    expect(w.read()).toBe('hello')
    expect(w.isEmpty).toBe(false)
    await reach(await w.write('world'), w)
    expect(w.read()).toBe('hello')
  })

  it('await_value: a reader waiting before the write gets 42; the writer gets it at once', async () => {
    const [n0, n1] = pool.nets
    const w = writer(n0!)
    const r = reader(n1!)
    const waiting = r.awaitValue()
    await online(w)
    const v = await w.write(42)
    expect(await within(T, waiting, 'await_value')).toBe(42)
    await reach(v, w)
    // A value is present: resolves at once (mosaik: within 100 ms).
    expect(await within(ms(100), w.awaitValue(), 'await_value when set')).toBe(42)
    // It honours an abort signal while waiting.
    const empty = reader(pool.nets[2]!, sid('empty'))
    await expect(empty.awaitValue({ signal: AbortSignal.abort() })).rejects.toThrow()
  })

  it('late_writer_catchup: a late writer sees 42 and its own write is ignored', async () => {
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
    expect(w0.read()).toBe(42)
    expect(w1.read()).toBe(42)
  })

  it('construct_from_def: writer, reader and a third, late reader from one definition', async () => {
    const [n0, n1, n2] = pool.nets
    const STORE = Digest.from(sid())
    const DEF = {
      writer: (net: Network) => pool.track(collections.Once.writer<string>(net, STORE, { consensus })),
      reader: (net: Network) => pool.track(collections.Once.reader<string>(net, STORE, { consensus })),
    } as const
    // mosaik's `DEF.as_reader()`: a definition that can only open readers.
    const READER_DEF = { open: DEF.reader } as const
    const w = DEF.writer(n0!)
    const r = DEF.reader(n1!)
    await online(w, r)
    const v = await w.set('hello')
    await reach(v, w)
    expect(w.isSome).toBe(true)
    await reach(v, r)
    expect(r.isSome).toBe(true)
    expect(r.get()).toBe('hello')

    const r2 = READER_DEF.open(n2!)
    await online(r2)
    await reachWithin(T, v, r2)
    expect(r2.isSome).toBe(true)
    expect(r2.get()).toBe('hello')
  })
})

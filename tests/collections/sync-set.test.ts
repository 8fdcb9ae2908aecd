/**
 * Ports of mosaik's tests/collections/sync/set.rs (17 functions, 33 instances; the 6 cases of 100k
 * items run with MOSAIK_LONG=1). The shared structure is in sync-suite.ts; the set's own tests follow.
 * Late readers here find a log compacted after every entry, so they install a snapshot, as in mosaik.
 */
import { describe, expect, it } from 'vitest'
import { collections, type SetReader, type SetWriter } from '../../platform/node/index.ts'
import { secs } from '../support/time.ts'
import { consensus, online, reachWithin, sid, useNodes } from './support.ts'
import { lateReader, type SyncKind, syncSuite, type Value } from './sync-suite.ts'

const pool = useNodes(6)

const kind: SyncKind<SetReader<Value>, SetWriter<Value>> = {
  writer: (net, id, c) => collections.Set.writer<Value>(net, id, { consensus: c }),
  reader: (net, id, c) => collections.Set.reader<Value>(net, id, { consensus: c }),
  put: (w, _i, value) => w.add(value),
  putAll: (w, from, to, value) => w.extend(Array.from({ length: to - from }, (_, j) => value(from + j))),
  clear: (w) => w.clear(),
  size: (h) => h.size,
  holds: (h, _i, value) => h.has(value),
  consistent: (h) => {
    const n = h.size
    if (n === 0) return
    expect(h.has(0), `size ${n} but has(0) is false`).toBe(true)
    let count = 0
    for (const _ of h) count++
    expect(count, 'iteration agrees with size').toBe(n)
  },
}

async function start<V>() {
  const c = { ...consensus, snapshotEvery: 1 }
  const w0 = pool.track(collections.Set.writer<V>(pool.nets[0]!, sid(), { consensus: c }))
  const r1 = pool.track(collections.Set.reader<V>(pool.nets[1]!, sid(), { consensus: c }))
  await online(w0, r1)
  const late = (v: number) =>
    lateReader((net, id, cc) => collections.Set.reader<V>(net, id, { consensus: cc }), pool, c, v)
  return { w0, r1, late }
}

describe('collections::sync::set', () => {
  syncSuite(kind, pool)

  it('mixed_mutations: insert, duplicate, remove, extend; a late reader sees the end state', async () => {
    const { w0, r1, late } = await start<number>()
    await w0.add(1)
    await w0.add(2)
    let v = await w0.add(3)
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.has(1), r1.has(2), r1.has(3)]).toEqual([3, true, true, true])
    v = await w0.add(1)
    await reachWithin(secs(5), v, r1)
    expect(r1.size).toBe(3)
    v = await w0.delete(2)
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.has(2)]).toEqual([2, false])
    v = await w0.extend([10, 20, 30])
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.has(10), r1.has(20), r1.has(30)]).toEqual([5, true, true, true])
    v = await w0.delete(3)
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.has(3)]).toEqual([4, false])
    for (const x of [1, 10, 20, 30]) {
      expect(w0.has(x), `w0 has ${x}`).toBe(true)
      expect(r1.has(x), `r1 has ${x}`).toBe(true)
    }
    const r2 = await late(v)
    expect(r2.size).toBe(4)
    expect([1, 10, 20, 30, 2, 3].map((x) => r2.has(x))).toEqual([true, true, true, true, false, false])
    expect([...r2]).toEqual([...w0])
  })

  it('insert_duplicates: every element added twice; the set keeps one of each', async () => {
    const { w0, r1, late } = await start<number>()
    let v = w0.version
    for (let i = 0; i < 100; i++) v = await w0.add(i)
    await reachWithin(secs(5), v, r1)
    expect(r1.size).toBe(100)
    for (let i = 0; i < 100; i++) v = await w0.add(i)
    await reachWithin(secs(10), v, r1)
    expect([w0.size, r1.size]).toEqual([100, 100])
    for (let i = 0; i < 100; i++) expect(w0.has(i) && r1.has(i), `has ${i}`).toBe(true)
    const r2 = await late(v)
    expect(r2.size).toBe(100)
    for (let i = 0; i < 100; i++) expect(r2.has(i), `r2 has ${i}`).toBe(true)
  })

  it('remove_nonexistent_values: removing missing values leaves the set as it was', async () => {
    const { w0, r1 } = await start<number>()
    const v1 = await w0.extend(Array.from({ length: 10 }, (_, i) => i))
    await reachWithin(secs(5), v1, r1)
    expect(r1.size).toBe(10)
    await w0.delete(100)
    const v3 = await w0.delete(999)
    await reachWithin(secs(5), v3, r1)
    expect([w0.size, r1.size]).toEqual([10, 10])
    for (let i = 0; i < 10; i++) expect(r1.has(i)).toBe(true)
    const v4 = await w0.delete(5)
    await reachWithin(secs(5), v4, r1)
    expect([r1.size, r1.has(5)]).toEqual([9, false])
  })

  it('string_elements: 50 strings; a late reader gets them all', async () => {
    const { w0, r1, late } = await start<string>()
    let v = w0.version
    for (let i = 0; i < 50; i++) v = await w0.add(`item-${i}`)
    await reachWithin(secs(5), v, r1)
    expect(r1.size).toBe(50)
    for (let i = 0; i < 50; i++) expect(r1.has(`item-${i}`)).toBe(true)
    const r2 = await late(v)
    expect(r2.size).toBe(50)
    for (let i = 0; i < 50; i++) expect(r2.has(`item-${i}`)).toBe(true)
  })
})

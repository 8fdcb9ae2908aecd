/**
 * Ports of mosaik's tests/collections/sync/map.rs (18 functions, 34 instances; the 6 cases of 100k
 * items run with MOSAIK_LONG=1). The shared structure is in sync-suite.ts; the map's own tests follow.
 * Late readers here find a log compacted after every entry, so they install a snapshot, as in mosaik.
 */
import { describe, expect, it } from 'vitest'
import { collections, type MapReader, type MapWriter } from '../../platform/node/index.ts'
import { secs } from '../support/time.ts'
import { consensus, online, reachWithin, sid, useNodes } from './support.ts'
import { lateReader, type SyncKind, syncSuite, type Value } from './sync-suite.ts'

const pool = useNodes(6)

const kind: SyncKind<MapReader<number, Value>, MapWriter<number, Value>> = {
  writer: (net, id, c) => collections.Map.writer<number, Value>(net, id, { consensus: c }),
  reader: (net, id, c) => collections.Map.reader<number, Value>(net, id, { consensus: c }),
  put: (w, i, value) => w.set(i, value),
  putAll: (w, from, to, value) =>
    w.extend(Array.from({ length: to - from }, (_, j) => [from + j, value(from + j)] as const)),
  clear: (w) => w.clear(),
  size: (h) => h.size,
  holds: (h, i, value) => h.get(i) === value,
  consistent: (h) => {
    const n = h.size
    if (n === 0) return
    expect(h.get(0), `size ${n} but get(0) is missing`).toBeDefined()
    expect(h.has(0), `size ${n} but has(0) is false`).toBe(true)
    let count = 0
    for (const _ of h.keys()) count++
    expect(count, 'iteration agrees with size').toBe(n)
  },
}

/** A writer and a reader online, compacting after every entry so late readers install snapshots. */
async function start<K, V>() {
  const c = { ...consensus, snapshotEvery: 1 }
  const open = {
    writer: (net = pool.nets[0]!) => pool.track(collections.Map.writer<K, V>(net, sid(), { consensus: c })),
    reader: (net = pool.nets[1]!) => pool.track(collections.Map.reader<K, V>(net, sid(), { consensus: c })),
  }
  const w0 = open.writer()
  const r1 = open.reader()
  await online(w0, r1)
  const late = (v: number) =>
    lateReader((net, id, cc) => collections.Map.reader<K, V>(net, id, { consensus: cc }), pool, c, v)
  return { w0, r1, late }
}

describe('collections::sync::map', () => {
  syncSuite(kind, pool)

  it('mixed_mutations: insert, overwrite, remove, extend; a late reader sees the end state', async () => {
    const { w0, r1, late } = await start<number, number>()
    await w0.set(1, 10)
    await w0.set(2, 20)
    let v = await w0.set(3, 30)
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.get(1), r1.get(2), r1.get(3)]).toEqual([3, 10, 20, 30])

    v = await w0.set(1, 100)
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.get(1)]).toEqual([3, 100])

    v = await w0.delete(2)
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.get(2), r1.has(2)]).toEqual([2, undefined, false])

    v = await w0.extend([
      [10, 100],
      [20, 200],
      [30, 300],
    ])
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.get(10), r1.get(20), r1.get(30)]).toEqual([5, 100, 200, 300])

    v = await w0.delete(3)
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.get(3)]).toEqual([4, undefined])
    for (const key of [1, 10, 20, 30]) expect(w0.get(key), `key ${key}`).toBe(r1.get(key))

    const r2 = await late(v)
    expect(r2.size).toBe(4)
    expect([r2.get(1), r2.get(10), r2.get(20), r2.get(30), r2.get(2), r2.get(3)]).toEqual([
      100,
      100,
      200,
      300,
      undefined,
      undefined,
    ])
    // The snapshot keeps the iteration order (insertion order) of the replicas it came from.
    expect([...r2]).toEqual([...w0])
  })

  it('overwrite_keys: every key written twice; readers see only the latest values', async () => {
    const { w0, r1, late } = await start<number, number>()
    let v = w0.version
    for (let i = 0; i < 100; i++) v = await w0.set(i, i)
    await reachWithin(secs(5), v, r1)
    expect(r1.size).toBe(100)
    for (let i = 0; i < 100; i++) v = await w0.set(i, i * 1000)
    await reachWithin(secs(10), v, r1)
    expect([w0.size, r1.size]).toEqual([100, 100])
    for (let i = 0; i < 100; i++) {
      expect(w0.get(i), `w0 key ${i}`).toBe(i * 1000)
      expect(r1.get(i), `r1 key ${i}`).toBe(i * 1000)
    }
    const r2 = await late(v)
    expect(r2.size).toBe(100)
    for (let i = 0; i < 100; i++) expect(r2.get(i), `r2 key ${i}`).toBe(i * 1000)
  })

  it('extend_with_overlapping_keys: 0..100 then 50..150 gives 150 keys', async () => {
    const { w0, r1 } = await start<number, number>()
    const v1 = await w0.extend(Array.from({ length: 100 }, (_, i) => [i, i] as const))
    await reachWithin(secs(5), v1, r1)
    expect(r1.size).toBe(100)
    const v2 = await w0.extend(Array.from({ length: 100 }, (_, i) => [i + 50, (i + 50) * 10] as const))
    await reachWithin(secs(5), v2, r1)
    expect([w0.size, r1.size]).toEqual([150, 150])
    for (let i = 0; i < 50; i++) expect(r1.get(i), `key ${i}`).toBe(i)
    for (let i = 50; i < 150; i++) expect(r1.get(i), `key ${i}`).toBe(i * 10)
  })

  it('remove_nonexistent_keys: removing missing keys leaves the map as it was', async () => {
    const { w0, r1 } = await start<number, number>()
    const v1 = await w0.extend(Array.from({ length: 10 }, (_, i) => [i, i * 10] as const))
    await reachWithin(secs(5), v1, r1)
    expect(r1.size).toBe(10)
    await w0.delete(100)
    const v3 = await w0.delete(999)
    await reachWithin(secs(5), v3, r1)
    expect([w0.size, r1.size]).toEqual([10, 10])
    for (let i = 0; i < 10; i++) expect(r1.get(i)).toBe(i * 10)
    const v4 = await w0.delete(5)
    await reachWithin(secs(5), v4, r1)
    expect([r1.size, r1.get(5)]).toEqual([9, undefined])
  })

  it('string_keys: 50 string keys and values; a late reader gets them all', async () => {
    const { w0, r1, late } = await start<string, string>()
    let v = w0.version
    for (let i = 0; i < 50; i++) v = await w0.set(`key-${i}`, `value-${i}`)
    await reachWithin(secs(5), v, r1)
    expect(r1.size).toBe(50)
    for (let i = 0; i < 50; i++) expect(r1.get(`key-${i}`)).toBe(`value-${i}`)
    const r2 = await late(v)
    expect(r2.size).toBe(50)
    for (let i = 0; i < 50; i++) expect(r2.get(`key-${i}`)).toBe(`value-${i}`)
  })
})

/**
 * Ports of mosaik's tests/collections/sync/depq.rs (17 functions, 33 instances; the 6 cases of 100k
 * items run with MOSAIK_LONG=1). The shared structure is in sync-suite.ts (item i has priority i); the
 * queue's own tests follow. Late readers here find a log compacted after every entry, so they install a
 * snapshot, as in mosaik; mosaik syncs only the by-key index and rebuilds the priority index, which is
 * what `restore` does here too.
 */
import { describe, expect, it } from 'vitest'
import { collections, type PriorityQueueReader, type PriorityQueueWriter } from '../../platform/node/index.ts'
import { secs } from '../support/time.ts'
import { consensus, online, reachWithin, sid, useNodes } from './support.ts'
import { lateReader, type SyncKind, syncSuite, type Value } from './sync-suite.ts'

const pool = useNodes(6)

type R = PriorityQueueReader<number, number, Value>
type W = PriorityQueueWriter<number, number, Value>

const kind: SyncKind<R, W> = {
  writer: (net, id, c) => collections.PriorityQueue.writer<number, number, Value>(net, id, { consensus: c }),
  reader: (net, id, c) => collections.PriorityQueue.reader<number, number, Value>(net, id, { consensus: c }),
  put: (w, i, value) => w.insert(i, i, value),
  putAll: (w, from, to, value) =>
    w.extend(Array.from({ length: to - from }, (_, j) => [from + j, from + j, value(from + j)] as const)),
  clear: (w) => w.clear(),
  size: (h) => h.size,
  holds: (h, i, value) => h.get(i) === value && h.getPriority(i) === i,
  consistent: (h) => {
    const n = h.size
    if (n === 0) return
    expect(h.get(0), `size ${n} but get(0) is missing`).toBeDefined()
    expect(h.has(0), `size ${n} but has(0) is false`).toBe(true)
    expect(h.getMin(), `size ${n} but there is no minimum`).toBeDefined()
    let count = 0
    for (const _ of h.ascending()) count++
    expect(count, 'iteration agrees with size').toBe(n)
  },
}

async function start() {
  const c = { ...consensus, snapshotEvery: 1 }
  const w0 = pool.track(
    collections.PriorityQueue.writer<number, number, number>(pool.nets[0]!, sid(), { consensus: c }),
  )
  const r1 = pool.track(
    collections.PriorityQueue.reader<number, number, number>(pool.nets[1]!, sid(), { consensus: c }),
  )
  await online(w0, r1)
  const late = (v: number) =>
    lateReader(
      (net, id, cc) => collections.PriorityQueue.reader<number, number, number>(net, id, { consensus: cc }),
      pool,
      c,
      v,
    )
  return { w0, r1, late }
}
const entry = (priority: number, key: number, value: number) => ({ priority, key, value })
const triples = (h: R | PriorityQueueReader<number, number, number>) =>
  [...h.ascending()].map((e) => [e.priority, e.key, e.value])

describe('collections::sync::depq', () => {
  syncSuite(kind, pool)

  it('frozen queues agree on min and max after a snapshot', async () => {
    // mosaik's `frozen` also compares min/max priorities of the writer and the late reader.
    const { w0, late } = await start()
    const v = await w0.extend(Array.from({ length: 1000 }, (_, i) => [(i * 7919) % 1000, i, i] as const))
    const r2 = await late(v)
    expect([r2.minPriority, r2.maxPriority]).toEqual([w0.minPriority, w0.maxPriority])
    expect(triples(r2)).toEqual(triples(w0))
  })

  it('mixed_mutations: insert, update_priority, update_value, remove, extend; a late reader agrees', async () => {
    const { w0, r1, late } = await start()
    await w0.insert(10, 1, 100)
    await w0.insert(20, 2, 200)
    let v = await w0.insert(30, 3, 300)
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.get(1), r1.getPriority(1)]).toEqual([3, 100, 10])
    expect(r1.getMin()).toEqual(entry(10, 1, 100))
    expect(r1.getMax()).toEqual(entry(30, 3, 300))

    v = await w0.updatePriority(1, 50)
    await reachWithin(secs(5), v, r1)
    expect([r1.getPriority(1), r1.get(1), r1.size]).toEqual([50, 100, 3])
    expect(r1.getMax()).toEqual(entry(50, 1, 100))
    expect(r1.getMin()).toEqual(entry(20, 2, 200))

    v = await w0.updateValue(2, 999)
    await reachWithin(secs(5), v, r1)
    expect([r1.get(2), r1.getPriority(2)]).toEqual([999, 20])

    v = await w0.remove(3)
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.get(3), r1.has(3)]).toEqual([2, undefined, false])

    v = await w0.extend([
      [5, 10, 500],
      [15, 20, 600],
      [25, 30, 700],
    ])
    await reachWithin(secs(5), v, r1)
    expect([r1.size, r1.get(10), r1.get(20), r1.get(30)]).toEqual([5, 500, 600, 700])
    for (const key of [1, 2, 10, 20, 30]) {
      expect(w0.get(key), `value of ${key}`).toBe(r1.get(key))
      expect(w0.getPriority(key), `priority of ${key}`).toBe(r1.getPriority(key))
    }

    const r2 = await late(v)
    expect(r2.size).toBe(5)
    expect([r2.get(1), r2.getPriority(1), r2.get(2), r2.get(3)]).toEqual([100, 50, 999, undefined])
    expect([r2.get(10), r2.get(20), r2.get(30)]).toEqual([500, 600, 700])
    expect(triples(r2)).toEqual(triples(w0))
  })

  it('overwrite_keys: every key re-inserted with a new priority and value', async () => {
    const { w0, r1, late } = await start()
    let v = w0.version
    for (let i = 0; i < 100; i++) v = await w0.insert(i, i, i)
    await reachWithin(secs(5), v, r1)
    expect(r1.size).toBe(100)
    for (let i = 0; i < 100; i++) v = await w0.insert(i * 1000, i, i * 1000)
    await reachWithin(secs(10), v, r1)
    expect([w0.size, r1.size]).toEqual([100, 100])
    for (let i = 0; i < 100; i++) {
      for (const h of [w0, r1]) {
        expect(h.get(i), `key ${i}`).toBe(i * 1000)
        expect(h.getPriority(i), `priority of ${i}`).toBe(i * 1000)
      }
    }
    const r2 = await late(v)
    expect(r2.size).toBe(100)
    for (let i = 0; i < 100; i++) {
      expect(r2.get(i), `r2 key ${i}`).toBe(i * 1000)
      expect(r2.getPriority(i), `r2 priority of ${i}`).toBe(i * 1000)
    }
  })

  it('remove_range_sync: removing priorities [20, 50) of 100 leaves 70 everywhere', async () => {
    const { w0, r1, late } = await start()
    const v1 = await w0.extend(Array.from({ length: 100 }, (_, i) => [i, i, i * 10] as const))
    await reachWithin(secs(5), v1, r1)
    expect(r1.size).toBe(100)
    const v2 = await w0.removeRange({ gte: 20, lt: 50 })
    await reachWithin(secs(5), v2, r1)
    expect(r1.size).toBe(70)
    for (let i = 0; i < 100; i++) expect(r1.has(i), `key ${i}`).toBe(i < 20 || i >= 50)
    const r2 = await late(v2)
    expect(r2.size).toBe(70)
    for (let i = 20; i < 50; i++) expect(r2.has(i), `r2 key ${i}`).toBe(false)
  })

  it('min_max_after_sync: scattered priorities; min and max agree after a snapshot', async () => {
    const { w0, r1, late } = await start()
    const v = await w0.extend([
      [500, 1, 10],
      [100, 2, 20],
      [999, 3, 30],
      [1, 4, 40],
      [750, 5, 50],
    ])
    await reachWithin(secs(5), v, r1)
    expect([r1.minPriority, r1.maxPriority]).toEqual([1, 999])
    expect(r1.getMin()).toEqual(entry(1, 4, 40))
    expect(r1.getMax()).toEqual(entry(999, 3, 30))
    const r2 = await late(v)
    expect([r2.minPriority, r2.maxPriority]).toEqual([1, 999])
    expect(r2.getMin()).toEqual(entry(1, 4, 40))
    expect(r2.getMax()).toEqual(entry(999, 3, 30))
    expect(r2.size).toBe(5)
  })
})

/**
 * Ports of mosaik's tests/collections/sync/vec.rs (14 functions, 30 instances; the 6 cases of 100k
 * items run with MOSAIK_LONG=1). The shared structure is in sync-suite.ts; the vec's own test follows.
 * Late readers here find a log compacted after every entry, so they install a snapshot, as in mosaik.
 */
import { describe, expect, it } from 'vitest'
import { collections, type VecReader, type VecWriter } from '../../platform/node/index.ts'
import { secs } from '../support/time.ts'
import { consensus, online, reachWithin, sid, useNodes } from './support.ts'
import { lateReader, type SyncKind, syncSuite, type Value } from './sync-suite.ts'

const pool = useNodes(6)

const kind: SyncKind<VecReader<Value>, VecWriter<Value>> = {
  writer: (net, id, c) => collections.Vec.writer<Value>(net, id, { consensus: c }),
  reader: (net, id, c) => collections.Vec.reader<Value>(net, id, { consensus: c }),
  // Items are positional: item i is the i-th pushed.
  put: (w, _i, value) => w.pushBack(value),
  putAll: (w, from, to, value) => w.extend(Array.from({ length: to - from }, (_, j) => value(from + j))),
  clear: (w) => w.clear(),
  size: (h) => h.length,
  holds: (h, i, value) => h.get(i) === value,
  consistent: (h) => {
    const n = h.length
    if (n === 0) return
    expect(h.get(n - 1), `length ${n} but the last item is missing`).toBeDefined()
    expect(h.get(0), `length ${n} but the first item is missing`).toBeDefined()
    expect(h.toArray(), 'iteration agrees with length').toHaveLength(n)
  },
}

describe('collections::sync::vec', () => {
  syncSuite(kind, pool)

  it('mixed_mutations: every vec mutation; a late reader sees the end state', async () => {
    const c = { ...consensus, snapshotEvery: 1 }
    const w0 = pool.track(collections.Vec.writer<number>(pool.nets[0]!, sid(), { consensus: c }))
    const r1 = pool.track(collections.Vec.reader<number>(pool.nets[1]!, sid(), { consensus: c }))
    await online(w0, r1)
    const step = async (v: number, expected: number[]) => {
      await reachWithin(secs(5), v, r1)
      expect(r1.toArray()).toEqual(expected)
    }
    await w0.pushBack(10)
    await w0.pushBack(20)
    await step(await w0.pushBack(30), [10, 20, 30])
    await step(await w0.pushFront(5), [5, 10, 20, 30])
    await step(await w0.insert(2, 15), [5, 10, 15, 20, 30])
    await step(await w0.swap(0, 4), [30, 10, 15, 20, 5])
    await step(await w0.popBack(), [30, 10, 15, 20])
    await step(await w0.popFront(), [10, 15, 20])
    await step(await w0.remove(1), [10, 20])
    await step(await w0.extend([100, 200, 300]), [10, 20, 100, 200, 300])
    const v = await w0.truncate(3)
    await step(v, [10, 20, 100])
    expect(w0.toArray()).toEqual(r1.toArray())

    const r2 = await lateReader(
      (net, id, cc) => collections.Vec.reader<number>(net, id, { consensus: cc }),
      pool,
      c,
      v,
    )
    expect(r2.toArray()).toEqual([10, 20, 100])
  })
})

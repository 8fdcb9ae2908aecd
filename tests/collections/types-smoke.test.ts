import { afterEach, describe, expect, it } from 'vitest'
import { collections, OutOfRangeError } from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

const consensus = { heartbeatMs: 50, electionTimeoutMs: 300, electionJitterMs: 150, bootstrapDelayMs: 300 }
const T = secs(10)

describe('collection types smoke', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it('vec, set, cell, once and priority queue replicate to readers', async () => {
    const [a, b] = await nodes.star(2)
    await within(T, a!.discovery.when.peers(1))
    const vw = collections.Vec.writer<string>(a!, 'v', { consensus })
    const vr = collections.Vec.reader<string>(b!, 'v', { consensus })
    const sw = collections.Set.writer<number>(a!, 's', { consensus })
    const sr = collections.Set.reader<number>(b!, 's', { consensus })
    const cw = collections.Cell.writer<{ x: number }>(a!, 'c', { consensus })
    const cr = collections.Cell.reader<{ x: number }>(b!, 'c', { consensus })
    const ow = collections.Once.writer<string>(a!, 'o', { consensus })
    const or = collections.Once.reader<string>(b!, 'o', { consensus })
    const pw = collections.PriorityQueue.writer<number, string, string>(a!, 'p', { consensus, capacity: 3 })
    const pr = collections.PriorityQueue.reader<number, string, string>(b!, 'p', { consensus, capacity: 3 })
    await within(T, Promise.all([vw, sw, cw, ow, pw].map((w) => w.when.online())))

    await vw.extend(['a', 'b', 'c'])
    await vw.pushFront('z')
    await expect(vw.insert(10, 'x')).rejects.toBeInstanceOf(OutOfRangeError)
    const vv = await vw.swap(0, 3)
    await within(T, vr.when.reaches(vv))
    expect(vr.toArray()).toEqual(['c', 'a', 'b', 'z'])

    await sw.extend([3, 1, 2, 3])
    const sv = await sw.delete(1)
    await within(T, sr.when.reaches(sv))
    expect([...sr]).toEqual([3, 2])

    await cw.set({ x: 1 })
    await cw.compareExchange({ x: 2 }, { x: 3 }) // mismatch: no-op
    const cv = await cw.compareExchange({ x: 1 }, { x: 4 })
    await within(T, cr.when.reaches(cv))
    expect(cr.get()).toEqual({ x: 4 })

    const value = or.awaitValue()
    await ow.set('first')
    const ov = await ow.set('second')
    expect(await within(T, value)).toBe('first')
    await within(T, or.when.reaches(ov))
    expect(or.get()).toBe('first')

    await pw.extend([
      [5, 'e', 'E'],
      [1, 'a', 'A'],
      [9, 'i', 'I'],
    ])
    const pv = await pw.insert(0, 'low', 'LOW') // lowest of all: evicted at once (capacity 3)
    await within(T, pr.when.reaches(pv))
    expect([...pr].map((e) => e.key)).toEqual(['a', 'e', 'i'])
    expect(pr.getMin()?.key).toBe('a')
    expect(pr.getMax()?.key).toBe('i')
    const rv = await pw.removeRange({ gte: 5 })
    await within(T, pr.when.reaches(rv))
    expect([...pr].map((e) => e.key)).toEqual(['a'])
  })
})

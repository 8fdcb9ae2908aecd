import { describe, expect, it } from 'vitest'
import { Prng, SimNetwork, Simulation } from '../../support/sim-network.ts'

describe('simulation support', () => {
  it('replays the same PRNG sequence for the same seed', () => {
    const a = new Prng(42)
    const b = new Prng(42)
    const c = new Prng(43)
    const seqA = Array.from({ length: 8 }, () => a.next())
    expect(Array.from({ length: 8 }, () => b.next())).toEqual(seqA)
    expect(Array.from({ length: 8 }, () => c.next())).not.toEqual(seqA)
    for (const x of seqA) expect(x >= 0 && x < 1).toBe(true)
  })

  it('runs events in time order, ties in scheduling order', () => {
    const sim = new Simulation(1)
    const seen: string[] = []
    sim.at(5, () => seen.push('b'))
    sim.at(1, () => seen.push('a'))
    sim.at(5, () => seen.push('c'))
    sim.at(9, () => sim.after(1, () => seen.push('e')))
    sim.at(7, () => seen.push('d'))
    sim.runUntil(20)
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'e'])
    expect(sim.now).toBe(20)
  })

  it('drops messages across a partition, and delivers in any order within one', () => {
    const sim = new Simulation(7)
    const net = new SimNetwork<number>(sim, { minDelayMs: 1, maxDelayMs: 50, dropRate: 0, duplicateRate: 0 })
    const got: number[] = []
    net.attach('b', (m) => got.push(m))
    net.attach('c', () => got.push(-1))
    net.partition([['a', 'b'], ['c']])
    for (let i = 0; i < 50; i++) {
      net.send('a', 'b', i)
      net.send('a', 'c', i)
    }
    sim.runUntil(100)
    expect(got.length).toBe(50)
    expect(got).not.toContain(-1)
    expect([...got].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(got).not.toEqual([...got].sort((x, y) => x - y)) // reordered
    net.heal()
    net.send('a', 'c', 99)
    sim.runUntil(200)
    expect(got).toContain(-1)
  })

  it('drops and duplicates at the configured rates', () => {
    const sim = new Simulation(3)
    const net = new SimNetwork<number>(sim, {
      minDelayMs: 1,
      maxDelayMs: 2,
      dropRate: 0.2,
      duplicateRate: 0.1,
    })
    let got = 0
    net.attach('b', () => got++)
    for (let i = 0; i < 10_000; i++) net.send('a', 'b', i)
    sim.runUntil(10)
    // Expected 10 000 × 0.8 × 1.1 = 8 800.
    expect(got).toBeGreaterThan(8500)
    expect(got).toBeLessThan(9100)
  })
})

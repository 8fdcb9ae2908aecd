import { describe, expect, it } from 'vitest'
import { Backoff, jittered } from '../../src/primitives/backoff.ts'

describe('Backoff', () => {
  it('grows by the multiplier up to the cap, each delay within the jitter band', () => {
    const b = new Backoff({
      initialMs: 100,
      multiplier: 2,
      jitter: 0.5,
      maxIntervalMs: 1_000,
      maxElapsedMs: Infinity,
    })
    const bases = [100, 200, 400, 800, 1_000, 1_000]
    for (const base of bases) {
      const d = b.next()!
      expect(d).toBeGreaterThanOrEqual(base * 0.5)
      expect(d).toBeLessThanOrEqual(base * 1.5)
    }
  })

  it('without jitter gives exact delays, and reset starts over', () => {
    const b = new Backoff({ initialMs: 10, multiplier: 3, jitter: 0, maxElapsedMs: Infinity })
    expect([b.next(), b.next(), b.next()]).toEqual([10, 30, 90])
    b.reset()
    expect(b.next()).toBe(10)
  })

  it('gives up after maxElapsedMs since the last reset, and reset revives it', () => {
    let now = 0
    const b = new Backoff({ initialMs: 10, jitter: 0, maxElapsedMs: 1_000 }, () => now)
    expect(b.next()).toBe(10)
    now = 1_001
    expect(b.next()).toBeUndefined()
    b.reset()
    expect(b.next()).toBe(10)
  })

  it("defaults to mosaik's reconnect policy: 500 ms, ×1.5, ±50 %, 60 s cap, 5 min", () => {
    let now = 0
    const b = new Backoff({}, () => now)
    const first = b.next()!
    expect(first).toBeGreaterThanOrEqual(250)
    expect(first).toBeLessThanOrEqual(750)
    for (let i = 0; i < 50; i++) expect(b.next()!).toBeLessThanOrEqual(90_000)
    now = 300_001
    expect(b.next()).toBeUndefined()
  })

  it('jittered stays within its band', () => {
    for (let i = 0; i < 1_000; i++) {
      const v = jittered(100, 0.2)
      expect(v).toBeGreaterThanOrEqual(80)
      expect(v).toBeLessThanOrEqual(120)
    }
  })
})

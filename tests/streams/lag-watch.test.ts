/** The lag watch keeps time with the node's clock and timers, so a test or simulation can drive it. */
import { describe, expect, it } from 'vitest'
import type { Timers } from '../../src/primitives/time.ts'
import { LagWatch } from '../../src/streams/lag.ts'
import { Probation } from '../../src/streams/probation.ts'
import type { Subscription } from '../../src/streams/subscription.ts'

/** Timers that fire only when the test says so. */
class ManualTimers implements Timers {
  readonly armed = new Set<{ fn: () => void; ms: number }>()
  setTimeout(fn: () => void, ms: number): () => void {
    const t = { fn, ms }
    this.armed.add(t)
    return () => this.armed.delete(t)
  }
  fireAll(): void {
    const due = [...this.armed]
    this.armed.clear()
    for (const t of due) t.fn()
  }
}

const sub = (peerId: string, queued: number) =>
  ({
    queued,
    lagging: false,
    hasRead: true,
    fullSince: undefined,
    record: { peerId },
  }) as unknown as Subscription

describe('LagWatch', () => {
  it('times a full queue on the injected clock and timers, and stops them on close', () => {
    let now = 1_000_000
    const timers = new ManualTimers()
    const lagged: string[] = []
    const slow = sub('slow', 8)
    const keeper = sub('keeper', 0)
    const watch = new LagWatch(
      [slow, keeper],
      { bufferSize: 8, lagTimeoutMs: 500, probation: new Probation(500), now: () => now, timers },
      { lagged: (s, _at, why) => lagged.push(`${s.record.peerId}: ${why}`), checked: () => {} },
    )
    expect(watch.watch()).toBe(false)
    expect([...timers.armed].map((t) => t.ms)).toEqual([500])
    // The timer fired early (by the injected clock, 499 ms passed): not lagging yet.
    now += 499
    timers.fireAll()
    expect(lagged).toEqual([])
    now += 1
    watch.watch()
    timers.fireAll()
    expect(lagged).toEqual(['slow: queue full for 500 ms'])

    const other = sub('other', 8)
    const second = new LagWatch(
      [other, keeper],
      { bufferSize: 8, lagTimeoutMs: 500, probation: new Probation(500), now: () => now, timers },
      { lagged: () => lagged.push('after close'), checked: () => {} },
    )
    second.watch()
    expect(timers.armed.size).toBe(1)
    second.close()
    expect(timers.armed.size).toBe(0)
  })
})

/** The lag watch keeps time with the node's clock and timers, so a test or simulation can drive it. */
import { describe, expect, it } from 'vitest'
import { LagWatch } from '../../src/streams/lag.ts'
import { Probation } from '../../src/streams/probation.ts'
import type { Subscription } from '../../src/streams/subscription.ts'
import { ManualTime } from '../support/time.ts'

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
    const time = new ManualTime()
    const lagged: string[] = []
    const slow = sub('slow', 8)
    const keeper = sub('keeper', 0)
    const watch = new LagWatch(
      [slow, keeper],
      {
        bufferSize: 8,
        lagTimeoutMs: 500,
        probation: new Probation(500),
        now: () => time.now(),
        timers: time,
      },
      { lagged: (s, _at, why) => lagged.push(`${s.record.peerId}: ${why}`), checked: () => {} },
    )
    expect(watch.watch()).toBe(false)
    expect(time.pending).toBe(1)
    // 499 ms on the injected clock: not lagging yet.
    time.advance(499)
    expect(lagged).toEqual([])
    time.advance(1)
    expect(lagged).toEqual(['slow: queue full for 500 ms'])

    const other = sub('other', 8)
    const second = new LagWatch(
      [other, keeper],
      {
        bufferSize: 8,
        lagTimeoutMs: 500,
        probation: new Probation(500),
        now: () => time.now(),
        timers: time,
      },
      { lagged: () => lagged.push('after close'), checked: () => {} },
    )
    second.watch()
    expect(time.pending).toBe(1)
    second.close()
    expect(time.pending).toBe(0)
  })
})

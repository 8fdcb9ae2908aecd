import { describe, expect, it } from 'vitest'
import { AbortError } from '../../platform/node/index.ts'
import { delay } from '../../src/primitives/abort.ts'
import { Scope } from '../../src/primitives/scope.ts'
import { systemClock, systemTimers } from '../../src/primitives/time.ts'
import { ManualTime } from '../support/time.ts'

describe('Clock and Timers', () => {
  it('the system clock is monotonic and the system timers cancel', async () => {
    const a = systemClock.now()
    expect(systemClock.now()).toBeGreaterThanOrEqual(a)
    let ran = false
    const cancel = systemTimers.setTimeout(() => {
      ran = true
    }, 1)
    cancel()
    cancel()
    await new Promise((resolve) => systemTimers.setTimeout(() => resolve(undefined), 5))
    expect(ran).toBe(false)
  })

  it('a Scope runs its timers, and its children’s, on the timers it was given', async () => {
    const time = new ManualTime()
    const scope = new Scope(undefined, time)
    const child = scope.child()
    const ran: string[] = []
    scope.setTimeout(() => ran.push(`a@${time.now()}`), 10)
    child.setTimeout(() => ran.push(`b@${time.now()}`), 20)
    const cancel = scope.setTimeout(() => ran.push('never'), 15)
    cancel()
    scope.every(30, () => ran.push(`every@${time.now()}`))
    time.advance(5)
    expect(ran).toEqual([])
    time.advance(60)
    expect(ran).toEqual(['a@10', 'b@20', 'every@30', 'every@60'])
    await scope.close()
    expect(time.pending).toBe(0)
    time.advance(100)
    expect(ran).toHaveLength(4)
  })

  it('delay waits on the given timers and cancels its timer on abort', async () => {
    const time = new ManualTime()
    let done = false
    const waiting = delay(100, undefined, time).then(() => {
      done = true
    })
    time.advance(99)
    await Promise.resolve()
    expect(done).toBe(false)
    time.advance(1)
    await waiting
    expect(done).toBe(true)

    const controller = new AbortController()
    const aborted = delay(100, controller.signal, time)
    expect(time.pending).toBe(1)
    controller.abort('stop')
    await expect(aborted).rejects.toBeInstanceOf(AbortError)
    expect(time.pending).toBe(0)
  })
})

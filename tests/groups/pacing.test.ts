import { describe, expect, it } from 'vitest'
import { Pacer, TickTimer } from '../../src/groups/worker/pacing.ts'
import { manualRuntime } from '../support/time.ts'

const microtasksDrained = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('Pacer', () => {
  it('runs the loop in a microtask while the event loop keeps reaching macrotasks', async () => {
    const { rt, time, runMacrotasks } = manualRuntime()
    const pacer = new Pacer(rt)
    const ran: string[] = []
    pacer.schedule(() => ran.push('first'))
    await microtasksDrained()
    expect(ran).toEqual(['first'])
    time.advance(50)
    runMacrotasks()
    pacer.schedule(() => ran.push('second'))
    await microtasksDrained()
    expect(ran).toEqual(['first', 'second'])
  })

  it('hands the loop to a macrotask once microtasks alone ran for 100 ms', async () => {
    const { rt, time, tasks, runMacrotasks } = manualRuntime()
    const pacer = new Pacer(rt)
    time.advance(101) // no macrotask ran since the pacer was made
    let ran = false
    pacer.schedule(() => {
      ran = true
    })
    await microtasksDrained()
    expect(ran).toBe(false)
    expect(tasks.length).toBeGreaterThan(0)
    runMacrotasks()
    expect(ran).toBe(true)
  })

  it('lets a caller go on at once until microtasks alone ran for 10 ms, then pauses all of them once', async () => {
    const { rt, time, runMacrotasks } = manualRuntime()
    const pacer = new Pacer(rt)
    expect(pacer.breathe()).toBeUndefined()
    time.advance(11)
    const a = pacer.breathe()
    const b = pacer.breathe()
    expect(a).toBeInstanceOf(Promise)
    expect(b).toBe(a) // one shared pause keeps pipelined callers batched
    let resumed = false
    void a!.then(() => {
      resumed = true
    })
    await microtasksDrained()
    expect(resumed).toBe(false)
    runMacrotasks()
    await microtasksDrained()
    expect(resumed).toBe(true)
    // The macrotask ran: callers go on at once again.
    expect(pacer.breathe()).toBeUndefined()
  })
})

describe('TickTimer', () => {
  it('keeps a timer that fires early enough and replaces it only for an earlier deadline', () => {
    const { rt, time } = manualRuntime()
    const timer = new TickTimer(rt)
    const fired: number[] = []
    const fire = () => fired.push(time.now())
    timer.arm(100, fire)
    timer.arm(300, fire) // later: the armed timer already fires in time
    expect(time.pending).toBe(1)
    timer.arm(40, fire) // earlier: replaces it
    time.advance(1000)
    expect(fired).toEqual([40])
    timer.arm(10, fire) // nothing armed after firing: arms again
    time.advance(10)
    expect(fired).toEqual([40, 1010])
  })

  it('fires nothing once disarmed', () => {
    const { rt, time } = manualRuntime()
    const timer = new TickTimer(rt)
    let fired = 0
    timer.arm(5, () => fired++)
    timer.disarm()
    time.advance(100)
    expect(fired).toBe(0)
    timer.arm(5, () => fired++)
    time.advance(5)
    expect(fired).toBe(1)
  })
})

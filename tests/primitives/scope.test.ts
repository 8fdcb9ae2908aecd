import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Scope } from '../../src/primitives/scope.ts'

describe('Scope', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('runs a timer once, and not after it was cancelled or the scope closed', async () => {
    const scope = new Scope()
    const ran: string[] = []
    scope.setTimeout(() => ran.push('a'), 10)
    const cancel = scope.setTimeout(() => ran.push('b'), 10)
    cancel()
    scope.setTimeout(() => ran.push('c'), 50)
    await vi.advanceTimersByTimeAsync(20)
    expect(ran).toEqual(['a'])
    await scope.close()
    await vi.advanceTimersByTimeAsync(100)
    expect(ran).toEqual(['a'])
    expect(vi.getTimerCount()).toBe(0)
    // A closed scope takes no new timer.
    scope.setTimeout(() => ran.push('d'), 1)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('every() repeats, re-reads its interval, and stops', async () => {
    const scope = new Scope()
    let interval = 10
    let n = 0
    const stop = scope.every(
      () => interval,
      () => {
        n++
        interval = 20
      },
    )
    await vi.advanceTimersByTimeAsync(10)
    expect(n).toBe(1)
    await vi.advanceTimersByTimeAsync(19)
    expect(n).toBe(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(n).toBe(2)
    stop()
    await vi.advanceTimersByTimeAsync(100)
    expect(n).toBe(2)
    await scope.close()
  })

  it('reports a throwing timer and a failing task to onError, never as unhandled', async () => {
    const errors: unknown[] = []
    const scope = new Scope((err) => errors.push(err))
    scope.setTimeout(() => {
      throw new Error('timer')
    }, 1)
    scope.spawn(Promise.reject(new Error('task')))
    scope.spawn(async () => {
      throw new Error('lazy task')
    })
    await vi.advanceTimersByTimeAsync(5)
    expect(errors.map((e) => (e as Error).message).sort()).toEqual(['lazy task', 'task', 'timer'])
    await scope.close()
  })

  it('a task failing after close is not reported: it failed because its owner went away', async () => {
    const errors: unknown[] = []
    const scope = new Scope((err) => errors.push(err))
    scope.spawn(async () => {
      await new Promise((r) => setTimeout(r, 100))
      throw new Error('late')
    })
    const closing = scope.close(1_000)
    await vi.advanceTimersByTimeAsync(200)
    await closing
    expect(errors).toEqual([])
  })

  it('close aborts the signal, closes children, and waits for tasks at most waitMs', async () => {
    const scope = new Scope()
    const child = scope.child()
    const grandchild = child.child()
    let settled = false
    scope.spawn(new Promise(() => {})) // never settles
    scope.spawn(async () => {
      await new Promise((r) => setTimeout(r, 50))
      settled = true
    })
    const closing = scope.close(500)
    expect(scope.signal.aborted).toBe(true)
    expect(child.closed && grandchild.closed).toBe(true)
    await vi.advanceTimersByTimeAsync(500)
    await closing
    expect(settled).toBe(true)
    // A child of a closed scope is born closed.
    expect(scope.child().closed).toBe(true)
  })

  it('a closed child leaves its parent', async () => {
    const scope = new Scope()
    const child = scope.child()
    await child.close()
    child.setTimeout(() => {}, 10)
    expect(vi.getTimerCount()).toBe(0)
    expect(scope.closed).toBe(false)
    await scope.close()
  })
})

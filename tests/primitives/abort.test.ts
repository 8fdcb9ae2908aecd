import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { anySignal, delay, raceSignal } from '../../src/primitives/abort.ts'
import { AbortError, TimeoutError } from '../../src/primitives/errors.ts'

describe('abort helpers', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('raceSignal passes the promise through, or rejects as soon as the signal aborts', async () => {
    expect(await raceSignal(Promise.resolve(1), undefined)).toBe(1)
    expect(await raceSignal(Promise.resolve(2), new AbortController().signal)).toBe(2)
    await expect(raceSignal(Promise.reject(new Error('x')), new AbortController().signal)).rejects.toThrow(
      'x',
    )
    // A reason that is an Error (abort() with none gives a DOMException named AbortError) is kept;
    // any other reason becomes mosaik's AbortError carrying it.
    const controller = new AbortController()
    const pending = raceSignal(new Promise(() => {}), controller.signal)
    controller.abort()
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' })
    const other = new AbortController()
    const pendingOther = raceSignal(new Promise(() => {}), other.signal)
    other.abort('shutting down')
    await expect(pendingOther).rejects.toSatisfy(
      (e) => e instanceof AbortError && e.message === 'shutting down',
    )
    // Already aborted: rejects at once; the raced promise's later failure is not unhandled.
    await expect(
      raceSignal(Promise.reject(new Error('late')), AbortSignal.abort(new TimeoutError())),
    ).rejects.toBeInstanceOf(TimeoutError)
  })

  it('delay waits, or rejects on abort and clears its timer', async () => {
    const done = vi.fn()
    void delay(100).then(done)
    await vi.advanceTimersByTimeAsync(99)
    expect(done).not.toHaveBeenCalled()
    await vi.advanceTimersByTimeAsync(1)
    expect(done).toHaveBeenCalled()

    const controller = new AbortController()
    const waiting = delay(10_000, controller.signal)
    controller.abort('bye')
    await expect(waiting).rejects.toBeInstanceOf(AbortError)
    expect(vi.getTimerCount()).toBe(0)
    await expect(delay(1, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('anySignal aborts when any of its signals does, and skips missing ones', () => {
    const a = new AbortController()
    const b = new AbortController()
    const only = anySignal(undefined, a.signal)
    expect(only).toBe(a.signal)
    const both = anySignal(a.signal, undefined, b.signal)
    expect(both.aborted).toBe(false)
    b.abort(new TimeoutError())
    expect(both.aborted).toBe(true)
    expect(both.reason).toBeInstanceOf(TimeoutError)
  })
})

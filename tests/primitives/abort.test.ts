import { getEventListeners } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { AbortError, TimeoutError } from '../../platform/node/index.ts'
import { abortable, deadline, delay, linkSignals, raceSignal } from '../../src/primitives/abort.ts'
import { Inbox } from '../../src/streams/inbox.ts'
import { SendQueue } from '../../src/streams/send-queue.ts'

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

  it('abortable cancels the wait on abort, rejects with AbortError, and drops its listener', async () => {
    const controller = new AbortController()
    const cancel = vi.fn()
    const waiting = abortable<number>(controller.signal, () => cancel)
    controller.abort('stop')
    await expect(waiting).rejects.toSatisfy(
      (e) => e instanceof AbortError && e.code === 'ABORTED' && e.message === 'stop',
    )
    expect(cancel).toHaveBeenCalledOnce()

    // Settling removes the listener: a later abort cancels nothing.
    const later = new AbortController()
    const remove = vi.spyOn(later.signal, 'removeEventListener')
    const cancelLate = vi.fn()
    let settle: (v: number) => void = () => {}
    const done = abortable<number>(later.signal, (resolve) => {
      settle = resolve
      return cancelLate
    })
    settle(7)
    expect(await done).toBe(7)
    expect(remove).toHaveBeenCalledWith('abort', expect.any(Function))
    later.abort()
    expect(cancelLate).not.toHaveBeenCalled()

    // Already aborted: the wait never starts. Settled at once: no listener is added.
    const start = vi.fn()
    await expect(abortable(AbortSignal.abort('gone'), start)).rejects.toBeInstanceOf(AbortError)
    expect(start).not.toHaveBeenCalled()
    const idle = new AbortController()
    const add = vi.spyOn(idle.signal, 'addEventListener')
    expect(
      await abortable<number>(idle.signal, (resolve) => {
        resolve(1)
        return undefined
      }),
    ).toBe(1)
    expect(add).not.toHaveBeenCalled()
  })

  it('every abortable wait of the SDK rejects the same way', async () => {
    const reasons = ['string reason', undefined, new TimeoutError()]
    for (const reason of reasons) {
      const waits: Promise<unknown>[] = []
      const controller = new AbortController()
      waits.push(raceSignal(new Promise(() => {}), controller.signal))
      waits.push(delay(1_000, controller.signal))
      waits.push(new Inbox<number>(4).wait(controller.signal))
      waits.push(new SendQueue().push({}, new Uint8Array(1), 1, controller.signal))
      controller.abort(reason)
      const errors = await Promise.all(
        waits.map((w) =>
          w.then(
            () => 'resolved',
            (e: unknown) => e,
          ),
        ),
      )
      const expected =
        reason === undefined
          ? { name: 'AbortError' }
          : reason instanceof Error
            ? reason
            : new AbortError(reason)
      for (const err of errors) {
        if (reason instanceof Error) expect(err).toBe(expected)
        else expect(err).toMatchObject(expected)
        if (typeof reason === 'string') expect(err).toMatchObject({ code: 'ABORTED', message: reason })
      }
    }
  })

  it('linkSignals aborts with the reason of whichever source aborts first, and skips missing ones', () => {
    const a = new AbortController()
    const b = new AbortController()
    const only = linkSignals(undefined, a.signal)
    expect(only.signal).toBe(a.signal)
    const both = linkSignals(a.signal, undefined, b.signal)
    expect(both.signal.aborted).toBe(false)
    b.abort(new TimeoutError())
    expect(both.signal.aborted).toBe(true)
    expect(both.signal.reason).toBeInstanceOf(TimeoutError)
    // Its listener left the source that did not abort.
    expect(getEventListeners(a.signal, 'abort')).toHaveLength(0)
    const late = linkSignals(a.signal, b.signal)
    expect(late.signal.aborted).toBe(true)
    expect(late.signal.reason).toBeInstanceOf(TimeoutError)
  })

  it('linkSignals leaves nothing on a long-lived source once cleared (AbortSignal.any keeps what it made)', () => {
    const scope = new AbortController()
    for (let i = 0; i < 1000; i++) {
      const call = deadline(10_000)
      const linked = linkSignals(scope.signal, call.signal)
      linked.signal.addEventListener('abort', () => {})
      linked.clear()
      call.clear()
    }
    expect(getEventListeners(scope.signal, 'abort')).toHaveLength(0)
    // Cleared, it no longer follows its sources.
    const linked = linkSignals(scope.signal, new AbortController().signal)
    linked.clear()
    scope.abort()
    expect(linked.signal.aborted).toBe(false)
  })

  it('no code the SDK ships calls AbortSignal.any', () => {
    const root = fileURLToPath(new URL('../../', import.meta.url))
    const calls = ['src', 'platform', 'relay'].flatMap((dir) =>
      readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts'))
        .filter((f) => readFileSync(join(root, dir, f), 'utf8').includes('AbortSignal.any('))
        .map((f) => `${dir}/${f}`),
    )
    expect(calls).toEqual([])
  })

  it('deadline aborts with a TimeoutError like AbortSignal.timeout, and clear drops its timer', () => {
    const late = deadline(50)
    vi.advanceTimersByTime(49)
    expect(late.signal.aborted).toBe(false)
    vi.advanceTimersByTime(1)
    expect(late.signal.aborted).toBe(true)
    expect(late.signal.reason).toMatchObject({ name: 'TimeoutError' })

    const cleared = deadline(50)
    expect(vi.getTimerCount()).toBe(1)
    cleared.clear()
    cleared.clear()
    expect(vi.getTimerCount()).toBe(0)
    vi.advanceTimersByTime(100)
    expect(cleared.signal.aborted).toBe(false)

    // on injected timers: the deadline runs on them, and clear cancels there
    const cancel = vi.fn()
    const timers = { setTimeout: vi.fn((_fn: () => void, _ms: number) => cancel) }
    const injected = deadline(20, timers)
    expect(timers.setTimeout).toHaveBeenCalledWith(expect.any(Function), 20)
    expect(vi.getTimerCount()).toBe(0)
    timers.setTimeout.mock.calls[0]![0]()
    expect(injected.signal.reason).toMatchObject({ name: 'TimeoutError' })
    injected.clear()
    expect(cancel).toHaveBeenCalledOnce()
  })
})

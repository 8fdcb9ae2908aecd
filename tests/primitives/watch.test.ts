import { describe, expect, it } from 'vitest'
import { AbortError, ClosedError, TimeoutError } from '../../platform/node/index.ts'
import { Watch } from '../../src/primitives/watch.ts'

describe('Watch', () => {
  it('until resolves at once when the predicate holds, else on the first value that makes it hold', async () => {
    const w = new Watch(1)
    expect(await w.until((v) => v >= 1)).toBe(1)
    const later = w.until((v) => v >= 3)
    w.set(2)
    w.set(3)
    w.set(4)
    expect(await later).toBe(3)
  })

  it('changed resolves on the next change only; setting an equal value is no change', async () => {
    const w = new Watch({ n: 1 }, (a, b) => a.n === b.n)
    let fired = false
    const next = w.changed().then((v) => {
      fired = true
      return v
    })
    w.set({ n: 1 })
    await Promise.resolve()
    expect(fired).toBe(false)
    w.set({ n: 2 })
    expect(await next).toEqual({ n: 2 })
  })

  it('close rejects every waiter and every later wait with the reason', async () => {
    const w = new Watch(0)
    const a = w.until((v) => v > 0)
    const b = w.changed()
    w.close()
    await expect(a).rejects.toBeInstanceOf(ClosedError)
    await expect(b).rejects.toBeInstanceOf(ClosedError)
    await expect(w.until(() => true)).rejects.toBeInstanceOf(ClosedError)
    const custom = new Watch(0)
    custom.close(new TimeoutError('gone'))
    await expect(custom.changed()).rejects.toThrow('gone')
    // A closed watch ignores new values.
    w.set(5)
    expect(w.value).toBe(0)
  })

  it('an aborted wait rejects with the abort reason as an Error and leaves no waiter behind', async () => {
    const w = new Watch(0)
    const controller = new AbortController()
    const waiting = w.until((v) => v > 10, { signal: controller.signal })
    controller.abort('stop')
    await expect(waiting).rejects.toBeInstanceOf(AbortError)
    // An Error reason is kept as it is.
    await expect(w.changed({ signal: AbortSignal.abort(new TimeoutError()) })).rejects.toBeInstanceOf(
      TimeoutError,
    )
    // Later values reach nobody (no leaked waiter), and new waits still work.
    w.set(11)
    expect(await w.until((v) => v > 10, { signal: new AbortController().signal })).toBe(11)
  })
})

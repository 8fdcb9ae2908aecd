import { describe, expect, it } from 'vitest'
import { ReadyGate } from '../../src/groups/worker/ready-gate.ts'

describe('the gate between Readys', () => {
  it('runs a call at once while no Ready is being handled', async () => {
    const gate = new ReadyGate()
    const order: string[] = []
    const result = gate.run(() => {
      order.push('call')
      return 7
    })
    order.push('after run')
    expect(await result).toBe(7)
    expect(order).toEqual(['call', 'after run'])
  })

  it('holds calls made while a Ready is handled until it is done, then runs them in order', async () => {
    const gate = new ReadyGate()
    const order: string[] = []
    const disk = Promise.withResolvers<void>()
    const handled = gate.handle(async () => {
      order.push('ready taken')
      await disk.promise
      order.push('ready done')
    })
    const first = gate.run(() => order.push('first'))
    const second = gate.run(() => order.push('second'))
    await new Promise((r) => setImmediate(r))
    expect(order).toEqual(['ready taken'])
    disk.resolve()
    await handled
    // Both ran before handle() returned, so before the loop can take the next Ready.
    expect(order).toEqual(['ready taken', 'ready done', 'first', 'second'])
    await Promise.all([first, second])
  })

  it('runs the held calls when handling the Ready failed, and rethrows that failure', async () => {
    const gate = new ReadyGate()
    let ran = false
    const handled = gate.handle(async () => {
      await Promise.resolve()
      throw new Error('disk failed')
    })
    const held = gate.run(() => {
      ran = true
      return 'ran'
    })
    await expect(handled).rejects.toThrow('disk failed')
    expect(ran).toBe(true)
    expect(await held).toBe('ran')
  })

  it('rejects the run of a held call that throws, without disturbing the others', async () => {
    const gate = new ReadyGate()
    const disk = Promise.withResolvers<void>()
    const handled = gate.handle(() => disk.promise)
    const failing = gate.run(() => {
      throw new Error('refused')
    })
    const fine = gate.run(() => 'ok')
    disk.resolve()
    await handled
    await expect(failing).rejects.toThrow('refused')
    expect(await fine).toBe('ok')
  })
})

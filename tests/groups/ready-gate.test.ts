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

  it('holds calls made while a Ready is handled until it ends, then runs them in order', async () => {
    const gate = new ReadyGate()
    const order: string[] = []
    gate.begin()
    const first = gate.run(() => order.push('first'))
    const second = gate.run(() => order.push('second'))
    await new Promise((r) => setImmediate(r))
    expect(order).toEqual([])
    order.push('ready done')
    gate.end()
    // Both ran inside end(), so before the loop can take the next Ready.
    expect(order).toEqual(['ready done', 'first', 'second'])
    await Promise.all([first, second])
    // Once the Ready ended, calls run at once again.
    await gate.run(() => order.push('third'))
    expect(order.at(-1)).toBe('third')
  })

  it('rejects the run of a held call that throws, without disturbing the others', async () => {
    const gate = new ReadyGate()
    gate.begin()
    const failing = gate.run(() => {
      throw new Error('refused')
    })
    const fine = gate.run(() => 'ok')
    gate.end()
    await expect(failing).rejects.toThrow('refused')
    expect(await fine).toBe('ok')
  })
})

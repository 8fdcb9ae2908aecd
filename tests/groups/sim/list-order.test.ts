/**
 * The simulation's linearizability check in the members' applied order (tests/support/list-order.ts),
 * against hand-made histories and, on random ones, against the general search: whatever it accepts, the
 * search accepts too, and every history built from a real execution it accepts.
 */
import { describe, expect, it } from 'vitest'
import { listModel } from '../../support/group-sim.ts'
import { checkLinearizable } from '../../support/linearizability.ts'
import { checkListInOrder, type ListOp } from '../../support/list-order.ts'
import { Prng } from '../../support/sim-network.ts'

const w = (value: number, call: number, ret?: number): ListOp => ({
  client: 'c',
  input: { kind: 'write', value },
  call,
  return: ret,
  output: ret === undefined ? undefined : null,
})
const r = (n: number, last: number | null, call: number, ret: number): ListOp => ({
  client: 'c',
  input: { kind: 'read' },
  call,
  return: ret,
  output: [n, last],
})

describe('linearizability of a list history in the applied order', () => {
  it('accepts overlapping writes in either order and reads between them', () => {
    const ops = [w(1, 1, 6), w(2, 2, 5), r(1, 2, 3, 4), r(2, 1, 7, 8)]
    expect(checkListInOrder(ops, [2, 1])).toBeUndefined()
    expect(checkListInOrder([w(1, 1, 6), w(2, 2, 5)], [1, 2])).toBeUndefined()
  })

  it('refuses an order against real time: a write applied before one that returned before it was called', () => {
    expect(checkListInOrder([w(1, 1, 2), w(2, 3, 4)], [2, 1])).toMatch(/takes effect after/)
  })

  it('refuses a stale read: after a write returned, a read sees the state before it', () => {
    expect(checkListInOrder([w(1, 1, 2), r(0, null, 3, 4)], [1])).toMatch(/a read that did not see it/)
  })

  it('refuses a read of a value the members never applied, or at another position', () => {
    expect(checkListInOrder([w(1, 1, undefined), r(1, 1, 2, 3)], [])).toMatch(/saw 1 values, but 0/)
    expect(checkListInOrder([w(1, 1, 4), w(2, 2, 5), r(1, 2, 6, 7)], [1, 2])).toMatch(
      /which the members applied as 1/,
    )
  })

  it('places an unknown write anywhere after its call, and a write returned late before an early read', () => {
    expect(checkListInOrder([w(1, 1), r(0, null, 2, 3), r(1, 1, 4, 5)], [1])).toBeUndefined()
    expect(checkListInOrder([w(1, 1, 10), r(1, 1, 2, 3), r(1, 1, 4, 5)], [1])).toBeUndefined()
  })

  it('agrees with the general search on 3 000 random histories, valid and damaged', () => {
    const prng = new Prng(7)
    let accepted = 0
    let damaged = 0
    for (let round = 0; round < 3000; round++) {
      const { ops, order } = randomHistory(prng)
      const valid = checkListInOrder(ops, order)
      // Built from a real execution in that order: accepted.
      expect(valid).toBeUndefined()
      accepted++
      const broken = damage(prng, ops)
      const inOrder = checkListInOrder(broken, order)
      const search = checkLinearizable(listModel, broken, { maxSteps: 200_000 })
      // Whatever the applied-order check accepts, some order explains: the search agrees.
      if (inOrder === undefined) expect(search.linearizable).not.toBe(false)
      if (search.linearizable === false) {
        expect(inOrder).toBeDefined()
        damaged++
      }
    }
    expect(accepted).toBe(3000)
    expect(damaged).toBeGreaterThan(300)
  })
})

/** A few clients call writes and reads concurrently on a list; each takes effect at a random point. */
function randomHistory(prng: Prng): { ops: ListOp[]; order: number[] } {
  type Pending = { op: ListOp; at: number }
  const events: { time: number; apply: () => void }[] = []
  const ops: ListOp[] = []
  const applied: number[] = []
  let value = 0
  const count = 3 + prng.int(10)
  for (let i = 0; i < count; i++) {
    const call = prng.between(0, 100)
    const effect = call + prng.between(0, 20)
    const ret = effect + prng.between(0, 20)
    const unknown = prng.chance(0.1)
    const isWrite = prng.chance(0.5)
    const op: ListOp = isWrite
      ? { client: i, input: { kind: 'write', value: ++value }, call, return: ret, output: null }
      : { client: i, input: { kind: 'read' }, call, return: ret, output: null }
    const p: Pending = { op, at: effect }
    ops.push(op)
    // An unknown write may or may not take effect; an unknown read is left out (it has no effect).
    if (isWrite && unknown && prng.chance(0.5)) {
      op.return = undefined
      op.output = undefined
      continue
    }
    events.push({
      time: p.at,
      apply: () => {
        if (op.input.kind === 'write') applied.push(op.input.value)
        else op.output = [applied.length, applied.at(-1) ?? null]
      },
    })
    if (isWrite && unknown) {
      op.return = undefined
      op.output = undefined
    }
  }
  events.sort((a, b) => a.time - b.time)
  for (const e of events) e.apply()
  return { ops: ranked(ops), order: applied }
}

/** Distinct integer times, as History records them. */
function ranked(ops: ListOp[]): ListOp[] {
  const times = ops
    .flatMap((o) => [o.call, ...(o.return === undefined ? [] : [o.return])])
    .sort((a, b) => a - b)
  const rank = new Map(times.map((t, i) => [t, i + 1]))
  for (const o of ops) {
    o.call = rank.get(o.call)!
    if (o.return !== undefined) o.return = rank.get(o.return)!
  }
  return ops
}

/** One change: a read's answer, or a call moved later than the return of another. */
function damage(prng: Prng, ops: readonly ListOp[]): ListOp[] {
  const copy = ops.map((o) => ({ ...o }))
  const reads = copy.filter((o) => o.input.kind === 'read' && Array.isArray(o.output))
  if (reads.length > 0 && prng.chance(0.6)) {
    const read = prng.pick(reads)
    const [n] = read.output as [number, number | null]
    const m = Math.max(0, n + (prng.chance(0.5) ? 1 : -1))
    const writes = copy.filter((o) => o.input.kind === 'write')
    const last = m === 0 || writes.length === 0 ? null : (prng.pick(writes).input as { value: number }).value
    read.output = [m, last]
  } else {
    const a = prng.pick(copy)
    const b = prng.pick(copy)
    if (a.return !== undefined && b.return !== undefined && a !== b) {
      const span = b.return - b.call
      b.call = a.return + 0.5
      b.return = b.call + span
    }
  }
  return ranked(copy)
}

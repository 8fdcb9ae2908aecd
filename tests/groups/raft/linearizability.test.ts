import { describe, expect, it } from 'vitest'
import {
  type CounterInput,
  checkLinearizable,
  counterModel,
  History,
  type Model,
  type Operation,
  type RegisterInput,
  registerModel,
} from '../../support/linearizability.ts'

type RegOp = Operation<RegisterInput, number | null>
const write = (value: number, call: number, ret: number | undefined, client = 0): RegOp =>
  ret === undefined
    ? { client, input: { kind: 'write', value }, call }
    : { client, input: { kind: 'write', value }, call, return: ret, output: null }
const read = (value: number | null, call: number, ret: number, client = 1): RegOp => ({
  client,
  input: { kind: 'read' },
  call,
  return: ret,
  output: value,
})
const linearizable = (ops: RegOp[]) => checkLinearizable(registerModel, ops).linearizable

describe('linearizability checker: register', () => {
  it('accepts a sequential history', () => {
    expect(
      linearizable([read(null, 1, 2), write(1, 3, 4), read(1, 5, 6), write(2, 7, 8), read(2, 9, 10)]),
    ).toBe(true)
  })

  it('accepts a read concurrent with a write seeing either value', () => {
    expect(linearizable([write(1, 1, 2), write(2, 3, 6), read(1, 4, 5)])).toBe(true)
    expect(linearizable([write(1, 1, 2), write(2, 3, 6), read(2, 4, 5)])).toBe(true)
  })

  it('rejects a stale read after a write completed', () => {
    expect(linearizable([write(1, 1, 2), write(2, 3, 4), read(1, 5, 6)])).toBe(false)
  })

  it('rejects reads that see two writes in both orders', () => {
    // Both writes are concurrent with everything, but the reads do not overlap: the first read fixes 2
    // before 1, the second 1 before 2.
    const ops = [write(1, 1, 20, 0), write(2, 1, 20, 1), read(2, 2, 3, 2), read(1, 4, 5, 2), read(2, 6, 7, 3)]
    expect(linearizable(ops)).toBe(false)
    expect(linearizable(ops.slice(0, 4))).toBe(true)
  })

  it('rejects a read of a value nobody wrote', () => {
    expect(linearizable([write(1, 1, 2), read(7, 3, 4)])).toBe(false)
  })

  it('lets a write with an unknown outcome take effect or not', () => {
    expect(linearizable([write(1, 1, 2), write(2, 3, undefined), read(2, 5, 6)])).toBe(true)
    expect(linearizable([write(1, 1, 2), write(2, 3, undefined), read(1, 5, 6)])).toBe(true)
    // ... but once seen, it cannot be undone, and it never acts before it was invoked.
    expect(linearizable([write(1, 1, 2), write(2, 3, undefined), read(2, 5, 6), read(1, 7, 8)])).toBe(false)
    expect(linearizable([write(1, 1, 2), read(2, 3, 4), write(2, 5, undefined)])).toBe(false)
  })

  it('gives up with "unknown" when the search budget runs out', () => {
    const ops: RegOp[] = []
    for (let i = 0; i < 12; i++) ops.push(write(i, 1, undefined, i))
    ops.push(read(99, 2, 3))
    expect(checkLinearizable(registerModel, ops, { maxSteps: 50 }).linearizable).toBe('unknown')
    expect(checkLinearizable(registerModel, ops).linearizable).toBe(false)
  })
})

describe('linearizability checker: counter and models', () => {
  type CntOp = Operation<CounterInput, number>
  const add = (delta: number, output: number | undefined, call: number, ret?: number): CntOp =>
    ret === undefined
      ? { client: 0, input: { kind: 'add', delta }, call }
      : { client: 0, input: { kind: 'add', delta }, call, return: ret, output: output! }
  const get = (value: number, call: number, ret: number): CntOp => ({
    client: 1,
    input: { kind: 'read' },
    call,
    return: ret,
    output: value,
  })

  it('checks the values adds return', () => {
    // Concurrent adds: outputs 3 and 5 fit the order +3, +2.
    expect(
      checkLinearizable(counterModel, [add(3, 3, 1, 4), add(2, 5, 2, 3), get(5, 5, 6)]).linearizable,
    ).toBe(true)
    // Outputs that no order explains.
    expect(checkLinearizable(counterModel, [add(3, 3, 1, 4), add(2, 2, 2, 3)]).linearizable).toBe(false)
  })

  it('lets an unknown add count or not, but only once', () => {
    expect(checkLinearizable(counterModel, [add(1, undefined, 1), get(1, 2, 3)]).linearizable).toBe(true)
    expect(checkLinearizable(counterModel, [add(1, undefined, 1), get(0, 2, 3)]).linearizable).toBe(true)
    expect(checkLinearizable(counterModel, [add(1, undefined, 1), get(2, 2, 3)]).linearizable).toBe(false)
  })

  it('checks independent keys separately with a partitioned model', () => {
    type KvInput = { key: string; op: RegisterInput }
    const kv: Model<number | null, KvInput, number | null> = {
      init: registerModel.init,
      step: (state, input) => registerModel.step(state, input.op),
      hash: registerModel.hash,
      equal: registerModel.equal,
      partition: (input) => input.key,
    }
    const op = (key: string, o: RegOp): Operation<KvInput, number | null> => ({
      ...o,
      input: { key, op: o.input },
    })
    const good = [
      op('a', write(1, 1, 2)),
      op('b', write(2, 3, 4)),
      op('a', read(1, 5, 6)),
      op('b', read(2, 7, 8)),
    ]
    expect(checkLinearizable(kv, good).linearizable).toBe(true)
    const bad = [...good, op('b', read(null, 9, 10))]
    const result = checkLinearizable(kv, bad)
    expect(result.linearizable).toBe(false)
    if (result.linearizable === false) expect(result.partition).toBe('b')
  })

  it('records histories: failures drop out, pending operations count as unknown', () => {
    const history = new History<RegisterInput, number | null>()
    const w1 = history.invoke(0, { kind: 'write', value: 1 })
    history.ok(w1, null)
    const w2 = history.invoke(1, { kind: 'write', value: 2 })
    history.fail(w2)
    const w3 = history.invoke(2, { kind: 'write', value: 3 })
    const r = history.invoke(0, { kind: 'read' })
    history.ok(r, 3)
    expect(history.isPending(w3)).toBe(true)
    expect(history.counts()).toEqual({ ok: 2, fail: 1, unknown: 0, pending: 1 })
    const ops = history.operations()
    expect(ops.map((o) => o.input)).toEqual([
      { kind: 'write', value: 1 },
      { kind: 'write', value: 3 },
      { kind: 'read' },
    ])
    expect(checkLinearizable(registerModel, ops).linearizable).toBe(true)
    history.unknown(w3)
    expect(() => history.ok(w3, null)).toThrow()
  })
})

/**
 * A linearizability checker for recorded histories, after Porcupine (Wing & Gong's search with Lowe's
 * just-in-time linearization and a cache of visited (linearized set, state) pairs).
 *
 * A history is a list of operations, each with the logical time of its invocation (`call`) and of its
 * response (`return`). An operation whose outcome is unknown (it timed out, its node crashed) has no
 * `return`: it may have taken effect at any point after its call, or never; the checker treats its
 * response as arriving after everything else and does not check its output.
 *
 * Use it with a sequential `Model`; `registerModel` and `counterModel` are ready-made. A model may
 * split a history into independent parts (`partition`, e.g. by key), which are checked separately.
 */

export interface StepResult<S, O> {
  /** False when the input is not allowed in this state (the operation cannot be placed here). */
  ok: boolean
  state: S
  output: O
}

export interface Model<S, I, O> {
  init(): S
  step(state: S, input: I): StepResult<S, O>
  /** A string that is equal for equal states (the cache key). */
  hash(state: S): string
  equal(a: S, b: S): boolean
  /** Whether a recorded output is what the model computed; default: deep equality of plain values. */
  outputMatches?(expected: O, actual: O): boolean
  /** Independent parts of the history (P-compositionality), e.g. by key. */
  partition?(input: I): string
}

export interface Operation<I, O> {
  client: string | number
  input: I
  call: number
  /** Undefined when the outcome is unknown. */
  return?: number
  output?: O
}

export type CheckResult<I, O> =
  | { linearizable: true }
  | { linearizable: false; partition: string; operations: Operation<I, O>[] }
  /** The search budget ran out before an answer. */
  | { linearizable: 'unknown'; partition: string }

export interface CheckOptions {
  /** The most search steps per partition before giving up (default 5 million). */
  maxSteps?: number
}

export function checkLinearizable<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult<I, O> {
  const parts = new Map<string, Operation<I, O>[]>()
  for (const op of history) {
    const key = model.partition?.(op.input) ?? ''
    const part = parts.get(key)
    if (part === undefined) parts.set(key, [op])
    else part.push(op)
  }
  for (const [key, operations] of parts) {
    const verdict = checkPartition(model, operations, options.maxSteps ?? 5_000_000)
    if (verdict === false) return { linearizable: false, partition: key, operations }
    if (verdict === 'unknown') return { linearizable: 'unknown', partition: key }
  }
  return { linearizable: true }
}

/** Records a history as a test runs; time is a counter, so there are no ties. */
export class History<I, O> {
  #clock = 0
  readonly #ops: { op: Operation<I, O>; state: 'pending' | 'ok' | 'fail' | 'unknown' }[] = []

  invoke(client: string | number, input: I): number {
    this.#ops.push({ op: { client, input, call: ++this.#clock }, state: 'pending' })
    return this.#ops.length - 1
  }

  ok(id: number, output: O): void {
    const rec = this.#pending(id)
    rec.op.return = ++this.#clock
    rec.op.output = output
    rec.state = 'ok'
  }

  /** The operation certainly had no effect: it is left out of the history. */
  fail(id: number): void {
    this.#pending(id).state = 'fail'
  }

  /** The operation may or may not have taken effect. */
  unknown(id: number): void {
    this.#pending(id).state = 'unknown'
  }

  #pending(id: number) {
    const rec = this.#ops[id]
    if (rec === undefined || rec.state !== 'pending') throw new Error(`operation ${id} is not pending`)
    return rec
  }

  isPending(id: number): boolean {
    return this.#ops[id]?.state === 'pending'
  }

  /** The operations to check; those still pending count as unknown. */
  operations(): Operation<I, O>[] {
    return this.#ops.filter((r) => r.state !== 'fail').map((r) => r.op)
  }

  counts(): Record<'ok' | 'fail' | 'unknown' | 'pending', number> {
    const counts = { ok: 0, fail: 0, unknown: 0, pending: 0 }
    for (const r of this.#ops) counts[r.state]++
    return counts
  }
}

// ---------------------------------------------------------------------------------------------------
// Ready-made models

export type RegisterInput = { kind: 'write'; value: number } | { kind: 'read' }

/** A single register holding a number (null before the first write); reads return the value. */
export const registerModel: Model<number | null, RegisterInput, number | null> = {
  init: () => null,
  step: (state, input) =>
    input.kind === 'write'
      ? { ok: true, state: input.value, output: null }
      : { ok: true, state, output: state },
  hash: (state) => String(state),
  equal: (a, b) => a === b,
}

export type CounterInput = { kind: 'add'; delta: number } | { kind: 'read' }

/** A counter starting at 0; `add` returns the value after adding, `read` the value. */
export const counterModel: Model<number, CounterInput, number> = {
  init: () => 0,
  step: (state, input) =>
    input.kind === 'add'
      ? { ok: true, state: state + input.delta, output: state + input.delta }
      : { ok: true, state, output: state },
  hash: (state) => String(state),
  equal: (a, b) => a === b,
}

// ---------------------------------------------------------------------------------------------------
// The search

interface Node {
  kind: 'call' | 'return'
  id: number
  time: number
  /** The call's return node. */
  match: Node | undefined
  prev: Node | undefined
  next: Node | undefined
}

function checkPartition<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  maxSteps: number,
): boolean | 'unknown' {
  const outputMatches = model.outputMatches ?? deepEqual
  // Build the event list: calls and returns ordered by time, unknown returns after everything.
  const events: Node[] = []
  ops.forEach((op, id) => {
    const call: Node = { kind: 'call', id, time: op.call, match: undefined, prev: undefined, next: undefined }
    const ret: Node = {
      kind: 'return',
      id,
      time: op.return ?? Number.POSITIVE_INFINITY,
      match: undefined,
      prev: undefined,
      next: undefined,
    }
    call.match = ret
    events.push(call, ret)
  })
  // At equal times (only unknown returns tie) calls come first: the operations are then concurrent.
  events.sort((a, b) => a.time - b.time || (a.kind === b.kind ? a.id - b.id : a.kind === 'call' ? -1 : 1))
  const head: Node = { kind: 'call', id: -1, time: -1, match: undefined, prev: undefined, next: undefined }
  let tail = head
  for (const e of events) {
    tail.next = e
    e.prev = tail
    tail = e
  }

  const linearized = new Uint32Array(Math.ceil(ops.length / 32) || 1)
  // The set of placed operations is hashed incrementally (Zobrist: a random word per operation, XORed
  // in and out), so a step costs no pass over the whole set; the cache compares sets only on a hash hit.
  const zobrist = zobristWords(ops.length)
  let h1 = 0
  let h2 = 0
  const place = (id: number) => {
    setBit(linearized, id)
    h1 ^= zobrist[2 * id]!
    h2 ^= zobrist[2 * id + 1]!
  }
  const unplace = (id: number) => {
    clearBit(linearized, id)
    h1 ^= zobrist[2 * id]!
    h2 ^= zobrist[2 * id + 1]!
  }
  const cache = new Map<string, { bits: Uint32Array; state: S }[]>()
  const stack: { call: Node; state: S }[] = []
  let state = model.init()
  let entry = head.next
  let steps = 0

  while (head.next !== undefined) {
    if (++steps > maxSteps) return 'unknown'
    if (entry === undefined) return false // cannot happen: a return always precedes the list end
    if (entry.kind === 'call') {
      const op = ops[entry.id]!
      const result = model.step(state, op.input)
      const matches = result.ok && (op.return === undefined || outputMatches(result.output, op.output as O))
      if (matches) {
        place(entry.id)
        const key = `${h1}.${h2}|${model.hash(result.state)}`
        const seen = cache.get(key)
        if (
          seen === undefined ||
          !seen.some((s) => sameBits(s.bits, linearized) && model.equal(s.state, result.state))
        ) {
          const visited = { bits: linearized.slice(), state: result.state }
          if (seen === undefined) cache.set(key, [visited])
          else seen.push(visited)
          stack.push({ call: entry, state })
          state = result.state
          lift(entry)
          entry = head.next
          continue
        }
        unplace(entry.id)
      }
      entry = entry.next
    } else {
      // An operation returned before we could place it: undo the last placement and try the next one.
      const top = stack.pop()
      if (top === undefined) return false
      state = top.state
      unplace(top.call.id)
      unlift(top.call)
      entry = top.call.next
    }
  }
  return true
}

function lift(call: Node): void {
  call.prev!.next = call.next
  if (call.next !== undefined) call.next.prev = call.prev
  const ret = call.match!
  ret.prev!.next = ret.next
  if (ret.next !== undefined) ret.next.prev = ret.prev
}

function unlift(call: Node): void {
  const ret = call.match!
  ret.prev!.next = ret
  if (ret.next !== undefined) ret.next.prev = ret
  call.prev!.next = call
  if (call.next !== undefined) call.next.prev = call
}

function setBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5]! |= 1 << (i & 31)
}

function clearBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5]! &= ~(1 << (i & 31))
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Two pseudo-random words per operation (xorshift32, fixed seed: a check is deterministic). */
function zobristWords(n: number): Uint32Array {
  const words = new Uint32Array(2 * n)
  let x = 0x9e3779b9
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    words[i] = x >>> 0
  }
  return words
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.length !== kb.length) return false
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

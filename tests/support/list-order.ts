/**
 * Linearizability of a list history (writes append a unique value, reads answer [length, last]) against
 * the order in which the members applied the writes. The general search (linearizability.ts) must find
 * an order itself, and histories with many long, overlapping calls (several clients per member, calls
 * waiting out a partition) exhaust its budget. Here the order is known: every member applied the same
 * values in the same order (checked separately), and that order is the one the group claims. So the
 * check is exact and takes one pass:
 * - the writes' linearization points increase along the order, each strictly between its call and its
 *   return (an unknown outcome has no return);
 * - a read answering [n, last] must see the n-th value of the order as `last`, and its point lies after
 *   the n-th write's point and before the next one's: the n-th write's point comes before the read
 *   returns, the next write's point after the read was called;
 * - a write missing from the order took no effect, and no read may have seen it (the check above).
 * Earliest points satisfy every such bound when any do, so placing each write as early as allowed decides.
 */
import type { Operation } from './linearizability.ts'

export type ListOp = Operation<
  { kind: 'write'; value: number } | { kind: 'read' },
  [number, number | null] | null
>

/** Undefined when the history is linearizable in `order`; otherwise what breaks it. */
export function checkListInOrder(ops: readonly ListOp[], order: readonly number[]): string | undefined {
  const m = order.length
  const position = new Map<number, number>()
  for (const [i, v] of order.entries()) position.set(v, i + 1)
  // The point of write i lies strictly after lower[i] and strictly before upper[i] (1-based).
  const lower = new Float64Array(m + 2).fill(Number.NEGATIVE_INFINITY)
  const upper = new Float64Array(m + 2).fill(Number.POSITIVE_INFINITY)
  const whyUpper = new Map<number, string>()
  const whyLower = new Map<number, string>()
  const end = (op: ListOp) => op.return ?? Number.POSITIVE_INFINITY
  for (const op of ops) {
    if (op.input.kind === 'write') {
      const i = position.get(op.input.value)
      if (i === undefined) continue
      if (op.call > lower[i]!) {
        lower[i] = op.call
        whyLower.set(i, `it was called at ${op.call}`)
      }
      if (end(op) < upper[i]!) {
        upper[i] = end(op)
        whyUpper.set(i, `it returned at ${end(op)}`)
      }
      continue
    }
    if (op.return === undefined || !Array.isArray(op.output)) continue
    const [n, last] = op.output
    if (n < 0 || n > m) return `a read (${op.call}-${op.return}) saw ${n} values, but ${m} were applied`
    const expected = n === 0 ? null : order[n - 1]
    if (last !== expected) {
      return `a read (${op.call}-${op.return}) saw ${last} as value ${n}, which the members applied as ${expected}`
    }
    if (n >= 1 && op.return < upper[n]!) {
      upper[n] = op.return
      whyUpper.set(n, `a read that saw it returned at ${op.return}`)
    }
    if (n + 1 <= m && op.call > lower[n + 1]!) {
      lower[n + 1] = op.call
      whyLower.set(n + 1, `a read that did not see it was called at ${op.call}`)
    }
  }
  // Times are distinct integers; a step of `epsilon` per write keeps a chain of points below the next one.
  const epsilon = 1 / (4 * (m + 2))
  let previous = Number.NEGATIVE_INFINITY
  let previousWhy = ''
  for (let i = 1; i <= m; i++) {
    const afterPrevious = previous > lower[i]!
    const point = Math.max(lower[i]!, previous) + epsilon
    const why = afterPrevious ? previousWhy : (whyLower.get(i) ?? '')
    if (!(point < upper[i]!)) {
      return (
        `write ${order[i - 1]} (value ${i} in the applied order) takes effect after ${Math.floor(point)} ` +
        `(${why}) but before ${upper[i]} (${whyUpper.get(i)})`
      )
    }
    previous = point
    previousWhy = afterPrevious ? why : `value ${i}: ${why}`
  }
  return undefined
}

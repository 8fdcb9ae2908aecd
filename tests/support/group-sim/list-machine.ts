/**
 * The simulated group's state machine: a list of the values written, queried for [length, last], and
 * its sequential model for the linearizability checker.
 */

import {
  type ApplyContext,
  decodeCanonical,
  encodeCanonical,
  type StateMachine,
} from '../../../platform/node/index.ts'
import type { Model } from '../linearizability.ts'

export type ListCommand = { v: number }
export type ListResult = [number, number | null]

/** Appends each written value; the query answers how many were written and the last one. */
export class ListMachine implements StateMachine<ListCommand, 'value', ListResult> {
  readonly signature = 'group-sim/list/v1'
  values: number[] = []
  readonly #onApply: (values: readonly number[], ctx: ApplyContext) => void
  readonly #onRestore: (before: readonly number[], after: readonly number[]) => void

  constructor(
    onApply: (values: readonly number[], ctx: ApplyContext) => void = () => {},
    onRestore: (before: readonly number[], after: readonly number[]) => void = () => {},
  ) {
    this.#onApply = onApply
    this.#onRestore = onRestore
  }

  apply(command: ListCommand, ctx: ApplyContext): void {
    this.values.push(command.v)
    this.#onApply(this.values, ctx)
  }

  query(): ListResult {
    return [this.values.length, this.values.at(-1) ?? null]
  }

  snapshot(): Uint8Array {
    return encodeCanonical(this.values)
  }

  restore(snapshot: Uint8Array): void {
    const after = snapshot.length === 0 ? [] : (decodeCanonical(snapshot) as number[])
    this.#onRestore(this.values, after)
    this.values = [...after]
  }
}

export type ListInput = { kind: 'write'; value: number } | { kind: 'read' }
export type ListOutput = ListResult | null

/** The sequential model of ListMachine: writes append, reads see [length, last]. */
export const listModel: Model<{ n: number; last: number | null }, ListInput, ListOutput> = {
  init: () => ({ n: 0, last: null }),
  step: (state, input) =>
    input.kind === 'write'
      ? { ok: true, state: { n: state.n + 1, last: input.value }, output: null }
      : { ok: true, state, output: [state.n, state.last] },
  hash: (s) => `${s.n}:${s.last}`,
  equal: (a, b) => a.n === b.n && a.last === b.last,
}

import { CommandRefusal } from '../state-machine.ts'

/**
 * The terms (and apply results) of the last `size` applied indices, in a ring: no hashing, no
 * garbage. A proposal is known committed only when the entry applied at its last index carries the
 * term it was proposed in; an index that fell out of the ring (or was covered by a snapshot) is unknown.
 *
 * Gotcha: nothing is kept until `retain()`. The ring (24 bytes per slot, 1.5 MiB at the default
 * size) is only of use to a member that proposes, so a member that never does (a collection's reader)
 * never allocates it. Call `retain()` before proposing: a proposal's entry cannot be applied before
 * it was proposed, so every index a proposal asks about is kept.
 */
export class AppliedTerms {
  readonly #size: number
  #ring: Ring | undefined

  constructor(size: number) {
    this.#size = size
  }

  /** Starts keeping the terms of the indices applied from now on. */
  retain(): void {
    this.#ring ??= {
      indices: new Float64Array(this.#size).fill(-1),
      terms: new Float64Array(this.#size),
      results: new Array(this.#size),
    }
  }

  set(index: number, term: number): void {
    const ring = this.#ring
    if (ring === undefined) return
    const slot = index % this.#size
    ring.indices[slot] = index
    ring.terms[slot] = term
    ring.results[slot] = undefined
  }

  /** What the state machine returned for the command at `index` (kept as long as its term). */
  setResult(index: number, result: unknown): void {
    const ring = this.#ring
    const slot = index % this.#size
    if (ring?.indices[slot] === index) ring.results[slot] = result
  }

  /** The state machine refused the command at `index` (it did not decode, or `apply` threw). */
  refuse(index: number, reason: string): void {
    this.setResult(index, new CommandRefusal(reason))
  }

  result(index: number): unknown {
    const ring = this.#ring
    const slot = index % this.#size
    const result = ring?.indices[slot] === index ? ring.results[slot] : undefined
    return result instanceof CommandRefusal ? undefined : result
  }

  /** Why the state machine refused the command at `index`; undefined when it did not (or is unknown). */
  refusal(index: number): string | undefined {
    const ring = this.#ring
    const slot = index % this.#size
    const result = ring?.indices[slot] === index ? ring.results[slot] : undefined
    return result instanceof CommandRefusal ? result.reason : undefined
  }

  get(index: number): number | undefined {
    const ring = this.#ring
    const slot = index % this.#size
    return ring?.indices[slot] === index ? ring.terms[slot] : undefined
  }

  /** Forgets everything: after a snapshot replaced the state, only its own index is known. */
  clear(): void {
    this.#ring?.indices.fill(-1)
    this.#ring?.results.fill(undefined)
  }
}

interface Ring {
  indices: Float64Array
  terms: Float64Array
  results: unknown[]
}

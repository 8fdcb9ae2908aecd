/**
 * The terms (and apply results) of the last `size` applied indices, in a ring: no hashing, no
 * garbage. A proposal is known committed only when the entry applied at its last index carries the
 * term it was proposed in; an index that fell out of the ring (or was covered by a snapshot) is unknown.
 */
export class AppliedTerms {
  readonly #indices: Float64Array
  readonly #terms: Float64Array
  readonly #results: unknown[]

  constructor(size: number) {
    this.#indices = new Float64Array(size).fill(-1)
    this.#terms = new Float64Array(size)
    this.#results = new Array(size)
  }

  set(index: number, term: number): void {
    const slot = index % this.#indices.length
    this.#indices[slot] = index
    this.#terms[slot] = term
    this.#results[slot] = undefined
  }

  /** What the state machine returned for the command at `index` (kept as long as its term). */
  setResult(index: number, result: unknown): void {
    const slot = index % this.#indices.length
    if (this.#indices[slot] === index) this.#results[slot] = result
  }

  result(index: number): unknown {
    const slot = index % this.#indices.length
    return this.#indices[slot] === index ? this.#results[slot] : undefined
  }

  get(index: number): number | undefined {
    const slot = index % this.#indices.length
    return this.#indices[slot] === index ? this.#terms[slot] : undefined
  }

  /** Forgets everything: after a snapshot replaced the state, only its own index is known. */
  clear(): void {
    this.#indices.fill(-1)
    this.#results.fill(undefined)
  }
}

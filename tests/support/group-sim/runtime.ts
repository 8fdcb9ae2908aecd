import type { Runtime } from '../../../src/groups/worker/runtime.ts'
import type { Deadline } from '../../../src/primitives/abort.ts'
import type { Prng, Simulation } from '../sim-network.ts'

/** A node's clock, timers and randomness on the simulation; dead once its process crashed. */
export class SimRuntime implements Runtime {
  readonly #sim: Simulation
  readonly #prng: Prng
  readonly #rate: number
  readonly #bornAt: number
  #floor = 0
  #dead = false

  constructor(sim: Simulation, prng: Prng, rate: number) {
    this.#sim = sim
    this.#prng = prng
    this.#rate = rate
    this.#bornAt = sim.now
  }

  now(): number {
    // A fresh process's monotonic clock starts near zero, and may run fast or slow; never below the
    // deadline of a timer that fired (floating point must not make a timer fire "early").
    return Math.max(this.#floor, (this.#sim.now - this.#bornAt) * this.#rate)
  }

  setTimeout(fn: () => void, ms: number): () => void {
    let live = true
    // As Node's timers: a delay below 1 ms is 1 ms.
    const delay = Math.max(1, ms || 1)
    const deadline = this.now() + delay
    this.#sim.after(delay / this.#rate, () => {
      if (!live || this.#dead) return
      this.#floor = Math.max(this.#floor, deadline)
      fn()
    })
    return () => {
      live = false
    }
  }

  macrotask(fn: () => void): void {
    this.#sim.after(0, () => {
      if (!this.#dead) fn()
    })
  }

  timeout(ms: number): Deadline {
    const controller = new AbortController()
    let live = true
    this.#sim.after(Math.max(0, ms) / this.#rate, () => {
      if (live && !this.#dead) controller.abort(new DOMException('The operation timed out.', 'TimeoutError'))
    })
    return {
      signal: controller.signal,
      clear: () => {
        live = false
      },
    }
  }

  /** An arrow, not a method: the worker hands it to the core unbound. */
  readonly random = (): number => this.#prng.next()

  kill(): void {
    this.#dead = true
  }
}

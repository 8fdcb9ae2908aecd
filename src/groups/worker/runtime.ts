import { type Deadline, deadline } from '../../primitives/abort.ts'
import { macrotask } from '../../primitives/schedule.ts'
import type { Scope } from '../../primitives/scope.ts'
import { type Clock, systemClock, type Timers } from '../../primitives/time.ts'

/**
 * The clock, timers and randomness a group worker runs on: the core's `Clock` and `Timers`, plus what
 * only the worker needs. Production uses the system's (`systemRuntime`); the deterministic simulation
 * injects a virtual clock and a seeded generator, so a seed replays the very code that ships, not a copy
 * of it.
 *
 * Gotchas: every time the worker reads or waits for goes through here. A direct `performance.now()`,
 * `setTimeout` or `AbortSignal.timeout` in the worker would make simulated runs irreproducible.
 */
export interface Runtime extends Clock, Timers {
  /** Runs `fn` in a later macrotask, after pending timers and I/O had their turn. */
  macrotask(fn: () => void): void
  /** A signal that aborts after `ms`, with its canceller: clear it when the call it bounds ends. */
  timeout(ms: number): Deadline
  /** Uniform in [0, 1). */
  random(): number
}

/** The node's clock and the system's timers; timers belong to `scope` and stop when it closes. */
export function systemRuntime(scope: Scope, clock: Clock = systemClock): Runtime {
  return {
    now: () => clock.now(),
    setTimeout: (fn, ms) => scope.setTimeout(fn, ms),
    macrotask,
    // not the scope's timers: a deadline fires after the scope closed too, as AbortSignal.timeout did
    timeout: (ms) => deadline(ms),
    random: Math.random,
  }
}

import type { Runtime } from './runtime.ts'

/** A caller awaiting `execute` on microtasks alone for longer than this waits one macrotask. */
const STARVATION_MS = 10
/** Microtask-only work longer than this hands the Ready loop to a macrotask. */
const RUNAWAY_MS = 100

/**
 * When the worker's Ready loop and its callers run, so that the fastest path stays in microtasks and
 * timers and I/O still get their turn.
 *
 * Why: on an in-memory path (the memory transport, a memory store, a caller awaiting `execute` in a
 * loop), a commit never leaves the microtask queue, and heartbeats, bond keep-alives and discovery
 * would wait for as long as the caller keeps writing. Deferring every Ready loop to a macrotask fixes
 * that but makes members process in clumps (a lagging follower's backlog all at once), which showed as
 * p99 latency. So the loop runs in a microtask, and the starving cycle is broken at the caller
 * (`breathe`); only a loop that has not seen a macrotask for RUNAWAY_MS is itself deferred.
 *
 * Gotchas: "seen a macrotask" is measured by a probe the pacer schedules, so the first check after a
 * quiet spell may still run in a microtask. Every time goes through the injected runtime, so the
 * simulation replays it.
 */
export class Pacer {
  readonly #rt: Runtime
  #probePending = false
  #lastMacrotaskAt: number
  /** The pause starving callers share (see `breathe`). */
  #breath: Promise<void> | undefined

  constructor(rt: Runtime) {
    this.#rt = rt
    this.#lastMacrotaskAt = rt.now()
  }

  /** Runs `loop` soon: in a microtask, or in a macrotask when microtasks alone ran for RUNAWAY_MS. */
  schedule(loop: () => void): void {
    this.#probe()
    if (this.#rt.now() - this.#lastMacrotaskAt > RUNAWAY_MS) this.#rt.macrotask(loop)
    else queueMicrotask(loop)
  }

  /**
   * For a caller whose command committed: a pause until the next macrotask when the event loop has run
   * only microtasks for STARVATION_MS, else undefined (go on at once).
   */
  breathe(): Promise<void> | undefined {
    this.#probe()
    if (this.#rt.now() - this.#lastMacrotaskAt <= STARVATION_MS) return undefined
    // One shared pause: callers resuming in separate macrotasks would each propose alone, and 100
    // pipelined callers lose the batching that makes them fast (10× fewer commits per second).
    this.#breath ??= new Promise<void>((resolve) =>
      this.#rt.macrotask(() => {
        this.#breath = undefined
        resolve()
      }),
    )
    return this.#breath
  }

  /** Notes when the event loop last ran a macrotask. */
  #probe(): void {
    if (this.#probePending) return
    this.#probePending = true
    this.#rt.macrotask(() => {
      this.#probePending = false
      this.#lastMacrotaskAt = this.#rt.now()
    })
  }
}

/**
 * One timer for the core's next tick. Most turns of the Ready loop leave that time where it was, so a
 * timer that fires no later than needed is kept (a tick before its time changes nothing and re-arms);
 * only an earlier deadline replaces it.
 */
export class TickTimer {
  readonly #rt: Runtime
  #cancel: () => void = () => {}
  /** When the armed timer fires (runtime clock); +∞ while none is armed. */
  #dueAt = Number.POSITIVE_INFINITY

  constructor(rt: Runtime) {
    this.#rt = rt
  }

  /** Makes `fire` run within `wait` ms, unless a timer already fires by then. */
  arm(wait: number, fire: () => void): void {
    const now = this.#rt.now()
    if (this.#dueAt <= now + wait) return
    this.#cancel()
    this.#dueAt = now + wait
    this.#cancel = this.#rt.setTimeout(() => {
      this.#dueAt = Number.POSITIVE_INFINITY
      fire()
    }, wait)
  }

  disarm(): void {
    this.#cancel()
    this.#dueAt = Number.POSITIVE_INFINITY
  }
}

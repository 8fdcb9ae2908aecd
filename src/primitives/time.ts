/**
 * Time as the core reads and waits for it. Components that drive protocol behaviour by time (the group
 * worker, its mesh and bonds, a Scope's timers) take a `Clock` and `Timers` instead of calling
 * `performance.now()` or `setTimeout` themselves, so a test or the deterministic simulation can drive
 * time; production passes `systemClock` and `systemTimers`.
 *
 * When to use: any code whose behaviour depends on elapsed time (timeouts, heartbeats, deadlines,
 * backoff). Plain measurements for logs and stats may read the system clock directly.
 *
 * Gotchas: `Clock.now()` is monotonic milliseconds from an arbitrary origin, not wall-clock time (ticket
 * expiries and `Date.now()`-based records are wall-clock and stay so). A `Timers` canceller may be
 * called any number of times, also after the callback ran.
 */

/** Monotonic milliseconds. */
export interface Clock {
  now(): number
}

/** One-shot timers; `setTimeout` returns the canceller. */
export interface Timers {
  /** Runs `fn` after `ms` unless cancelled; returns the canceller. */
  setTimeout(fn: () => void, ms: number): () => void
}

/** The system's monotonic clock (`performance.now()`). */
export const systemClock: Clock = {
  now: () => performance.now(),
}

/** The system's timers (`setTimeout`/`clearTimeout`). */
export const systemTimers: Timers = {
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, ms)
    return () => clearTimeout(timer)
  },
}

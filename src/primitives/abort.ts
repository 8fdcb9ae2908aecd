import { abortReason } from './errors.ts'
import { systemTimers, type Timers } from './time.ts'

/** Options every awaitable accepts. */
export interface AbortOptions {
  /** Aborts the wait: the call rejects with the signal's reason (an AbortError by default). */
  signal?: AbortSignal
}

/**
 * The one abortable wait every SDK call builds on. `start` begins the wait with `settle` callbacks and
 * may return a cancel; the promise settles through them, or rejects with `abortReason(signal)` (a
 * MosaikError `AbortError`, or the Error the signal was aborted with) as soon as `signal` aborts, after
 * running the cancel. The abort listener is removed once the wait settles either way.
 *
 * When to use: any wait that takes an `AbortSignal` (a timer, an event, a queued request), so every
 * abort rejects the same way and no listener outlives its wait.
 *
 * Gotchas: on an already aborted signal `start` never runs. `start` runs synchronously and may settle
 * at once. The cancel must not settle the wait itself; the abort rejection follows it.
 */
export function abortable<T>(
  signal: AbortSignal | undefined,
  start: (resolve: (value: T) => void, reject: (err: unknown) => void) => (() => void) | undefined,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(abortReason(signal))
  const { promise, resolve, reject } = Promise.withResolvers<T>()
  if (signal === undefined) {
    start(resolve, reject)
    return promise
  }
  let settled = false
  let cancel: (() => void) | undefined
  const onAbort = () => {
    if (settled) return
    settled = true
    cancel?.()
    reject(abortReason(signal))
  }
  cancel = start(
    (value) => {
      if (settled) return
      settled = true
      signal.removeEventListener('abort', onAbort)
      resolve(value)
    },
    (err) => {
      if (settled) return
      settled = true
      signal.removeEventListener('abort', onAbort)
      reject(err)
    },
  )
  if (!settled) signal.addEventListener('abort', onAbort, { once: true })
  return promise
}

/** Resolves with `promise`, or rejects as soon as `signal` aborts. */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise
  if (signal.aborted) {
    promise.catch(() => {})
    return Promise.reject(abortReason(signal))
  }
  return abortable<T>(signal, (resolve, reject) => {
    promise.then(resolve, reject)
    return undefined
  })
}

/**
 * Waits `ms` on `timers` (the system's by default), or rejects when `signal` aborts. The timer never
 * keeps a process alive past an abort.
 */
export function delay(ms: number, signal?: AbortSignal, timers: Timers = systemTimers): Promise<void> {
  return abortable<void>(signal, (resolve) => timers.setTimeout(resolve, ms))
}

/** A signal that aborts at a deadline, and the canceller of its timer. */
export interface Deadline {
  /** Aborts with a `TimeoutError` DOMException once the deadline passes, as `AbortSignal.timeout`'s. */
  readonly signal: AbortSignal
  /** Drops the timer; the signal then never aborts. Safe to call more than once. */
  clear(): void
}

/**
 * `AbortSignal.timeout(ms)` that can be cleared: on `timers` when given, else on the system's timers
 * without keeping the process alive (as `AbortSignal.timeout`).
 *
 * When to use: a deadline for one call that usually ends long before it. Clear it when the call ends.
 *
 * Gotchas: `AbortSignal.timeout`'s timer cannot be cancelled. It fires after every call, however long
 * done, and builds a DOMException for nobody. On a group follower's write path (one deadline per
 * forwarded command) that was 2 % of the CPU.
 */
export function deadline(ms: number, timers?: Timers): Deadline {
  const controller = new AbortController()
  const fire = () => controller.abort(new DOMException('The operation timed out.', 'TimeoutError'))
  if (timers) return { signal: controller.signal, clear: timers.setTimeout(fire, ms) }
  const timer = setTimeout(fire, ms) as unknown as { unref?(): void }
  timer.unref?.()
  return { signal: controller.signal, clear: () => clearTimeout(timer as Parameters<typeof clearTimeout>[0]) }
}

/** A signal that aborts when any of its sources does, and the release of its listeners on them. */
export interface LinkedSignal {
  readonly signal: AbortSignal
  /** Removes its listeners from the sources; the signal then aborts only if it already has. Idempotent. */
  clear(): void
}

const noop = () => {}

/**
 * A signal that aborts, with the same reason, as soon as any of `signals` does (missing ones skipped).
 *
 * When to use: a call bound to several lifetimes at once (the caller's signal, a scope, a deadline).
 * Clear it when the call ends, in a `finally`, as a Deadline.
 *
 * Gotchas: this is not `AbortSignal.any`. In Node (24.21 measured here) a long-lived source, such as a
 * scope's or a worker's signal, keeps every signal `any` derived from it once anything listened to
 * that one, even after the listener is removed: 0.6–1.2 KB per call, never collected (300 000 calls:
 * 185–378 MB). A ping, a catalog sync, a strong read and a reconnect each made one. Here the listeners
 * are plain ones on the sources, removed by `clear()` or when it aborts.
 */
export function linkSignals(...signals: (AbortSignal | undefined)[]): LinkedSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined)
  if (present.length === 1) return { signal: present[0]!, clear: noop }
  const controller = new AbortController()
  const aborted = present.find((s) => s.aborted)
  if (aborted || present.length === 0) {
    if (aborted) controller.abort(aborted.reason)
    return { signal: controller.signal, clear: noop }
  }
  const clear = () => {
    for (const s of present) s.removeEventListener('abort', onAbort)
  }
  const onAbort = (event: Event) => {
    clear()
    controller.abort((event.target as AbortSignal).reason)
  }
  for (const s of present) s.addEventListener('abort', onAbort)
  return { signal: controller.signal, clear }
}

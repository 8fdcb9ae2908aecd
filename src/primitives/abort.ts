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

/** A signal that aborts when any of the given signals does. */
export function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined)
  if (present.length === 1) return present[0]!
  return AbortSignal.any(present)
}

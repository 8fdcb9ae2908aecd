import { systemTimers, type Timers } from './time.ts'

/**
 * A Scope owns the timers and background tasks of one component, so closing the component releases
 * every one of them: no timer keeps a process alive and no task outlives its owner. It is itself a
 * `Timers`, over the `Timers` it was given (the system's by default; its children share them).
 */
export class Scope implements Timers {
  readonly #controller = new AbortController()
  /** The cancellers of the timers still pending. */
  readonly #timers = new Set<() => void>()
  readonly #tasks = new Set<Promise<unknown>>()
  readonly #children = new Set<Scope>()
  readonly #onError: (err: unknown) => void
  readonly #base: Timers

  constructor(onError: (err: unknown) => void = () => {}, timers: Timers = systemTimers) {
    this.#onError = onError
    this.#base = timers
  }

  /** Aborts when the scope closes. */
  get signal(): AbortSignal {
    return this.#controller.signal
  }

  get closed(): boolean {
    return this.#controller.signal.aborted
  }

  /** Runs `fn` after `ms` unless the scope closes first. Returns a canceller. */
  setTimeout(fn: () => void, ms: number): () => void {
    if (this.closed) return () => {}
    let fired = false
    let cancel: (() => void) | undefined
    cancel = this.#base.setTimeout(() => {
      fired = true
      if (cancel) this.#timers.delete(cancel)
      try {
        fn()
      } catch (err) {
        this.#onError(err)
      }
    }, ms)
    const cancelTimer = cancel
    if (!fired) this.#timers.add(cancelTimer)
    return () => {
      cancelTimer()
      this.#timers.delete(cancelTimer)
    }
  }

  /** Runs `fn` every `ms` (re-reading the interval through `ms()` when given a function). */
  every(ms: number | (() => number), fn: () => void): () => void {
    let cancel = () => {}
    let stopped = false
    const schedule = () => {
      if (stopped) return
      cancel = this.setTimeout(
        () => {
          fn()
          schedule()
        },
        typeof ms === 'function' ? ms() : ms,
      )
    }
    schedule()
    return () => {
      stopped = true
      cancel()
    }
  }

  /** Tracks a background task; its failure is reported, never unhandled. */
  spawn(task: Promise<unknown> | (() => Promise<unknown>)): void {
    if (this.closed) return
    const p = (typeof task === 'function' ? task() : task).catch((err) => {
      if (!this.closed) this.#onError(err)
    })
    this.#tasks.add(p)
    p.finally(() => this.#tasks.delete(p))
  }

  /** A child scope closed together with this one. */
  child(): Scope {
    const child = new Scope(this.#onError, this.#base)
    if (this.closed) child.close()
    else {
      this.#children.add(child)
      child.signal.addEventListener('abort', () => this.#children.delete(child), { once: true })
    }
    return child
  }

  /**
   * Cancels every timer, aborts the signal, and waits for background tasks to settle, at most `waitMs`
   * of real time (a simulated clock that stopped must not hold a close up).
   */
  async close(waitMs = 2000): Promise<void> {
    if (!this.closed) this.#controller.abort()
    for (const child of [...this.#children]) await child.close(waitMs)
    for (const cancel of this.#timers) cancel()
    this.#timers.clear()
    if (this.#tasks.size === 0) return
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      Promise.allSettled([...this.#tasks]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, waitMs)
      }),
    ])
    clearTimeout(timer)
  }
}

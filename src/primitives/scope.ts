/**
 * A Scope owns the timers and background tasks of one component, so closing the component releases
 * every one of them: no timer keeps a process alive and no task outlives its owner.
 */
export class Scope {
  readonly #controller = new AbortController()
  readonly #timers = new Set<ReturnType<typeof setTimeout>>()
  readonly #tasks = new Set<Promise<unknown>>()
  readonly #children = new Set<Scope>()
  readonly #onError: (err: unknown) => void

  constructor(onError: (err: unknown) => void = () => {}) {
    this.#onError = onError
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
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      try {
        fn()
      } catch (err) {
        this.#onError(err)
      }
    }, ms)
    this.#timers.add(timer)
    return () => {
      clearTimeout(timer)
      this.#timers.delete(timer)
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
    const child = new Scope(this.#onError)
    if (this.closed) child.close()
    else {
      this.#children.add(child)
      child.signal.addEventListener('abort', () => this.#children.delete(child), { once: true })
    }
    return child
  }

  /** Cancels every timer, aborts the signal, and waits (bounded) for background tasks to settle. */
  async close(waitMs = 2000): Promise<void> {
    if (!this.closed) this.#controller.abort()
    for (const child of [...this.#children]) await child.close(waitMs)
    for (const t of this.#timers) clearTimeout(t)
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

/**
 * Test timing helpers. Every timeout in the suite goes through TIME_FACTOR so slow machines can stretch
 * them (TIME_FACTOR=3 npm test) without editing tests. Tests never sleep to wait for the network: they
 * await the SDK's own conditions, bounded by these timeouts.
 */
import type { Runtime } from '../../src/groups/worker/runtime.ts'
import type { Clock, Timers } from '../../src/primitives/time.ts'

export const TIME_FACTOR = Number(process.env.TIME_FACTOR ?? '1') || 1

export function ms(n: number): number {
  return Math.round(n * TIME_FACTOR)
}

export function secs(n: number): number {
  return ms(n * 1000)
}

/** Rejects with a message naming `what` when `promise` takes longer than `timeoutMs` (already scaled). */
export async function within<T>(timeoutMs: number, promise: Promise<T>, what = 'condition'): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} not met within ${timeoutMs} ms`)), timeoutMs)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** A signal that aborts after `timeoutMs` (already scaled). */
export function deadline(timeoutMs: number): AbortSignal {
  return AbortSignal.timeout(timeoutMs)
}

/** A clock and timers that move only when the test advances them. */
export class ManualTime implements Clock, Timers {
  #now = 0
  #timers: { at: number; fn: () => void; live: boolean }[] = []

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, ms: number): () => void {
    const timer = { at: this.#now + ms, fn, live: true }
    this.#timers.push(timer)
    return () => {
      timer.live = false
    }
  }

  get pending(): number {
    return this.#timers.filter((t) => t.live).length
  }

  advance(ms: number): void {
    const until = this.#now + ms
    while (true) {
      const due = this.#timers.filter((t) => t.live && t.at <= until).sort((a, b) => a.at - b.at)[0]
      if (!due) break
      due.live = false
      this.#now = due.at
      due.fn()
    }
    this.#now = until
  }
}

/** A group worker's runtime whose clock, timers and macrotasks move only when the test says so. */
export function manualRuntime() {
  const time = new ManualTime()
  const tasks: (() => void)[] = []
  const rt: Runtime = {
    now: () => time.now(),
    setTimeout: (fn, ms) => time.setTimeout(fn, ms),
    macrotask: (fn) => void tasks.push(fn),
    timeout: () => ({ signal: new AbortController().signal, clear: () => {} }),
    random: () => 0.5,
  }
  const runMacrotasks = () => {
    for (const fn of tasks.splice(0)) fn()
  }
  return { rt, time, tasks, runMacrotasks }
}

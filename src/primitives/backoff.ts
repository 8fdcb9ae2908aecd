import { systemClock } from './time.ts'

/**
 * Exponential backoff with jitter (the defaults of mosaik's reconnect policy: 500 ms initial delay,
 * ×1.5, ±50 % jitter, at most 60 s between attempts, giving up after 5 minutes).
 */
export interface BackoffOptions {
  initialMs?: number
  multiplier?: number
  /** Fraction of the delay added or removed at random (0.5 = ±50 %). */
  jitter?: number
  maxIntervalMs?: number
  /** Give up once this much time has passed since the last reset; Infinity never gives up. */
  maxElapsedMs?: number
}

export class Backoff {
  readonly #opts: Required<BackoffOptions>
  #current: number
  #startedAt: number
  readonly #now: () => number

  /** `now`: monotonic milliseconds (the system's by default), so a wall-clock jump cannot end it early. */
  constructor(options: BackoffOptions = {}, now: () => number = systemClock.now) {
    this.#opts = {
      initialMs: options.initialMs ?? 500,
      multiplier: options.multiplier ?? 1.5,
      jitter: options.jitter ?? 0.5,
      maxIntervalMs: options.maxIntervalMs ?? 60_000,
      maxElapsedMs: options.maxElapsedMs ?? 300_000,
    }
    this.#now = now
    this.#current = this.#opts.initialMs
    this.#startedAt = now()
  }

  /** The next delay in ms, or undefined when the policy has given up. */
  next(): number | undefined {
    if (this.#now() - this.#startedAt > this.#opts.maxElapsedMs) return undefined
    const { jitter, multiplier, maxIntervalMs } = this.#opts
    const base = this.#current
    this.#current = Math.min(maxIntervalMs, base * multiplier)
    const spread = base * jitter
    return Math.max(0, base - spread + Math.random() * 2 * spread)
  }

  reset(): void {
    this.#current = this.#opts.initialMs
    this.#startedAt = this.#now()
  }
}

/** A uniform random duration in [base × (1 − jitter), base × (1 + jitter)]. */
export function jittered(baseMs: number, jitter: number): number {
  return baseMs * (1 - jitter + Math.random() * 2 * jitter)
}

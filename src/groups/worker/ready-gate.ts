/**
 * Holds back calls into the Raft core that must not happen while a Ready taken from it is being
 * handled (between `ready()` and `advance()`), and runs them as soon as that Ready is done.
 *
 * Why: handling a Ready waits for the disk, and meanwhile other work goes on. Most calls into the core
 * are safe then (a message stepped in shows up in the next Ready), but rebasing the log on a snapshot
 * is not: the Ready being handled would then apply its committed entries, describe them to a snapshot
 * requester and compact up to them against a log that no longer holds them. With a disk of a few
 * milliseconds a snapshot download finished inside that window and the member failed.
 *
 * Gotchas: the held calls run in the order they came, after the Ready, before the next one is taken;
 * they run even when handling it failed (`end` belongs in a `finally`), so each must check for itself
 * that the worker still runs.
 */
export class ReadyGate {
  #handling = false
  readonly #held: (() => void)[] = []

  /**
   * A Ready was taken from the core. The loop calls this and `end` around its own await, not through a
   * wrapper: one more promise per Ready shifted how requests interleave with the loop enough to change
   * which forwards a leader refuses under a flood.
   */
  begin(): void {
    this.#handling = true
  }

  /** That Ready is done (handled or failed): runs what was held back meanwhile, in order. */
  end(): void {
    this.#handling = false
    for (const call of this.#held.splice(0)) call()
  }

  /** Runs `call` now, or once the Ready being handled is done; resolves with its result. */
  run<T>(call: () => T): Promise<T> {
    if (!this.#handling) return Promise.resolve(call())
    return new Promise<T>((resolve, reject) => {
      this.#held.push(() => {
        try {
          resolve(call())
        } catch (err) {
          reject(err)
        }
      })
    })
  }
}

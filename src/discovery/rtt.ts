/**
 * Round-trip time estimates per peer, after RFC 6298: the first sample sets srtt = r and
 * rttvar = r/2; later ones give srtt = 7/8 srtt + 1/8 r and rttvar = 3/4 rttvar + 1/4 |srtt − r|.
 */
export interface RttEstimate {
  /** Smoothed round-trip time in ms. */
  readonly srtt: number
  /** Round-trip time variation in ms. */
  readonly rttvar: number
  readonly samples: number
}

export class RttTracker {
  readonly #estimates = new Map<string, RttEstimate>()

  record(peerId: string, sampleMs: number): RttEstimate {
    const prev = this.#estimates.get(peerId)
    const next: RttEstimate = prev
      ? {
          rttvar: 0.75 * prev.rttvar + 0.25 * Math.abs(prev.srtt - sampleMs),
          srtt: 0.875 * prev.srtt + 0.125 * sampleMs,
          samples: prev.samples + 1,
        }
      : { srtt: sampleMs, rttvar: sampleMs / 2, samples: 1 }
    this.#estimates.set(peerId, next)
    return next
  }

  get(peerId: string): RttEstimate | undefined {
    return this.#estimates.get(peerId)
  }

  /** True when the smoothed RTT is below `ms`, and also when it is unknown (optimistic, as mosaik). */
  below(peerId: string, ms: number): boolean {
    const e = this.#estimates.get(peerId)
    return e === undefined || e.srtt < ms
  }

  remove(peerId: string): void {
    this.#estimates.delete(peerId)
  }

  clear(): void {
    this.#estimates.clear()
  }
}

/**
 * The short soak: the workload of `npm run soak` (workload.ts) for 40 s, sampled every 3 s, fitted
 * after 12 s. A fit over half a minute turns noise (a garbage collection that frees a compacted log,
 * a timer more or less) into steep per-minute slopes, so the bounds are wider than the long run's
 * (bounds.ts, scaled); what this catches is a leak per operation or per churn round, which grows at
 * once. `npm run soak` runs the same for 10 minutes with the tight bounds.
 */
import { describe, expect, it } from 'vitest'
import { secs } from '../support/time.ts'
import { soakFailures } from './bounds.ts'
import { runSoak } from './workload.ts'

const SECONDS = 40

describe('soak: nodes with streams and a Map under load and churn', () => {
  it(
    `heap and handles stay flat over ${SECONDS} s`,
    async () => {
      const report = await runSoak({
        durationMs: SECONDS * 1000,
        sampleEveryMs: 3000,
        warmupMs: 12_000,
        churnEveryMs: 2000,
        timeoutMs: secs(20),
      })
      console.log(`[soak]\n${report.table}`)
      const last = report.samples.at(-1)!
      expect(last.churns, 'churn rounds').toBeGreaterThanOrEqual(5)
      expect(last.writes, 'Map writes').toBeGreaterThan(100)
      expect(last.delivered, 'datums delivered').toBeGreaterThan(1000)
      // Handles within 5× the long run's bounds, the heap within 12 MiB/min: the heap of this workload
      // still settles for a minute or two (measured: +10 MiB over the first minute, then flat within
      // ±3 MiB over 10 minutes); a leak per datum, write or churn round grows faster than that.
      // Timers are left to the long run: their count follows the calls in flight at the moment of the
      // sample (each holds a timeout), which over half a minute fits to slopes of ±30 per minute.
      expect(soakFailures(report, 5, 12).filter((f) => !f.startsWith('timers'))).toEqual([])
    },
    secs(SECONDS + 45),
  )
})

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
const WARMUP_MS = 12_000

describe('soak: nodes with streams and a Map under load and churn', () => {
  it(
    `heap and handles stay flat over ${SECONDS} s`,
    async () => {
      const report = await runSoak({
        durationMs: SECONDS * 1000,
        sampleEveryMs: 3000,
        warmupMs: WARMUP_MS,
        churnEveryMs: 2000,
        timeoutMs: secs(20),
      })
      console.log(`[soak]\n${report.table}`)
      const last = report.samples.at(-1)!
      expect(last.churns, 'churn rounds').toBeGreaterThanOrEqual(5)
      expect(last.writes, 'Map writes').toBeGreaterThan(100)
      expect(last.delivered, 'datums delivered').toBeGreaterThan(1000)
      // Handles within 5× the long run's bounds, the heap within 20 MiB/min: the heap of this workload
      // still settles for a minute or two (measured: +9 to +10 MiB/min over this window, then flat
      // within ±3 MiB over 10 minutes); a leak of ~100 B per datum grows faster than that.
      // Timers are left to the long run: their count follows the calls in flight at the moment of the
      // sample (each holds a timeout), which over half a minute fits to slopes of ±30 per minute.
      // Counts (streams, connections, sockets, handles) move in steps with the churn: a sample taken
      // while a node is leaving sits below the rest, and over half a minute one such dip fits to a
      // steep slope. A leak raises the peak instead, so the short run compares the peaks of the two
      // halves after the warm-up; the long run fits slopes over ten minutes.
      const counts = ['handles', 'sockets', 'connections', 'streams'] as const
      expect(
        soakFailures(report, 5, 20).filter((f) => !['timers', ...counts].some((k) => f.startsWith(k))),
      ).toEqual([])
      const after = report.samples.filter((s) => s.t * 1000 >= WARMUP_MS)
      const half = Math.floor(after.length / 2)
      const peak = (from: typeof after, key: (typeof counts)[number]) => Math.max(...from.map((s) => s[key]))
      const allowed = { handles: 2, sockets: 4, connections: 4, streams: 10 }
      for (const key of counts) {
        const growth = peak(after.slice(half), key) - peak(after.slice(0, half), key)
        expect(growth, `${key}: peak of the second half over the first`).toBeLessThanOrEqual(allowed[key])
      }
    },
    secs(SECONDS + 45),
  )
})

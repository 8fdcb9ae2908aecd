/** Group worker simulation: a seed replays exactly, so every failing seed can be studied. */
import { describe, expect, it } from 'vitest'
import { runScenario, scenario } from './scenarios.ts'

describe('group worker simulation: replay', () => {
  it('a seed replays exactly: the same events, frames, client calls and outcome', async () => {
    for (const name of ['chaos', 'crash-restart']) {
      const a = await runScenario(scenario(name), 7, { trace: true })
      const b = await runScenario(scenario(name), 7, { trace: true })
      expect(b.hash).toBe(a.hash)
      expect(b.stats).toEqual(a.stats)
      expect(b.sim.traceLines).toEqual(a.sim.traceLines)
      // Tracing (as a replay does) does not change the course.
      const quiet = await runScenario(scenario(name), 7)
      expect(quiet.hash).toBe(a.hash)
      // And a different seed takes a different course.
      const c = await runScenario(scenario(name), 8)
      expect(c.hash).not.toBe(a.hash)
    }
  })
})

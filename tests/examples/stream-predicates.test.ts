import { afterEach, describe, expect, it } from 'vitest'
import { secs } from '../support/time.ts'
import { killExamples, runExample } from './support.ts'

afterEach(killExamples)

describe('examples/stream-predicates.ts', () => {
  it('admits by predicate, goes online with two dashboards, and delivers only to admitted consumers', async () => {
    const { code, stdout, stderr } = await runExample('examples/stream-predicates.ts', [], secs(30))
    expect(code, stderr).toBe(0)
    expect(stdout).toMatch(/intruder refused: /)
    expect(stdout).toMatch(/logger subscribed: 1 subscribed, 0 dashboard\(s\), online: false/)
    expect(stdout).toMatch(/dash-a subscribed: 2 subscribed, 1 dashboard\(s\), online: false/)
    expect(stdout).toMatch(/dash-b subscribed: 3 subscribed, 2 dashboard\(s\), online: true/)
    for (const name of ['logger', 'dash-a', 'dash-b']) expect(stdout).toContain(`${name} got ticks 1, 2, 3`)
    expect(stdout).toMatch(/intruder got 0 ticks/)
    expect(stdout).toMatch(/^done$/m)
  })
})

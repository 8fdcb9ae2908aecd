import { afterEach, describe, expect, it } from 'vitest'
import { secs } from '../support/time.ts'
import { killExamples, runExample } from './support.ts'

afterEach(killExamples)

describe('examples/processes.ts', () => {
  it('three processes joined by one bootstrap address see each other, then all exit 0', async () => {
    const { code, stdout, stderr } = await runExample('examples/processes.ts', [], secs(40))
    expect(code, stderr).toBe(0)
    const pids = new Set(
      [...stdout.matchAll(/^node-\d \(pid (\d+)\): up at \/ip4\/127\.0\.0\.1\//gm)].map((m) => m[1]),
    )
    expect(pids.size).toBe(3)
    expect(stdout).toMatch(/node-1 \(pid \d+\): sees node-2 and node-3/)
    expect(stdout).toMatch(/node-2 \(pid \d+\): sees node-1 and node-3/)
    expect(stdout).toMatch(/node-3 \(pid \d+\): sees node-1 and node-2/)
    expect(stdout).toMatch(/all 3 processes see each other/)
    expect(stdout).toMatch(/children exited with 0, 0/)
  })
})

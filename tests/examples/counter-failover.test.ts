import { afterEach, describe, expect, it } from 'vitest'
import { secs } from '../support/time.ts'
import { killExamples, runExample } from './support.ts'

afterEach(killExamples)

describe('examples/counter-failover.ts', () => {
  it('replicates increments, elects a new leader when the leader closes, and keeps the value', async () => {
    const { code, stdout, stderr } = await runExample('examples/counter-failover.ts', [], secs(40))
    expect(code, stderr).toBe(0)
    const leader = /3 voters, leader (node-\d) \(term \d+\)/.exec(stdout)?.[1]
    expect(leader).toBeDefined()
    expect(stdout).toMatch(/counter after 6 increments: 21 \/ 21 \/ 21/)
    expect(stdout).toContain(`closed the leader, ${leader}`)
    const next = /new leader (node-\d) \(term \d+\) after \d+ ms/.exec(stdout)?.[1]
    expect(next).toBeDefined()
    expect(next).not.toBe(leader)
    expect(stdout).toMatch(/strong read on node-\d: 21$/m)
    expect(stdout).toMatch(/after one more increment: 121$/m)
    expect(stdout).toMatch(/^done$/m)
  })
})

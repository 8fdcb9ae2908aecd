import { afterEach, describe, expect, it } from 'vitest'
import { secs } from '../support/time.ts'
import { killExamples, runExample } from './support.ts'

afterEach(killExamples)

describe('examples/discovery-tags.ts', () => {
  it('finds peers by tag through events, a condition and the catalog, and exits 0', async () => {
    const { code, stdout, stderr } = await runExample('examples/discovery-tags.ts', [], secs(30))
    expect(code, stderr).toBe(0)
    expect(stdout).toMatch(/finder: discovered …\w+ \(role:api\)/)
    expect(stdout).toMatch(/finder: discovered …\w+ \(role:indexer\)/)
    expect(stdout).toMatch(/finder: an indexer is here: …\w+/)
    expect(stdout).toMatch(/api and indexer each see 2 peers/)
    expect(stdout.match(/finder catalog: /g)).toHaveLength(2)
    expect(stdout).toMatch(/finder catalog: …\w+ role:api region:eu/)
    expect(stdout).toMatch(/finder: 1 api node\(s\) in region:eu/)
    expect(stdout).toMatch(/^done$/m)
  })
})

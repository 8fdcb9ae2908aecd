import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { secs } from '../support/time.ts'

const run = promisify(execFile)
const root = new URL('../../', import.meta.url).pathname

describe('the demo (`npm start`)', () => {
  it('forms a cluster and uses discovery, streams, groups and collections, then exits cleanly', async () => {
    const { stdout } = await run(process.execPath, ['examples/demo/main.ts', '--once'], {
      cwd: root,
      timeout: secs(60),
    })
    expect(stdout).toMatch(/3 nodes found each other/)
    expect(stdout.match(/received 100 ticks in order/g)).toHaveLength(2)
    expect(stdout.match(/counter = 6/g)).toHaveLength(3)
    expect(stdout).toMatch(/leaderboard .*=300 .*=200 .*=100/)
    expect(stdout).toMatch(/all nodes closed/)
  }, 90_000)
})

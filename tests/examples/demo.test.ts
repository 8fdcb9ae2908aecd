import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { secs } from '../support/time.ts'

const run = promisify(execFile)
const root = new URL('../../', import.meta.url).pathname

describe('the demo (`npm start -- --once`)', () => {
  it('starts the relay and three node processes, shows data flowing and a failover, then stops them all', async () => {
    // Rejects unless it exits 0 (after stopping every process it started).
    const { stdout } = await run(process.execPath, ['examples/demo/main.ts', '--once', '--port=0'], {
      cwd: root,
      timeout: secs(90),
    })
    expect(stdout).toMatch(/relay 12D3\w+ up/)
    expect(stdout.match(/node-\d 12D3\w+ \(--tags=role:/g)).toHaveLength(3)
    expect(stdout).toMatch(/dashboard: http:\/\/127\.0\.0\.1:\d+\//)
    expect(stdout).toMatch(/counter group: leader node-\d, term \d+/)
    expect(stdout).toMatch(
      /data flows: prices \d+ datums\/s to the consumers; counter \d+; status Map 3 entries/,
    )
    const killed = /killing the leader (node-\d)/.exec(stdout)?.[1]
    const next = /new leader (node-\d), term \d+/.exec(stdout)?.[1]
    expect(killed).toBeDefined()
    expect(next).toBeDefined()
    expect(next).not.toBe(killed)
    expect(stdout).toMatch(new RegExp(`${killed} restarted from its dataDir and follows ${next}`))
    expect(stdout).toMatch(/all processes stopped/)
  }, 120_000)
})

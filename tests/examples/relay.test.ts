import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { killAll, RelayProcess } from '../relay/support.ts'
import { secs } from '../support/time.ts'
import { killExamples, runExample } from './support.ts'

const dir = mkdtempSync(join(tmpdir(), 'mosaik-example-relay-'))
afterEach(() => {
  killExamples()
  killAll()
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('examples/relay.ts', () => {
  it('two peers with no address of their own exchange ticks through the relay binary', async () => {
    const relay = await RelayProcess.start([
      '--network=demo',
      '--listen=/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/tcp/0/ws',
      `--identity=${join(dir, 'relay.key')}`,
      '--http-port=off',
    ])
    const { code, stdout, stderr } = await runExample(
      'examples/relay.ts',
      ['--network', 'demo', '--relay', relay.address('tcp'), '--once'],
      secs(40),
    )
    expect(code, stderr).toBe(0)
    expect(stdout).toContain(`sees the relay …${relay.peerId.slice(-6)} (role:relay)`)
    expect(stdout).toContain(`home is reachable at ${relay.address('tcp')}/p2p-circuit/p2p/`)
    expect(stdout).toMatch(/visitor …\w+ subscribed through the relay/)
    expect(stdout).toMatch(/visitor got tick 1\nvisitor got tick 2\nvisitor got tick 3\n/)
    expect(stdout).toMatch(/^done$/m)
    expect(await relay.terminate()).toBe(0)
  })
})

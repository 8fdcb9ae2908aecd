import { afterEach, describe, expect, it } from 'vitest'
import { collections } from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

const consensus = { heartbeatMs: 50, electionTimeoutMs: 300, electionJitterMs: 150, bootstrapDelayMs: 300 }

describe('map smoke', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it('a writer and a reader replicate a map', async () => {
    const [a, b] = await nodes.star(2)
    await within(secs(5), a!.discovery.when.peers(1))
    const w = collections.Map.writer<string, number>(a!, 'balances', { consensus })
    const r = collections.Map.reader<string, number>(b!, 'balances', { consensus })
    await within(secs(10), w.when.online())
    const v = await w.set('alice', 100)
    await within(secs(10), r.when.reaches(v))
    expect(r.get('alice')).toBe(100)
    expect(w.get('alice')).toBe(100)
    await w.extend([
      ['bob', 1],
      ['carol', 2],
    ])
    const v2 = await w.delete('alice')
    await within(secs(10), r.when.reaches(v2))
    expect([...r.entries()]).toEqual([
      ['bob', 1],
      ['carol', 2],
    ])
    expect(r.size).toBe(2)
  })
})

import { afterEach, describe, expect, it } from 'vitest'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

describe('discovery smoke', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it('two nodes find each other through a bootstrap address', async () => {
    const [a, b] = await nodes.star(2, { tags: ['role:test'] })
    await within(secs(5), b!.discovery.when.peers(1), 'b sees a')
    await within(secs(5), a!.discovery.when.peers(1), 'a sees b')
    const seen = a!.discovery.catalog().get(b!.peerId)
    expect(seen?.tags.has('role:test')).toBe(true)
    expect(seen?.signed).toBe(true)
  })
})

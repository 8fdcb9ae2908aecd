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
  it('followCatalog hands each later catalog to its callback, and stops when aborted', async () => {
    const [a, b] = await nodes.star(2)
    await within(secs(5), a!.discovery.when.peers(1), 'a sees b')
    const seen: boolean[] = []
    const stop = new AbortController()
    let changed: () => void = () => {}
    const following = a!.discovery.followCatalog(
      (catalog) => {
        seen.push(catalog.get(b!.peerId)?.tags.has('role:late') === true)
        if (seen.at(-1)) changed()
      },
      { signal: stop.signal },
    )
    const next = () => new Promise<void>((resolve) => (changed = resolve))
    const tagged = next()
    await b!.discovery.addTags('role:late')
    await within(secs(5), tagged, 'the callback sees the new tag')
    expect(a!.discovery.catalog().get(b!.peerId)?.tags.has('role:late')).toBe(true)
    stop.abort()
    await within(secs(5), following, 'followCatalog returns once aborted')
    const calls = seen.length
    await b!.discovery.addTags('role:later')
    await within(
      secs(5),
      a!.discovery.when.catalog((c) => c.get(b!.peerId)?.tags.has('role:later') === true),
    )
    expect(seen.length).toBe(calls)
  })
})

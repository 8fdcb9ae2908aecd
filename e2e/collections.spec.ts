/**
 * A browser dashboard reading a replicated collection: a page joins the Map's group through the relay
 * as a reader, awaits the versions Node writers (three processes) produce, and after a reload shows what it kept in
 * IndexedDB even with every writer gone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { secs, within } from '../tests/support/time.ts'
import { BrowserHarness, skipReason } from './support/browser.ts'
import { Cluster } from './support/cluster.ts'

if (skipReason) console.warn(skipReason)

describe.skipIf(skipReason !== undefined)('browser collections', () => {
  let browser: BrowserHarness
  let cluster: Cluster

  beforeAll(async () => {
    ;[browser, cluster] = await Promise.all([BrowserHarness.start(), Cluster.start({ peers: 3 })])
  })
  afterAll(async () => {
    await browser?.close()
    await cluster?.close()
  })

  it('a page writes a Map as an observer, through the Node writers; it may not join a group as a voter', async () => {
    const writers = cluster.peers
    const store = 'e2e/page-writes'
    await within(
      secs(30),
      Promise.all(writers.map((w) => w.call('mapOnline', { store, timeoutMs: secs(30) }))),
      'the writers are online',
    )
    const page = await browser.page()
    const result = await within(
      secs(30),
      page.evaluate(
        async ({ network, bootstrap, store }) => {
          const { Network, GroupKey, collections } = globalThis.mosaik
          const net = await Network.create({ network, bootstrap, allowPrivateAddresses: true })
          try {
            // A page never votes (hidden tabs throttle timers): a voting preference is refused...
            const refused = await net.groups
              .join({
                key: GroupKey.fromSecret('e2e/roles'),
                stateMachine: {
                  signature: 'e2e/noop',
                  apply: () => null,
                  query: () => null,
                  snapshot: () => new Uint8Array(0),
                  restore: () => {},
                },
                preference: 'normal',
              })
              .then(
                () => 'joined',
                (err: { code?: string; message: string }) => `${err.code}: ${err.message}`,
              )
            // ...and a collection writer joins as an observer that writes through the voters.
            const mine = collections.Map.writer<string, number>(net, store)
            await mine.when.online()
            const version = await mine.set('from-page', 7)
            await mine.close()
            return { refused, version }
          } finally {
            await net.close()
          }
        },
        { network: cluster.network, bootstrap: [cluster.wsAddress], store },
      ),
      'the page writes',
    )
    expect(result.refused).toMatch(/^INVALID_ARGUMENT: members on this runtime never vote/)
    const seen = await writers[2]!.call('mapGet', { store, key: 'from-page', version: result.version })
    expect(seen).toBe(7)
    await page.close()
  })

  it('a page reads a Map that Node writers change, reaching each version; a reload shows it without writers', async () => {
    const writers = cluster.peers
    const store = 'e2e/scores'
    await within(
      secs(30),
      Promise.all(writers.map((w) => w.call('mapOnline', { store, timeoutMs: secs(30) }))),
      'the writers are online',
    )
    let version = 0
    for (let i = 0; i < 20; i++)
      version = await writers[i % 3]!.call<number>('mapSet', { store, key: `k${i}`, value: i })

    const page = await browser.page()
    const args = { network: cluster.network, bootstrap: [cluster.wsAddress], version }
    // A dashboard: joins as a reader with a dataDir (IndexedDB), awaits the writers' version.
    const first = await within(
      secs(30),
      page.evaluate(async ({ network, bootstrap, version }) => {
        const { Network, collections } = globalThis.mosaik
        const net = await Network.create({ network, bootstrap, dataDir: 'dash', allowPrivateAddresses: true })
        const scores = collections.Map.reader<string, number>(net, 'e2e/scores')
        await scores.when.reaches(version)
        const seen = Object.fromEntries(scores.entries())
        // Later writes reach the page too.
        ;(globalThis as Record<string, unknown>).dash = { net, scores }
        return seen
      }, args),
      'the page reaches the version',
    )
    expect(first).toEqual(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])))

    const later = await writers[1]!.call<number>('mapSet', { store, key: 'late', value: 99 })
    const seenLater = await within(
      secs(20),
      page.evaluate(async (v) => {
        const { net, scores } = (globalThis as Record<string, unknown>).dash as {
          net: { close(): Promise<void> }
          scores: { when: { reaches(v: number): Promise<number> }; get(k: string): number | undefined }
        }
        await scores.when.reaches(v)
        const late = scores.get('late')
        await net.close()
        return late
      }, later),
      'the page reaches a later version',
    )
    expect(seenLater).toBe(99)

    // Every writer goes away; the page reloads and shows what it kept, marked as restored.
    await Promise.all(cluster.peers.splice(0).map((w) => w.terminate()))
    await browser.load(page)
    const restored = await within(
      secs(20),
      page.evaluate(async ({ network, bootstrap }) => {
        const { Network, collections } = globalThis.mosaik
        const net = await Network.create({ network, bootstrap, dataDir: 'dash', allowPrivateAddresses: true })
        const scores = collections.Map.reader<string, number>(net, 'e2e/scores')
        const version = await scores.when.restored()
        const out = { version, restored: scores.restored, size: scores.size, late: scores.get('late') }
        await net.close()
        return out
      }, args),
      'the reloaded page restores the Map',
    )
    expect(restored).toEqual({ version: later, restored: true, size: 21, late: 99 })
  })
})

/**
 * A browser dashboard consuming streams: a page in a real Chromium joins the network through the relay
 * binary and consumes what a full Node peer (its own process) produces.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { secs, within } from '../tests/support/time.ts'
import { BrowserHarness, skipReason } from './support/browser.ts'
import { Cluster } from './support/cluster.ts'

if (skipReason) console.warn(skipReason)

describe.skipIf(skipReason !== undefined)('browser streams', () => {
  let browser: BrowserHarness
  let cluster: Cluster

  beforeAll(async () => {
    ;[browser, cluster] = await Promise.all([BrowserHarness.start(), Cluster.start({ peers: 1 })])
  })
  afterAll(async () => {
    await browser?.close()
    await cluster?.close()
  })

  it('a page consumes a Node producer through the relay, every datum in order', async () => {
    const count = 500
    const page = await browser.page()
    const consumed = page.evaluate(
      async ({ network, bootstrap, count }) => {
        const { Network, defineStream } = globalThis.mosaik
        const net = await Network.create({ network, bootstrap, allowPrivateAddresses: true })
        const consumer = net.streams.consumer(defineStream<{ seq: number }>('e2e/ticks'))
        const seqs: number[] = []
        for await (const tick of consumer) {
          seqs.push(tick.seq)
          if (seqs.length === count) break
        }
        await net.close()
        return seqs
      },
      { network: cluster.network, bootstrap: [cluster.wsAddress], count },
    )
    await cluster.peers[0]!.call('produce', { stream: 'e2e/ticks', count, timeoutMs: secs(30) })
    const seqs = await within(secs(30), consumed, 'the page received every datum')
    expect(seqs).toEqual(Array.from({ length: count }, (_, i) => i))
  })
})

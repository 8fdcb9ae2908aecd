/**
 * How browsers reach the network: over the relay's WebSockets or WebRTC-direct address, browser to
 * browser, and back after the relay crashes and restarts.
 */
import type { Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { secs, within } from '../tests/support/time.ts'
import { BrowserHarness, skipReason } from './support/browser.ts'
import { Cluster } from './support/cluster.ts'

if (skipReason) console.warn(skipReason)

/** In the page: joins the network and keeps the seqs of `stream` in `globalThis.consuming`. */
function consumeInPage(
  page: Page,
  network: string,
  bootstrap: string[],
  stream = 'e2e/direct',
): Promise<string> {
  return page.evaluate(
    async ({ network, bootstrap, stream }) => {
      const { Network, defineStream } = globalThis.mosaik
      const net = await Network.create({ network, bootstrap, allowPrivateAddresses: true })
      const consumer = net.streams.consumer(defineStream<{ seq: number }>(stream))
      const state = { net, seqs: [] as number[] }
      ;(globalThis as Record<string, unknown>).consuming = state
      void (async () => {
        for await (const tick of consumer) state.seqs.push(tick.seq)
      })()
      return net.peerId
    },
    { network, bootstrap, stream },
  )
}

/** In the page: how many ticks arrived, and the last one. */
function ticksInPage(page: Page): Promise<{ count: number; last: number | undefined }> {
  return page.evaluate(() => {
    const { seqs } = (globalThis as Record<string, unknown>).consuming as { seqs: number[] }
    return { count: seqs.length, last: seqs.at(-1) }
  })
}

/** Polls the page until `pred` holds (page state has no event the test process can await). */
async function untilPage<T>(page: Page, read: (p: Page) => Promise<T>, pred: (v: T) => boolean): Promise<T> {
  for (;;) {
    const v = await read(page)
    if (pred(v)) return v
    await page.waitForTimeout(50)
  }
}

describe.skipIf(skipReason !== undefined)('browser connectivity', () => {
  let browser: BrowserHarness
  let cluster: Cluster
  const pages: Page[] = []

  beforeAll(async () => {
    ;[browser, cluster] = await Promise.all([BrowserHarness.start(), Cluster.start({ peers: 1 })])
  })
  afterEach(async () => {
    for (const page of pages.splice(0)) await page.context().close()
  })
  afterAll(async () => {
    await browser?.close()
    await cluster?.close()
  })

  it('a page bootstraps from the relay over WebRTC-direct and consumes a Node producer', async () => {
    const page = await browser.page()
    pages.push(page)
    const pageId = await consumeInPage(page, cluster.network, [cluster.webrtcDirectAddress])
    await cluster.peers[0]!.call('produce', { stream: 'e2e/direct', count: 100, timeoutMs: secs(30) })
    const got = await within(
      secs(20),
      untilPage(page, ticksInPage, (t) => t.count >= 100),
      'the page received every tick',
    )
    expect(got).toEqual({ count: 100, last: 99 })
    // The page's connection to the relay is WebRTC-direct: it bootstrapped over nothing else.
    const relayConn = await page.evaluate(
      (relay) =>
        (
          (globalThis as Record<string, unknown>).consuming as {
            net: {
              libp2p: {
                getConnections(): { remotePeer: { toString(): string }; remoteAddr: { toString(): string } }[]
              }
            }
          }
        ).net.libp2p
          .getConnections()
          .filter((c) => c.remotePeer.toString() === relay)
          .map((c) => c.remoteAddr.toString()),
      cluster.relay.peerId,
    )
    expect(relayConn.some((a) => a.includes('/webrtc-direct'))).toBe(true)
    expect(pageId).toMatch(/^12D3/)
  })

  it('one page produces and another consumes, browser to browser through the relay', async () => {
    const [a, b] = [await browser.page(), await browser.page()]
    pages.push(a, b)
    const args = { network: cluster.network, bootstrap: [cluster.wsAddress], count: 200 }
    // b consumes; a produces once b subscribed.
    const consumed = b.evaluate(async ({ network, bootstrap, count }) => {
      const { Network, defineStream } = globalThis.mosaik
      const net = await Network.create({ network, bootstrap, allowPrivateAddresses: true })
      const consumer = net.streams.consumer(defineStream<{ seq: number }>('e2e/b2b'))
      const seqs: number[] = []
      for await (const tick of consumer) {
        seqs.push(tick.seq)
        if (seqs.length === count) break
      }
      const fromBrowser = net.libp2p
        .getConnections()
        .map((c) => c.remoteAddr.toString())
        .filter((addr) => addr.includes('/webrtc/') || addr.includes('/p2p-circuit/'))
      await net.close()
      return { seqs, fromBrowser }
    }, args)
    await a.evaluate(async ({ network, bootstrap, count }) => {
      const { Network, defineStream } = globalThis.mosaik
      const net = await Network.create({ network, bootstrap, allowPrivateAddresses: true })
      const producer = net.streams.producer(defineStream<{ seq: number }>('e2e/b2b'))
      await producer.when.subscribed().wait({ signal: AbortSignal.timeout(30_000) })
      for (let seq = 0; seq < count; seq++) await producer.send({ seq })
      ;(globalThis as Record<string, unknown>).producing = net
    }, args)
    const { seqs, fromBrowser } = await within(secs(30), consumed, 'the consuming page received every tick')
    expect(seqs).toEqual(Array.from({ length: 200 }, (_, i) => i))
    expect(fromBrowser.length).toBeGreaterThan(0)
    await a.evaluate(() =>
      ((globalThis as Record<string, unknown>).producing as { close(): Promise<void> }).close(),
    )
  })

  it('a page keeps consuming after the relay crashes and restarts', async () => {
    const page = await browser.page()
    pages.push(page)
    await consumeInPage(page, cluster.network, [cluster.wsAddress], 'e2e/ticking')
    const peer = cluster.peers[0]!
    await peer.call('awaitSubscribed', { stream: 'e2e/ticking', timeoutMs: secs(30) })
    await peer.call('startTicking', { stream: 'e2e/ticking', intervalMs: 10 })
    await within(
      secs(10),
      untilPage(page, ticksInPage, (t) => t.count >= 20),
      'ticks flow',
    )

    await cluster.restartRelay('kill')
    const sentAfterRestart = await peer.call<number>('sentSoFar')
    const after = await within(
      secs(30),
      untilPage(page, ticksInPage, (t) => (t.last ?? -1) > sentAfterRestart + 20),
      'ticks sent after the restart reach the page',
    )
    await peer.call('stopTicking')
    expect(after.last).toBeGreaterThan(sentAfterRestart)
  })
})

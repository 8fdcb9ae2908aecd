/**
 * A tab the browser puts to sleep: Chromium freezes background tabs (no task runs, no timer fires, no
 * message is read) and wakes them later. The page's peers stop hearing from it meanwhile and drop its
 * connections after their ping timeout; on waking, the SDK must find that out and reconnect by
 * itself, with no reload and no application code.
 *
 * The freeze is CDP's `Page.setWebLifecycleState`, what Chromium does to a tab in the background.
 * (Losing the relay instead is connectivity.spec.ts.)
 */
import type { CDPSession, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { secs, within } from '../tests/support/time.ts'
import { BrowserHarness, skipReason } from './support/browser.ts'
import { Cluster } from './support/cluster.ts'

if (skipReason) console.warn(skipReason)

/**
 * Longer than the peers take to give up on a silent connection: libp2p's connection monitor pings
 * every connection each 10 s and aborts it when no answer came within its timeout (at least 5 s).
 */
const FREEZE_MS = secs(25)

interface Consuming {
  seqs: number[]
  maxGap: number
  last: number
  disconnects: number
  connects: number
  waiters: { above: number; resolve: () => void }[]
}

/** In the page: joins the network and records the seqs of `stream` and the channel changes. */
function consumeInPage(page: Page, network: string, bootstrap: string[], stream: string): Promise<string> {
  return page.evaluate(
    async ({ network, bootstrap, stream }) => {
      const { Network, defineStream } = globalThis.mosaik
      const net = await Network.create({ network, bootstrap, allowPrivateAddresses: true })
      const consumer = net.streams.consumer(defineStream<{ seq: number }>(stream))
      const state: Consuming = {
        seqs: [],
        maxGap: 0,
        last: Date.now(),
        disconnects: 0,
        connects: 0,
        waiters: [],
      }
      ;(globalThis as Record<string, unknown>).consuming = state
      consumer.on('producer:connected', () => state.connects++)
      consumer.on('producer:disconnected', () => state.disconnects++)
      void (async () => {
        for await (const tick of consumer) {
          state.seqs.push(tick.seq)
          state.maxGap = Math.max(state.maxGap, Date.now() - state.last)
          state.last = Date.now()
          for (const w of state.waiters.filter((w) => tick.seq > w.above)) w.resolve()
          state.waiters = state.waiters.filter((w) => tick.seq <= w.above)
        }
      })()
      return net.peerId
    },
    { network, bootstrap, stream },
  )
}

/** Resolves once the page received a seq above `above`, with the page's record. */
function seqAbove(page: Page, above: number): Promise<Omit<Consuming, 'waiters'>> {
  return page.evaluate(async (above) => {
    const state = (globalThis as Record<string, unknown>).consuming as Consuming
    if ((state.seqs.at(-1) ?? -1) <= above) {
      await new Promise<void>((resolve) => state.waiters.push({ above, resolve }))
    }
    return {
      seqs: state.seqs,
      maxGap: state.maxGap,
      last: state.last,
      disconnects: state.disconnects,
      connects: state.connects,
    }
  }, above)
}

/**
 * Puts the page to sleep. `Page.setWebLifecycleState` alone does nothing to a visible page in
 * headless Chromium (no `freeze` event, timers keep firing), and a headless page cannot be hidden;
 * so the page's main thread is also stopped in the debugger, which holds every task (timers, network
 * events, message handling) as a frozen tab does.
 */
async function freeze(cdp: CDPSession): Promise<void> {
  await cdp.send('Page.setWebLifecycleState', { state: 'frozen' })
  await cdp.send('Debugger.enable')
  await cdp.send('Debugger.pause')
}

async function wake(cdp: CDPSession): Promise<void> {
  await cdp.send('Debugger.resume')
  await cdp.send('Debugger.disable')
  await cdp.send('Page.setWebLifecycleState', { state: 'active' })
}

describe.skipIf(skipReason !== undefined)('browser lifecycle', () => {
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

  it(
    'a page frozen past the ping timeouts consumes again once it wakes, without a reload',
    async () => {
      const page = await browser.page()
      pages.push(page)
      await consumeInPage(page, cluster.network, [cluster.wsAddress], 'e2e/frozen')
      const peer = cluster.peers[0]!
      await peer.call('awaitSubscribed', { stream: 'e2e/frozen', timeoutMs: secs(30) })
      await peer.call('startTicking', { stream: 'e2e/frozen', intervalMs: 10 })
      await within(secs(10), seqAbove(page, 20), 'ticks flow')

      const cdp = await page.context().newCDPSession(page)
      await freeze(cdp)
      const frozenAt = await peer.call<number>('sentSoFar')
      await new Promise((r) => setTimeout(r, FREEZE_MS)) // the freeze itself, on purpose
      await wake(cdp)
      const sentAtWake = await peer.call<number>('sentSoFar')
      expect(sentAtWake).toBeGreaterThan(frozenAt) // the producer went on meanwhile

      const after = await within(
        secs(30),
        seqAbove(page, sentAtWake + 20),
        'ticks sent after the page woke reach it',
      )
      await peer.call('stopTicking')
      // The same page (no reload: its record goes back to before the freeze), and the channel was
      // dropped while it slept and came back by itself.
      expect(after.seqs[0]).toBeLessThan(frozenAt)
      expect(after.seqs.at(-1)).toBeGreaterThan(sentAtWake + 20)
      expect(after.maxGap).toBeGreaterThan(FREEZE_MS - secs(2)) // the page did sleep
      expect(after.disconnects).toBeGreaterThanOrEqual(1)
      expect(after.connects).toBeGreaterThanOrEqual(2)
    },
    secs(120),
  )
})

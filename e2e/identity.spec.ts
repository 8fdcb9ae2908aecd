/**
 * A browser peer with a `dataDir` keeps its identity across reloads (IndexedDB), a second tab on the
 * same `dataDir` is refused (Web Locks), and the browser bundle stays within its size budget.
 */
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BrowserHarness, bundle, skipReason } from './support/browser.ts'

if (skipReason) console.warn(skipReason)

/** What a dashboard downloads: the whole SDK for browsers, minified and gzipped. */
const BUNDLE_BUDGET_GZIP = 300 * 1024

describe('browser bundle', () => {
  it(`stays under ${BUNDLE_BUDGET_GZIP / 1024} KiB gzipped`, async () => {
    const { code } = await bundle()
    const gzipped = gzipSync(code, { level: 9 }).byteLength
    console.log(
      `browser bundle: ${(code.length / 1024).toFixed(0)} KiB minified, ${(gzipped / 1024).toFixed(0)} KiB gzip`,
    )
    expect(gzipped).toBeLessThan(BUNDLE_BUDGET_GZIP)
  })
})

describe.skipIf(skipReason !== undefined)('browser identity and dataDir', () => {
  let browser: BrowserHarness

  beforeAll(async () => {
    browser = await BrowserHarness.start()
  })
  afterAll(async () => {
    await browser?.close()
  })

  it('keeps its peer id across reloads with a dataDir, and gets a fresh one without', async () => {
    const page = await browser.page()
    const peerIdOf = (dataDir: string | undefined) =>
      page.evaluate(async (dataDir) => {
        const { Network } = globalThis.mosaik
        const net = await Network.create({ network: 'e2e-identity', listen: [], dataDir })
        const id = net.peerId
        await net.close()
        return id
      }, dataDir)
    const first = await peerIdOf('dash')
    await browser.load(page)
    expect(await peerIdOf('dash')).toBe(first)
    expect(await peerIdOf('other')).not.toBe(first)
    expect(await peerIdOf(undefined)).not.toBe(await peerIdOf(undefined))
    await page.context().close()
  })

  it('refuses a second tab on the same dataDir with DataDirLockedError', async () => {
    const context = await browser.browser.newContext()
    const [a, b] = [await browser.page(context), await browser.page(context)]
    await a.evaluate(async () => {
      const { Network } = globalThis.mosaik
      ;(globalThis as Record<string, unknown>).held = await Network.create({
        network: 'e2e-identity',
        listen: [],
        dataDir: 'shared',
      })
    })
    const code = await b.evaluate(async () => {
      const { Network } = globalThis.mosaik
      try {
        const net = await Network.create({ network: 'e2e-identity', listen: [], dataDir: 'shared' })
        await net.close()
        return 'opened'
      } catch (err) {
        return (err as { code?: string }).code
      }
    })
    expect(code).toBe('DATA_DIR_LOCKED')
    await a.evaluate(() =>
      ((globalThis as Record<string, unknown>).held as { close(): Promise<void> }).close(),
    )
    await context.close()
  })
})

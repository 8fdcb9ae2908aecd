/**
 * A real Chromium (Debian's `chromium`, driven by playwright-core) that loads the browser build of
 * mosaik from a page served on loopback. Tests run code in the page with `page.evaluate`, where the SDK
 * is `globalThis.mosaik`.
 *
 * Gotchas:
 * - The bundle is built once per test file with esbuild from the sources (not from dist/), so the
 *   tests drive the code in the checkout.
 * - Without Chromium the suites skip with a message; CI installs it (`.ci/run`).
 */
import { existsSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { type Browser, chromium, type Page } from 'playwright-core'

const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(
  (p): p is string => !!p,
)

/** The Chromium binary, or undefined (then the e2e suites skip). */
export const chromiumPath: string | undefined = CANDIDATES.find((p) => existsSync(p))

export const skipReason = chromiumPath
  ? undefined
  : 'e2e: no Chromium found (install Debian `chromium` or set CHROMIUM_PATH); browser tests skipped'

const ENTRY = fileURLToPath(new URL('./entry.ts', import.meta.url))

/** The browser bundle of mosaik (ESM, minified), as served to the page. */
export async function bundle(): Promise<{ code: string; bytes: number }> {
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2023',
    minify: true,
    write: false,
    logLevel: 'silent',
  })
  const code = result.outputFiles[0]!.text
  return { code, bytes: result.outputFiles[0]!.contents.byteLength }
}

const PAGE =
  '<!doctype html><meta charset="utf-8"><title>mosaik e2e</title><script type="module" src="/mosaik.js"></script>'

/** Serves the page and the bundle on 127.0.0.1 (a secure context, as IndexedDB and Web Locks need). */
export class PageServer {
  readonly url: string
  readonly #server: Server

  private constructor(server: Server) {
    this.#server = server
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  }

  static async start(code: string): Promise<PageServer> {
    const server = createServer((req, res) => {
      if (req.url === '/mosaik.js') {
        res.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-store' })
        res.end(code)
      } else {
        res.writeHead(200, { 'content-type': 'text/html' })
        res.end(PAGE)
      }
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return new PageServer(server)
  }

  close(): Promise<void> {
    this.#server.closeAllConnections()
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }
}

/** One Chromium and the page server; `page()` opens a tab with mosaik loaded. */
export class BrowserHarness {
  readonly browser: Browser
  readonly server: PageServer
  readonly bundleBytes: number
  /** What pages printed (console and uncaught errors), for failure messages. */
  readonly logs: string[] = []

  private constructor(browser: Browser, server: PageServer, bundleBytes: number) {
    this.browser = browser
    this.server = server
    this.bundleBytes = bundleBytes
  }

  static async start(): Promise<BrowserHarness> {
    if (!chromiumPath) throw new Error(skipReason)
    const { code, bytes } = await bundle()
    const server = await PageServer.start(code)
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu'],
    })
    return new BrowserHarness(browser, server, bytes)
  }

  /** A new tab (in its own context unless one is given) with mosaik loaded. */
  async page(context?: Awaited<ReturnType<Browser['newContext']>>): Promise<Page> {
    const ctx = context ?? (await this.browser.newContext())
    const page = await ctx.newPage()
    page.on('console', (m) => this.logs.push(`[${m.type()}] ${m.text()}`))
    page.on('pageerror', (e) => this.logs.push(`[pageerror] ${e.message}`))
    page.on('crash', () => this.logs.push('[crash] the page crashed'))
    await this.load(page)
    return page
  }

  /** (Re)loads the page and waits for mosaik to be ready. */
  async load(page: Page): Promise<void> {
    await page.goto(this.server.url)
    await page.waitForFunction(() => globalThis.mosaik !== undefined)
  }

  async close(): Promise<void> {
    await this.browser.close()
    await this.server.close()
  }
}

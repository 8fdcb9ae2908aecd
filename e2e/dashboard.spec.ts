/**
 * `npm start` as a user runs it: the start script (a child process) brings up the relay, three node
 * processes and the dashboard; a real Chromium opens the URL it prints, and the test reads the
 * dashboard's DOM: the topology, the stream, the group's leader, the collections, and a new leader after
 * "kill leader". Then SIGTERM (as Ctrl-C) stops the script, which exits 0 with none of its children left.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Consumer, Network } from '../platform/node/index.ts'
import { secs, within } from '../tests/support/time.ts'
import { chromiumPath, skipReason } from './support/browser.ts'

if (skipReason) console.warn(skipReason)

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url))

/** The pids whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  if (!existsSync('/proc')) return []
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid) out.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return out
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return '?'
  }
}

/** Running (a zombie, exited but not yet reaped, counts as gone). */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

/** What the page's consumer of the price stream knows of its channels, for a failure's report. */
const priceChannels = (page: Page) =>
  page
    .evaluate(() => {
      const { prices, net } = (
        globalThis as never as { dashboard: { prices: Consumer<unknown>; net: Network } }
      ).dashboard
      const channels = prices.producers().map((c) => ({
        producer: c.producerId,
        state: c.state,
        startedAt: c.peer.startedAt,
        datums: c.stats.datums,
        lastClose: c.lastClose && `${c.lastClose.code} ${c.lastClose.reason}`,
      }))
      const catalog = [...net.discovery.catalog().peers()].map((p) => `${p.id} started ${p.startedAt}`)
      return JSON.stringify({ at: Date.now(), channels, catalog }, null, 1)
    })
    .catch((err: unknown) => `(unavailable: ${err})`)

/** A dashboard field's text. */
const field = async (page: Page, id: string) =>
  (await page.locator(`[data-testid="${id}"]`).textContent()) ?? ''

describe.skipIf(skipReason !== undefined)('the dashboard of `npm start`', () => {
  let demo: ChildProcess
  let exited: Promise<number | null>
  let output = ''
  let url = ''
  let browser: Browser
  let page: Page
  const pageLogs: string[] = []
  const started = new Set<number>()

  beforeAll(async () => {
    // As `npm start` runs it (npm only adds the node devDependency to PATH), on a free HTTP port.
    demo = spawn(process.execPath, ['examples/demo/main.ts', '--port=0'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    exited = new Promise((resolve) => demo.once('exit', (code) => resolve(code)))
    demo.stderr!.on('data', (d) => {
      output += d
    })
    url = await within(
      secs(60),
      new Promise<string>((resolve, reject) => {
        createInterface({ input: demo.stdout! }).on('line', (line) => {
          output += `${line}\n`
          const m = /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(line)
          if (m) resolve(m[1]!)
        })
        void exited.then((code) => reject(new Error(`npm start exited with ${code}:\n${output}`)))
      }),
      'the start script prints the dashboard URL',
    )
    for (const pid of childrenOf(demo.pid!)) started.add(pid)
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu'],
    })
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
    page.on('console', (m) => pageLogs.push(`[${m.type()}] ${m.text()}`))
    page.on('pageerror', (e) => pageLogs.push(`[pageerror] ${e.message}`))
  })

  afterAll(async () => {
    await browser?.close().catch(() => {})
    // Whatever happened: stop the script (as Ctrl-C), then make sure nothing it started is left.
    if (demo && demo.exitCode === null && demo.signalCode === null) {
      demo.kill('SIGTERM')
      await within(secs(20), exited, 'the start script exits').catch(() => demo.kill('SIGKILL'))
    }
    for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL')
  })

  it('shows topology, stream, leader and collections live, and a new leader after "kill leader"', async () => {
    try {
      await page.goto(url)
      const peers = await page.waitForFunction(
        () => Number(document.querySelector('[data-testid="peer-count"]')?.textContent) >= 4,
        undefined,
        { timeout: secs(45) },
      )
      expect(await peers.jsonValue()).toBe(true)
      expect(await page.locator('[data-testid="peer-row"]').count()).toBeGreaterThanOrEqual(4)

      // The stream: the datum counter advances.
      await page.waitForFunction(
        () => Number(document.querySelector('[data-testid="datum-count"]')?.textContent) > 0,
        undefined,
        { timeout: secs(30) },
      )
      const datums = Number(await field(page, 'datum-count'))
      await page.waitForFunction(
        (n) => Number(document.querySelector('[data-testid="datum-count"]')?.textContent) > n + 100,
        datums,
        { timeout: secs(20) },
      )
      expect(Number(await field(page, 'datums-per-sec'))).toBeGreaterThan(0)

      // The group: a leader is shown, with a term and a commit index.
      const shown = () =>
        page.waitForFunction(
          () => /^node-\d+ /.test(document.querySelector('[data-testid="leader"]')?.textContent ?? ''),
          undefined,
          { timeout: secs(30) },
        )
      await shown()
      const leader = await field(page, 'leader')
      const term = Number(await field(page, 'term'))
      expect(term).toBeGreaterThan(0)
      // The leader shows as soon as the page's observer hears from it; what it applied follows once
      // it caught up, a moment later.
      await page.waitForFunction(
        () => Number(document.querySelector('[data-testid="commit-index"]')?.textContent) > 0,
        undefined,
        { timeout: secs(30) },
      )

      // The collections: the status Map has an entry per node, the queue has jobs.
      await page.waitForFunction(
        () =>
          document.querySelectorAll('[data-testid="map-entry"]').length >= 3 &&
          document.querySelectorAll('[data-testid="queue-entry"]').length >= 1,
        undefined,
        { timeout: secs(30) },
      )
      expect((await page.locator('[data-testid="map-entry"]').first().textContent()) ?? '').toMatch(
        /^node-\d/,
      )
      expect(Number(await field(page, 'map-version'))).toBeGreaterThan(0)

      mkdirSync(ARTIFACTS, { recursive: true })
      await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true })

      // Kill the leader: a different leader appears within seconds.
      await page.locator('[data-testid="kill-leader"]').click({ timeout: secs(10) })
      await page.waitForFunction(
        ([old, oldTerm]) => {
          const now = document.querySelector('[data-testid="leader"]')?.textContent ?? ''
          const term = Number(document.querySelector('[data-testid="term"]')?.textContent)
          return /^node-\d+ /.test(now) && now !== old && term > oldTerm
        },
        [leader, term] as const,
        { timeout: secs(15) },
      )
      expect(await field(page, 'kill-status')).toMatch(/killed node-\d/)
      const next = await field(page, 'leader')
      expect(next).not.toBe(leader)
      // Data keeps flowing peer to peer.
      const after = Number(await field(page, 'datum-count'))
      await page.waitForFunction(
        (n) => Number(document.querySelector('[data-testid="datum-count"]')?.textContent) > n + 100,
        after,
        { timeout: secs(20) },
      )
      await page.screenshot({ path: `${ARTIFACTS}dashboard-after-kill.png`, fullPage: true })
    } catch (err) {
      console.error(
        `start script output:\n${output}\npage logs:\n${pageLogs.slice(-30).join('\n')}\n` +
          `the page's price channels:\n${await priceChannels(page)}`,
      )
      throw err
    }
  })

  it('stops cleanly on SIGTERM (as Ctrl-C): exit 0, no child left', async () => {
    for (const pid of childrenOf(demo.pid!)) started.add(pid)
    expect(started.size).toBeGreaterThanOrEqual(4) // the relay and three nodes
    demo.kill('SIGTERM')
    expect(await within(secs(30), exited, 'the start script exits')).toBe(0)
    // Exited processes may take a moment to be reaped: poll, bounded.
    const deadline = Date.now() + secs(5)
    while ([...started].some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect([...started].filter(alive).map((pid) => `${pid}: ${cmdline(pid)}`)).toEqual([])
    expect(output).toMatch(/all processes stopped/)
  })
})

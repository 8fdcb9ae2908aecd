import { afterEach, describe, expect, it } from 'vitest'
import { chromiumPath, skipReason } from '../../e2e/support/browser.ts'
import { secs, within } from '../support/time.ts'
import { Example, killExamples, runExample } from './support.ts'

afterEach(killExamples)

describe('examples/map-browser-reader.ts', () => {
  it('--once: a Node reader reaches the writer’s version and prints the entries', async () => {
    const { code, stdout, stderr } = await runExample('examples/map-browser-reader.ts', ['--once'], secs(30))
    expect(code, stderr).toBe(0)
    const version = /writer: 3 scores written, version (\d+)/.exec(stdout)?.[1]
    expect(version).toBeDefined()
    expect(stdout).toContain(`node reader: version ${version}: alice=3 bob=5 carol=8`)
    expect(stdout).toMatch(/^done$/m)
  })

  it.skipIf(skipReason !== undefined)(
    'the served page reads the Map in Chromium, then Ctrl-C exits 0',
    async () => {
      const { chromium } = await import('playwright-core')
      const example = new Example('examples/map-browser-reader.ts', ['--port', '0'], secs(60))
      const version = Number(
        (await within(secs(30), example.line(/writer: 3 scores written, version (\d+)/)))[1],
      )
      const url = (await within(secs(30), example.line(/open (http:\/\/127\.0\.0\.1:\d+\/)/), 'the URL'))[1]!
      const browser = await chromium.launch({
        executablePath: chromiumPath,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu'],
      })
      try {
        const page = await browser.newPage()
        await page.goto(url)
        await page.waitForFunction((v) => Number(document.body.dataset.version) >= v, version, {
          timeout: secs(30),
        })
        const rows = await page.$$eval('#entries tr', (trs) => trs.map((tr) => tr.textContent))
        expect(rows.map((r) => r?.replace(/\d+$/, ''))).toEqual(['alice', 'bob', 'carol'])
        expect(await page.textContent('#status')).toMatch(/^version \d+, 3 entries$/)
      } finally {
        await browser.close()
      }
      example.kill('SIGINT')
      const { code, stderr } = await example.exited
      expect(code, stderr).toBe(0)
    },
  )
})

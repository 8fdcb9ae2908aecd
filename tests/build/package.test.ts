import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'
import { beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = new URL('../../', import.meta.url).pathname

/** Bundles an entry for browsers; esbuild fails on any Node built-in the code pulls in. */
async function browserBundle(entry: string) {
  const result = await build({
    entryPoints: [root + entry],
    bundle: true,
    minify: true,
    write: false,
    platform: 'browser',
    format: 'esm',
    metafile: true,
    logLevel: 'silent',
  })
  const inputs = Object.keys(result.metafile.inputs)
  const bytes = result.outputFiles[0]!.contents
  return { inputs, bytes, gzip: gzipSync(bytes).length }
}

describe('packaging', () => {
  it('the isomorphic core bundles for browsers without any Node built-in', async () => {
    const { inputs, bytes, gzip } = await browserBundle('src/index.ts')
    expect(inputs.filter((i) => i.startsWith('node:') || i.includes('(disabled)'))).toEqual([])
    console.log(
      `core browser bundle: ${(bytes.length / 1024).toFixed(0)} KiB minified, ${(gzip / 1024).toFixed(0)} KiB gzip`,
    )
  })

  it('the browser entry (core + browser transports) bundles without any Node built-in', async () => {
    const { inputs, bytes, gzip } = await browserBundle('platform/browser/index.ts')
    expect(inputs.filter((i) => i.startsWith('node:'))).toEqual([])
    console.log(
      `browser entry bundle: ${(bytes.length / 1024).toFixed(0)} KiB minified, ${(gzip / 1024).toFixed(0)} KiB gzip`,
    )
  })

  describe('built package', () => {
    beforeAll(async () => {
      await run('npx', ['tsup', '--silent'], { cwd: root })
    }, 120_000)

    it("resolves `import 'mosaik'` (and require, through require of ESM) to the Node build and runs a node", async () => {
      const esm = `
        const { Network, Digest } = await import('mosaik')
        const net = await Network.create({ network: 'pkg-test', listen: ['/memory/pkg-esm'] })
        console.log(JSON.stringify({ ok: typeof net.peerId === 'string', id: Digest.from('x').short() }))
        await net.close()`
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', esm], { cwd: root })
      expect(JSON.parse(stdout.trim())).toEqual({ ok: true, id: expect.any(String) })

      const cjs = `
        const { Network } = require('mosaik')
        Network.create({ network: 'pkg-test', listen: ['/memory/pkg-cjs'] })
          .then(async (net) => { console.log(typeof net.peerId); await net.close() })`
      const out = await run(process.execPath, ['-e', cjs], { cwd: root })
      expect(out.stdout.trim()).toBe('string')
    }, 60_000)

    it('builds the mosaik-relay bin named in package.json', async () => {
      const pkg = JSON.parse(await readFile(`${root}package.json`, 'utf8'))
      const bin = `${root}${pkg.bin['mosaik-relay']}`
      expect((await readFile(bin, 'utf8')).startsWith('#!/usr/bin/env node')).toBe(true)
      const { stdout } = await run(process.execPath, [bin, '--help'], { cwd: root })
      expect(stdout).toContain('--network')
    })
  })
})

import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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

/** Every file path a package.json "exports" value names, with its condition path (e.g. `./node > types`). */
function exportTargets(value: unknown, at: string): [string, string][] {
  if (typeof value === 'string') return [[at, value]]
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) =>
    exportTargets(v, at ? `${at} > ${k}` : k),
  )
}

/** The files tsup.config.ts makes: `<outDir>/<entry>.js`, and `.d.ts` where `dts` is on. */
async function tsupOutputs(): Promise<Set<string>> {
  const { default: configs } = (await import('../../tsup.config.ts')) as {
    default: { entry: Record<string, string>; outDir: string; dts?: boolean }[]
  }
  const files = new Set<string>()
  for (const config of configs) {
    for (const name of Object.keys(config.entry)) {
      files.add(`./${config.outDir}/${name}.js`)
      if (config.dts) files.add(`./${config.outDir}/${name}.d.ts`)
    }
  }
  return files
}

describe('packaging', () => {
  it('every "exports" target (and main, types, browser, bin, sideEffects) is a file tsup builds', async () => {
    const pkg = JSON.parse(await readFile(`${root}package.json`, 'utf8'))
    const built = await tsupOutputs()
    const targets = exportTargets(pkg.exports, '').filter(([, file]) => file !== './package.json')
    expect(targets.map(([at]) => at)).toEqual(
      expect.arrayContaining([
        '. > node > types',
        '. > browser > default',
        './node > types',
        './browser > types',
      ]),
    )
    for (const [at, file] of targets) expect(built.has(file), `${at}: ${file}`).toBe(true)
    for (const file of [pkg.main, pkg.types, pkg.browser, pkg.bin['mosaik-relay']]) {
      expect(built.has(file), file).toBe(true)
    }
    // `node` before `browser`: a resolver that sets both (an SSR or test runner on Node) takes the Node build.
    expect(Object.keys(pkg.exports['.'])).toEqual(['node', 'browser', 'types', 'default'])
    expect(pkg.exports['./node']).toEqual(pkg.exports['.'].node)
    expect(pkg.exports['./browser']).toEqual(pkg.exports['.'].browser)
    // sideEffects names the entries that register their platform (and the bin): the shipped ones, and
    // their sources, which examples and tests bundle from a checkout (without them esbuild drops the
    // registration and the page finds no platform).
    expect(pkg.sideEffects).toEqual([
      './dist/node/index.js',
      './dist/browser/index.js',
      './dist/relay/*.js',
      './platform/*/index.ts',
    ])
    expect(pkg.files).toEqual(['dist'])
    expect(existsSync(`${root}LICENSE`)).toBe(true)
  })

  it('the lockfile records every optional QUIC binding, so `npm ci` accepts it (.ci/run)', async () => {
    // The registry lacks most of them, so npm cannot record them; they are kept by hand, with no tarball.
    const lock = JSON.parse(await readFile(`${root}package-lock.json`, 'utf8'))
    const quic = lock.packages['node_modules/@chainsafe/libp2p-quic']
    for (const [name, version] of Object.entries(quic.optionalDependencies as Record<string, string>)) {
      const entry = lock.packages[`node_modules/${name}`]
      expect(entry, name).toMatchObject({
        version,
        optional: true,
        os: expect.any(Array),
        cpu: expect.any(Array),
      })
    }
  })

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

    it('builds every file package.json names', async () => {
      const pkg = JSON.parse(await readFile(`${root}package.json`, 'utf8'))
      for (const [at, file] of exportTargets(pkg.exports, ''))
        expect(existsSync(root + file), `${at}: ${file}`).toBe(true)
    })

    it("`mosaik/node` gives the Node types (FileLogStore) under moduleResolution 'bundler'", async () => {
      // A consumer project with the package installed (a symlink to this checkout, as `npm link` makes).
      const dir = await mkdtemp(join(tmpdir(), 'mosaik-bundler-types-'))
      try {
        await mkdir(join(dir, 'node_modules'))
        await symlink(root, join(dir, 'node_modules', 'mosaik'), 'dir')
        await writeFile(
          join(dir, 'tsconfig.json'),
          JSON.stringify({
            compilerOptions: {
              target: 'ES2024',
              lib: ['ES2024', 'ESNext.Disposable', 'DOM'],
              module: 'ESNext',
              moduleResolution: 'bundler',
              strict: true,
              skipLibCheck: true,
              noEmit: true,
              types: [],
            },
            files: ['main.ts'],
          }),
        )
        await writeFile(
          join(dir, 'main.ts'),
          [
            "import { FileLogStore, Network } from 'mosaik/node'",
            "import { IdbLogStore } from 'mosaik/browser'",
            "import { Network as DefaultNetwork } from 'mosaik'",
            'export const used = [FileLogStore, IdbLogStore, Network, DefaultNetwork]',
          ].join('\n'),
        )
        const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
        const result = await run(process.execPath, [tsc, '-p', dir]).catch((err) => err)
        expect(`${result.stdout ?? ''}${result.stderr ?? ''}`).toBe('')
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    }, 60_000)

    // The system Node of many machines is older than 22: the built package must say so, not fail
    // with a TypeError deep inside libp2p.
    const oldNode = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => existsSync(p))
    it.runIf(oldNode)(
      'on a system Node before 22, Network.create fails with UNSUPPORTED_RUNTIME',
      async () => {
        const { stdout: version } = await run(oldNode!, ['--version'])
        if (Number.parseInt(version.slice(1), 10) >= 22) return
        const esm = `
        const { Network } = await import('mosaik')
        await Network.create({ network: 'pkg-old-node', listen: ['/ip4/127.0.0.1/tcp/0'] }).then(
          () => console.log('created'),
          (e) => console.log(JSON.stringify({ code: e.code, message: e.message })),
        )`
        const { stdout } = await run(oldNode!, ['--input-type=module', '-e', esm], { cwd: root })
        expect(JSON.parse(stdout.trim())).toEqual({
          code: 'UNSUPPORTED_RUNTIME',
          message: `mosaik needs Node ≥ 22 (this is ${version.trim()})`,
        })
      },
    )

    it('builds the mosaik-relay bin named in package.json', async () => {
      const pkg = JSON.parse(await readFile(`${root}package.json`, 'utf8'))
      const bin = `${root}${pkg.bin['mosaik-relay']}`
      expect((await readFile(bin, 'utf8')).startsWith('#!/usr/bin/env node')).toBe(true)
      const { stdout } = await run(process.execPath, [bin, '--help'], { cwd: root })
      expect(stdout).toContain('--network')
    })
  })
})

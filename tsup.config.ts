import { defineConfig } from 'tsup'

/**
 * Two builds of one core: `dist/node` (ESM, Node transports and disk) and `dist/browser`
 * (ESM, browser transports). package.json routes `import 'mosaik'` to the right one.
 * `dist/relay` is the relay binary.
 */
export default defineConfig([
  {
    entry: { index: 'platform/node/index.ts' },
    outDir: 'dist/node',
    platform: 'node',
    target: 'node22',
    // ESM only: CommonJS callers load it with require() on Node >= 22.12 (require of ESM), since
    // libp2p itself ships no CommonJS.
    format: ['esm'],
    dts: true,
    sourcemap: true,
    clean: true,
  },
  {
    // The `mosaik-relay` bin (package.json "bin"); it carries its own copy of the Node build.
    entry: { main: 'relay/main.ts' },
    outDir: 'dist/relay',
    platform: 'node',
    target: 'node22',
    format: ['esm'],
    dts: false,
    sourcemap: true,
    clean: true,
  },
  {
    entry: { index: 'platform/browser/index.ts' },
    outDir: 'dist/browser',
    platform: 'browser',
    target: 'es2023',
    format: ['esm'],
    dts: true,
    sourcemap: true,
    clean: true,
  },
])

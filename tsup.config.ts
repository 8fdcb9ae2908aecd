import { defineConfig } from 'tsup'

/**
 * Two builds of one core: `dist/node` (ESM, Node transports and disk) and `dist/browser`
 * (ESM, browser transports). package.json routes `import 'mosaik'` to the right one.
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

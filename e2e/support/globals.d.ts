/** The browser build of mosaik, as e2e pages expose it (entry.ts). */
declare var mosaik: typeof import('../../platform/browser/index.ts')

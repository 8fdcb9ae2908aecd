/**
 * What the e2e page loads: the browser build of mosaik, on `globalThis.mosaik`, so tests can drive it
 * with `page.evaluate` (see globals.d.ts).
 */
import * as sdk from '../../platform/browser/index.ts'

globalThis.mosaik = sdk

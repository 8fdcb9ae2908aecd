/**
 * The Node version check. mosaik (and libp2p 3) use ES2024 built-ins such as `Promise.withResolvers`,
 * which Node has from 22 on; on older versions a node would fail deep inside a transport with a
 * TypeError. `Network.create` runs this check first (the Node platform's `checkRuntime`).
 */
import { UnsupportedRuntimeError } from '../../src/primitives/errors.ts'

/** The oldest Node major version the SDK runs on (package.json `engines`). */
export const MIN_NODE_MAJOR = 22

/**
 * Throws UnsupportedRuntimeError on Node before 22, or when `Promise.withResolvers` is missing (a
 * polyfilled or stripped runtime). `version` and `hasWithResolvers` default to the running process.
 */
export function checkNodeRuntime(
  version: string = process.versions.node,
  hasWithResolvers: boolean = typeof Promise.withResolvers === 'function',
): void {
  const running = version.replace(/^v/, '')
  const major = Number.parseInt(running, 10)
  if (!(major >= MIN_NODE_MAJOR)) {
    throw new UnsupportedRuntimeError(`mosaik needs Node ≥ ${MIN_NODE_MAJOR} (this is v${running})`)
  }
  if (!hasWithResolvers) {
    throw new UnsupportedRuntimeError(
      `mosaik needs Node ≥ ${MIN_NODE_MAJOR} with Promise.withResolvers (this is v${running}, where it is missing)`,
    )
  }
}

/**
 * WebRTC for Node, loaded on demand, so browsers can reach full nodes directly. `@libp2p/webrtc` loads
 * node-datachannel, a native module, when imported; where it has no build for the platform the
 * import throws. Loading it here, lazily and once, keeps `import 'mosaik'` working everywhere: without
 * it browsers still reach the node through the relay (`/p2p-circuit`), only not upgraded to WebRTC.
 *
 * When to use: `Network.create` calls `loadWebRTC()` through the platform's `prepare()`.
 *
 * Gotchas: the fallback prints ONE process warning (code `MOSAIK_WEBRTC_UNAVAILABLE`).
 * `MOSAIK_DISABLE_WEBRTC=1` turns it off on purpose.
 */
import type { TransportFactory } from '../../src/network/platform.ts'

/** The `code` of the process warning printed once when WebRTC cannot load and nodes run without it. */
export const WEBRTC_UNAVAILABLE_WARNING = 'MOSAIK_WEBRTC_UNAVAILABLE'

let loading: Promise<boolean> | undefined
let loaded: (() => TransportFactory) | undefined

/** Loads `@libp2p/webrtc` once; false (after one warning) when it cannot load. */
export function loadWebRTC(): Promise<boolean> {
  loading ??= (async () => {
    const disabled = process.env.MOSAIK_DISABLE_WEBRTC
    if (disabled && disabled !== '0' && disabled !== 'false') return false
    try {
      const { webRTC } = await import('@libp2p/webrtc')
      loaded = () => webRTC()
      return true
    } catch (err) {
      const reason = ((err as Error)?.message ?? String(err)).split('\n')[0]
      process.emitWarning(
        `WebRTC is unavailable on ${process.platform}-${process.arch} (${reason}); browsers reach this node ` +
          'through relays only.',
        { code: WEBRTC_UNAVAILABLE_WARNING },
      )
      return false
    }
  })()
  return loading
}

/** The WebRTC transport when it has loaded, else nothing (call `loadWebRTC()` first). */
export function webRTCTransports(): TransportFactory[] {
  return loaded ? [loaded()] : []
}

/** Drops `/webrtc` listen addresses when WebRTC has not loaded. */
export function withoutUnavailableWebRTC(addresses: string[]): string[] {
  return loaded ? addresses : addresses.filter((a) => a !== '/webrtc')
}

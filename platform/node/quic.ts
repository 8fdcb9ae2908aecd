/**
 * QUIC for Node, loaded on demand. `@chainsafe/libp2p-quic` needs a native binding that npm carries
 * for a few platforms only; where it is missing, importing the package throws. Loading it here, lazily
 * and once, keeps `import 'mosaik'` working everywhere: without QUIC a node runs on TCP and WebSockets.
 *
 * When to use: `Network.create` calls `loadQuic()` through the platform's `prepare()`; a program that
 * builds listen addresses itself (the relay) asks `quicAvailable()` first.
 *
 * Gotchas: the fallback prints ONE process warning (code `MOSAIK_QUIC_UNAVAILABLE`), however many
 * nodes the process starts. `MOSAIK_DISABLE_QUIC=1` turns QUIC off on purpose (tests, and hosts whose
 * UDP is blocked). Explicit `/quic-v1` listen addresses still fail to bind when QUIC is unavailable.
 */
import type { TransportFactory } from '../../src/network/platform.ts'

/** The `code` of the process warning printed once when QUIC cannot load and nodes fall back to TCP. */
export const QUIC_UNAVAILABLE_WARNING = 'MOSAIK_QUIC_UNAVAILABLE'

let loading: Promise<(() => TransportFactory) | undefined> | undefined
let loaded: (() => TransportFactory) | undefined

/** Resolves to QUIC's transport factory maker, or undefined (after one warning) when it cannot load. */
export function loadQuic(): Promise<(() => TransportFactory) | undefined> {
  loading ??= (async () => {
    const disabled = process.env.MOSAIK_DISABLE_QUIC
    if (disabled && disabled !== '0' && disabled !== 'false') {
      warn('QUIC is disabled by MOSAIK_DISABLE_QUIC; nodes use TCP and WebSockets only')
      return undefined
    }
    try {
      const { quic } = await import('@chainsafe/libp2p-quic')
      loaded = () => quic()
      return loaded
    } catch (err) {
      const reason = ((err as Error)?.message ?? String(err)).split('\n')[0]!.split('. ')[0]
      warn(
        `QUIC is unavailable on ${process.platform}-${process.arch} (${reason}); nodes use TCP and ` +
          'WebSockets only. Install the native binding of @chainsafe/libp2p-quic for this platform to enable it.',
      )
      return undefined
    }
  })()
  return loading
}

/** Whether QUIC loaded (loading it first if nobody has yet). */
export async function quicAvailable(): Promise<boolean> {
  return (await loadQuic()) !== undefined
}

/** The QUIC transport when it has loaded, else nothing (call `loadQuic()` first). */
export function quicTransports(): TransportFactory[] {
  return loaded ? [loaded()] : []
}

/** Whether a multiaddr needs QUIC (`/quic` or `/quic-v1`). */
export function isQuicAddress(address: string): boolean {
  return /\/quic(-v1)?(\/|$)/.test(address)
}

/** Drops `/quic` and `/quic-v1` addresses when QUIC has not loaded. */
export function withoutUnavailableQuic(addresses: string[]): string[] {
  return loaded ? addresses : addresses.filter((a) => !isQuicAddress(a))
}

function warn(message: string): void {
  process.emitWarning(message, { code: QUIC_UNAVAILABLE_WARNING })
}

/**
 * The browser entry of mosaik: the isomorphic core plus browser transports (WebSockets, WebRTC,
 * WebRTC-direct, WebTransport, circuit relay). Browsers reach the cluster through relay nodes. With a
 * `dataDir`, the identity and group logs persist in IndexedDB (one database each, named
 * `<dataDir>/<name>`) and a Web Lock keeps a second tab off the same `dataDir`.
 */
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { memory } from '@libp2p/memory'
import { webRTC, webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { webTransport } from '@libp2p/webtransport'
import { type Platform, registerPlatform } from '../../src/network/platform.ts'
import { loadBrowserIdentity, lockBrowserDataDir, openBrowserLogStore } from './storage.ts'

export * from '../../src/index.ts'
export { IdbLogStore, type IdbLogStoreOptions } from './idb-log-store.ts'
export { requestPersistentStorage } from './storage.ts'

/**
 * The browser Platform, registered when this entry is imported: WebSockets, WebRTC, WebRTC-direct,
 * WebTransport, circuit relay and memory transports; the identity and group logs in IndexedDB.
 */
export const browserPlatform: Platform = {
  name: 'browser',
  transports: () => [
    webSockets(),
    webRTC(),
    webRTCDirect(),
    webTransport(),
    circuitRelayTransport(),
    memory(),
  ],
  // Reachable through a relay reservation, upgraded to direct WebRTC when possible.
  defaultListen: () => ['/p2p-circuit', '/webrtc'],
  lockDataDir: lockBrowserDataDir,
  loadIdentity: loadBrowserIdentity,
  openLogStore: openBrowserLogStore,
  // Hidden tabs throttle their timers: a page replicates groups and writes through them, never votes.
  groupVoting: false,
}

registerPlatform(browserPlatform)

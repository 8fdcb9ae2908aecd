/**
 * What a multiaddr says about its transport: which listen addresses need QUIC, which addresses a
 * browser can dial, and the transport label /metrics counts connections by.
 */
import type { Connection } from '@libp2p/interface'
import { isQuicAddress } from '../platform/node/quic.ts'

const WEBSOCKETS = /\/(ws|wss)(\/|$)/

/** Whether a multiaddr needs QUIC: the platform's own test, which decides what it can listen on. */
export const isQuic = isQuicAddress

/** Browsers dial WebSockets (ws, wss, tls/ws) and WebRTC-direct; never TCP or QUIC. */
export function isBrowserDialable(address: string): boolean {
  return WEBSOCKETS.test(address) || address.includes('/webrtc-direct/')
}

/** The `transport` label of a connection; the most specific protocol wins (a circuit over TCP is 'circuit'). */
export function transportOf(conn: Connection): string {
  const a = conn.remoteAddr.toString()
  if (a.includes('/p2p-circuit')) return 'circuit'
  if (a.includes('/webrtc-direct')) return 'webrtc-direct'
  if (a.includes('/webrtc')) return 'webrtc'
  if (WEBSOCKETS.test(a)) return 'websockets'
  if (isQuic(a)) return 'quic'
  if (a.includes('/tcp/')) return 'tcp'
  return 'other'
}

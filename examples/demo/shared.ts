/**
 * What the demo's node processes and its browser dashboard agree on: the network name, stream
 * definitions, the replicated counter, collection store ids, and what a node reports to the start
 * script. Isomorphic (imports only the core), so both builds use it.
 */
import { defineStream, type StateMachine } from '../../src/index.ts'

export const NETWORK = 'mosaik-demo'
export const COUNTER_SECRET = 'mosaik-demo/counter'
export const STATUS_MAP = 'demo/status'
export const JOBS_QUEUE = 'demo/jobs'
export const SYMBOLS = ['ETH', 'BTC', 'SOL', 'ATOM', 'DOT'] as const

/** One synthetic price tick. */
export interface Price {
  seq: number
  /** Milliseconds since the epoch, at the producer. */
  at: number
  symbol: string
  price: number
}
export const Prices = defineStream<Price>('demo/prices')

/** What a node sees of its own connections: the dashboard draws the topology from these. */
export interface Link {
  peer: string
  /** 'direct' (QUIC, TCP, WebSockets), 'relayed' (/p2p-circuit) or 'webrtc'. */
  kind: 'direct' | 'relayed' | 'webrtc'
  /** The protocol of the remote address, e.g. 'quic-v1', 'tcp', 'ws', 'webrtc-direct'. */
  transport: string
  rtt: number | undefined
}
export interface Links {
  name: string
  peerId: string
  at: number
  links: Link[]
}
export const LinksStream = defineStream<Links>('demo/links')

/** One entry of the status Map, written by each node under its name. */
export interface NodeStatus {
  peerId: string
  pid: number
  tags: string[]
  counter: number
  prices: number
  beat: number
  at: number
}

/** A job in the PriorityQueue (priority: higher first). */
export interface Job {
  by: string
  at: number
}

/** The replicated counter every node runs (README "Groups"). */
export class Counter implements StateMachine<{ add: number }, null, number> {
  readonly signature = 'mosaik-demo/counter/v1'
  value = 0
  apply(cmd: { add: number }): void {
    this.value += cmd.add
  }
  query(): number {
    return this.value
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.value))
  }
  restore(bytes: Uint8Array): void {
    this.value = bytes.length === 0 ? 0 : Number(new TextDecoder().decode(bytes))
  }
}

/** How a connection's remote address was reached. */
export function linkKind(remoteAddr: string): { kind: Link['kind']; transport: string } {
  const parts = remoteAddr.split('/')
  const transport =
    ['webrtc-direct', 'webrtc', 'quic-v1', 'quic', 'wss', 'ws', 'webtransport'].find((p) =>
      parts.includes(p),
    ) ?? (parts.includes('tcp') ? 'tcp' : parts.includes('memory') ? 'memory' : 'other')
  if (parts.includes('webrtc')) return { kind: 'webrtc', transport: 'webrtc' }
  if (parts.includes('p2p-circuit')) return { kind: 'relayed', transport }
  if (transport === 'webrtc-direct') return { kind: 'webrtc', transport }
  return { kind: 'direct', transport }
}

/** What a node process tells the start script (over the IPC channel). */
export type NodeReport =
  | { type: 'ready'; name: string; peerId: string; pid: number; addresses: string[] }
  | {
      type: 'status'
      name: string
      peerId: string
      /** Raft role in the counter group. */
      role: string
      leader: string | undefined
      term: number
      /** The index applied here (`group.applied`; `status.commitIndex` is refreshed only on status changes). */
      applied: number
      counter: number
      voters: readonly string[]
      /** Prices this node consumed (0 on the producer) and produced. */
      consumed: number
      produced: number
      peers: number
      statusEntries: number
      jobs: number
    }

import { isLoopback } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import { hostKey } from './hosts.ts'

/**
 * Caps on inbound work in progress (handshakes, exchanges, subscriptions), per peer, per remote host
 * and in total. Peer ids cost nothing to mint, so with per-peer caps alone one machine could hold the
 * whole node-wide cap (its connections times the per-peer cap); the per-host cap makes that take
 * several hosts.
 */

/** How many slots one peer, one remote host, and all peers together may hold at once. */
export interface InboundCaps {
  /** Slots one peer id may hold. */
  readonly perPeer: number
  /**
   * Slots the peers of one remote host may hold together (a host as `hostKey` says: an IPv4 address
   * or an IPv6 /64). Loopback, in-memory and relayed connections are not counted per host.
   */
  readonly perHost: number
  /** Slots all peers together may hold (default: no cap). */
  readonly total?: number
}

/** The cap that refused a slot: the peer's, its host's, or the node-wide one. */
export type CapReached = 'peer' | 'host' | 'total'

/** What `InboundLimit.enter` answers: a slot and its release, or which cap refused one. */
export type InboundSlot =
  | { readonly ok: true; readonly release: () => void }
  | { readonly ok: false; readonly reached: CapReached }

/**
 * The host an inbound connection from `address` is counted against, or undefined when it is not
 * counted per host: loopback (local processes and tests), and connections without an IP of their own.
 */
export function countedHost(address: Multiaddr | undefined): string | undefined {
  if (address === undefined || isLoopback(address)) return undefined
  return hostKey(address)
}

/**
 * Counts slots in progress per peer, per remote host and in total, within `InboundCaps`. A slot is
 * taken with `enter` and given back with its release (once; later calls do nothing).
 */
export class InboundLimit {
  readonly #perPeer: number
  readonly #perHost: number
  readonly #total: number
  readonly #peers = new Map<string, number>()
  readonly #hosts = new Map<string, number>()
  #count = 0

  constructor(caps: InboundCaps) {
    this.#perPeer = caps.perPeer
    this.#perHost = caps.perHost
    this.#total = caps.total ?? Number.POSITIVE_INFINITY
  }

  /** Slots in use in total. */
  get size(): number {
    return this.#count
  }

  /** Takes a slot for `peer`, connected from `address`; or says which cap is reached. */
  enter(peer: string, address: Multiaddr | undefined): InboundSlot {
    const host = countedHost(address)
    if ((this.#peers.get(peer) ?? 0) >= this.#perPeer) return { ok: false, reached: 'peer' }
    if (host !== undefined && (this.#hosts.get(host) ?? 0) >= this.#perHost) {
      return { ok: false, reached: 'host' }
    }
    if (this.#count >= this.#total) return { ok: false, reached: 'total' }
    increment(this.#peers, peer)
    if (host !== undefined) increment(this.#hosts, host)
    this.#count++
    let released = false
    const release = () => {
      if (released) return
      released = true
      this.#count--
      decrement(this.#peers, peer)
      if (host !== undefined) decrement(this.#hosts, host)
    }
    return { ok: true, release }
  }
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1)
}

/** Drops the key at zero, so the maps hold only peers and hosts with slots in use. */
function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1
  if (left <= 0) counts.delete(key)
  else counts.set(key, left)
}

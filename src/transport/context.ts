import type { GossipSub } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { Connection, Libp2p, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import type { AbortOptions } from '../primitives/abort.ts'
import type { NetworkId } from '../primitives/digest.ts'
import { ClosedError, InvalidArgumentError } from '../primitives/errors.ts'
import type { Scope } from '../primitives/scope.ts'
import { type Clock, systemClock } from '../primitives/time.ts'
import { stripPeer } from './addresses.ts'
import { Link, type LinkOptions } from './link.ts'
import { peerIdOf } from './peer-ids.ts'

export type MosaikLibp2p = Libp2p<{ identify: Identify; pubsub: GossipSub }>

export interface Logger {
  (formatter: string, ...args: unknown[]): void
  error(formatter: string, ...args: unknown[]): void
  trace(formatter: string, ...args: unknown[]): void
}

/**
 * What a node's subsystems are built on: the libp2p node, identity, clock, limits, and helpers to open
 * and accept Links on the node's protocols. The Network builds it; each subsystem names the part it
 * uses (DiscoveryComponents, StreamsComponents, GroupsComponents).
 */
export class NetworkContext {
  readonly networkId: NetworkId
  readonly peerId: string
  readonly libp2p: MosaikLibp2p
  readonly privateKey: PrivateKey
  /** Wall-clock milliseconds since the epoch: for what other nodes compare (entry timestamps). */
  readonly now: () => number
  /** Monotonic milliseconds: for durations (round trips, timeouts, backoff, uptime). */
  readonly clock: Clock
  readonly linkOptions: LinkOptions
  readonly scope: Scope
  /** The node keeps its peer id across restarts (a given key, or one kept under `dataDir`). */
  readonly stableIdentity: boolean
  readonly #logPrefix: string
  #addressBook: (peerId: string) => readonly string[] | undefined = () => undefined
  /** The addresses last taught to libp2p's peer store, by peer, so an unchanged set is not written again. */
  readonly #taught = new Map<string, string>()

  constructor(init: {
    networkId: NetworkId
    libp2p: MosaikLibp2p
    privateKey: PrivateKey
    now: () => number
    clock?: Clock
    linkOptions: LinkOptions
    scope: Scope
    stableIdentity?: boolean
  }) {
    this.networkId = init.networkId
    this.libp2p = init.libp2p
    this.peerId = init.libp2p.peerId.toString()
    this.privateKey = init.privateKey
    this.now = init.now
    this.clock = init.clock ?? systemClock
    this.linkOptions = init.linkOptions
    this.scope = init.scope
    this.stableIdentity = init.stableIdentity ?? false
    this.#logPrefix = `mosaik:${this.peerId.slice(-6)}`
  }

  /** `/mosaik/<network-short>/<name>`: protocols are per network, so networks never cross-talk. */
  protocol(name: string): string {
    return `/mosaik/${this.networkId.short()}/${name}`
  }

  log(component: string): Logger {
    return logger(`${this.#logPrefix}:${component}`) as Logger
  }

  /**
   * Dials `peer` (a peer id with known addresses, or a full multiaddr) and opens a Link on `protocol`.
   * `link` overrides the node's link options for this link (e.g. a smaller frame limit).
   */
  async openLink(
    peer: string,
    protocol: string,
    options: AbortOptions & { link?: LinkOptions } = {},
  ): Promise<Link> {
    if (this.scope.closed) throw new ClosedError('network is closed')
    const connection = peer.startsWith('/')
      ? await this.libp2p.dial(multiaddr(peer), { signal: options.signal })
      : await this.dialPeer(peer, options)
    const stream = await connection.newStream(protocol, {
      signal: options.signal,
      runOnLimitedConnection: true,
    })
    return new Link(stream, connection, { ...this.linkOptions, ...options.link })
  }

  /**
   * Accepts Links on `protocol`; handler failures close the link instead of crashing the node. A
   * handler that fails after its link began closing (e.g. the link refused an oversized frame) lets
   * that close flush its frame first, so the remote always learns the code.
   */
  async handle(
    protocol: string,
    handler: (link: Link) => Promise<void> | void,
    options: { maxInboundStreams?: number; maxOutboundStreams?: number; link?: LinkOptions } = {},
  ): Promise<void> {
    const log = this.log('handler')
    const linkOptions = { ...this.linkOptions, ...options.link }
    await this.libp2p.handle(
      protocol,
      async (stream: Stream, connection: Connection) => {
        const link = new Link(stream, connection, linkOptions)
        try {
          await handler(link)
        } catch (err) {
          log('handler for %s failed: %s', protocol, (err as Error).message)
          if (link.isClosed) await link.close()
          else link.abort((err as Error).message)
        }
      },
      {
        maxInboundStreams: options.maxInboundStreams ?? 256,
        maxOutboundStreams: options.maxOutboundStreams ?? 256,
        runOnLimitedConnection: true,
      },
    )
  }

  /**
   * Where dials by peer id find addresses libp2p does not hold: discovery's catalog, whose entries are
   * within the entry limits (so the peer store never gets more addresses per peer than they allow).
   */
  useAddressBook(book: (peerId: string) => readonly string[] | undefined): void {
    this.#addressBook = book
  }

  /**
   * Connects to `peerId` (the open connection if there is one), first teaching libp2p the addresses
   * the address book holds for it when they changed since it was last taught.
   *
   * Why only here: a node learns every peer of the network and dials a handful. Writing each entry's
   * addresses into the peer store as it arrived cost a peer store write per peer and version (5 % of
   * the CPU of 50 nodes forming a network) and kept a second copy of the catalog in libp2p.
   */
  async dialPeer(peerId: string, options: AbortOptions = {}): Promise<Connection> {
    const id = peerIdOf(peerId)
    if (this.libp2p.getConnections(id).length === 0) await this.#teach(peerId)
    return this.libp2p.dial(id, { signal: options.signal })
  }

  /** Forgets what libp2p was taught of `peerId` (its peer store record is being deleted). */
  forgetTaught(peerId: string): void {
    this.#taught.delete(peerId)
  }

  /**
   * The addresses replace those held: a merge would let a peer that changes addresses with every
   * version grow the peer store without bound.
   */
  async #teach(peerId: string): Promise<void> {
    const addresses = peerId === this.peerId ? undefined : this.#addressBook(peerId)
    if (addresses === undefined || addresses.length === 0) return
    const key = addresses.join(' ')
    if (this.#taught.get(peerId) === key) return
    this.#taught.set(peerId, key)
    try {
      await this.libp2p.peerStore.patch(peerIdOf(peerId), {
        multiaddrs: addresses.map((a) => multiaddr(stripPeer(a))),
      })
    } catch (err) {
      this.#taught.delete(peerId)
      throw new InvalidArgumentError(`bad address for ${peerId}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** False for a string that is not a peer id (ids from the wire are checked only with the signature). */
  isConnected(peerId: string): boolean {
    let id: PeerId
    try {
      id = peerIdOf(peerId)
    } catch {
      return false
    }
    return this.libp2p.getConnections(id).length > 0
  }
}

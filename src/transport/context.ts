import type { GossipSub } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { Connection, Libp2p, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import type { AbortOptions } from '../primitives/abort.ts'
import type { NetworkId } from '../primitives/digest.ts'
import { ClosedError, InvalidArgumentError } from '../primitives/errors.ts'
import type { Scope } from '../primitives/scope.ts'
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
  readonly now: () => number
  readonly linkOptions: LinkOptions
  readonly scope: Scope
  /** The node keeps its peer id across restarts (a given key, or one kept under `dataDir`). */
  readonly stableIdentity: boolean
  readonly #logPrefix: string

  constructor(init: {
    networkId: NetworkId
    libp2p: MosaikLibp2p
    privateKey: PrivateKey
    now: () => number
    linkOptions: LinkOptions
    scope: Scope
    stableIdentity?: boolean
  }) {
    this.networkId = init.networkId
    this.libp2p = init.libp2p
    this.peerId = init.libp2p.peerId.toString()
    this.privateKey = init.privateKey
    this.now = init.now
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
    const target = peer.startsWith('/') ? multiaddr(peer) : peerIdOf(peer)
    const connection = await this.libp2p.dial(target, { signal: options.signal })
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
   * Teaches libp2p how to reach `peerId`, so later dials by id work. The addresses replace those held
   * (a merge would let a peer that changes addresses with every version grow the peer store without
   * bound); the caller bounds how many there are.
   */
  async learnAddresses(peerId: string, addresses: readonly string[]): Promise<void> {
    if (peerId === this.peerId || addresses.length === 0) return
    try {
      const id = peerIdOf(peerId)
      await this.libp2p.peerStore.patch(id, { multiaddrs: addresses.map((a) => multiaddr(stripPeer(a))) })
    } catch (err) {
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

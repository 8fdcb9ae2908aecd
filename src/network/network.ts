import { generateKeyPair } from '@libp2p/crypto/keys'
import type { ConnectionGater, PrivateKey } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { Discovery, type DiscoveryOptions, discoveryConfig } from '../discovery/discovery.ts'
import type { GroupsComponents } from '../groups/groups.ts'
import { Groups, type GroupsOptions } from '../groups/index.ts'
import { Digest, type DigestLike, type NetworkId } from '../primitives/digest.ts'
import { abortReason, InvalidArgumentError } from '../primitives/errors.ts'
import { Scope } from '../primitives/scope.ts'
import { Streams, type StreamsOptions } from '../streams/index.ts'
import { checkPeerAddress } from '../transport/addresses.ts'
import { type MosaikLibp2p, NetworkContext } from '../transport/context.ts'
import { DEFAULT_MAX_FRAME_SIZE } from '../transport/link.ts'
import { startLibp2p } from './libp2p-node.ts'
import { currentPlatform, type DataDirLock, type Platform, type TransportFactory } from './platform.ts'

/**
 * Extra libp2p pieces a node runs beside its own: more transports and more services.
 *
 * When to use: a node with a special role, such as the relay binary (`circuitRelayServer` as a
 * service, `webRTCDirect` as a transport). Ordinary nodes never need it: every platform already
 * brings the circuit relay transport (and Node brings WebRTC where its native module loads).
 *
 * Gotchas: the names `identify` and `pubsub` are the node's own and cannot be replaced. Protocols
 * that must work over relayed connections need `runOnLimitedConnection` unless the relay is unlimited.
 */
export interface Libp2pExtensions {
  /** Transport factories added after the platform's. */
  transports?: TransportFactory[]
  /** Services by name, as libp2p's `services` option; reachable as `net.libp2p.services[name]`. */
  // biome-ignore lint/suspicious/noExplicitAny: libp2p's service factories take component bags of varying shape
  services?: Record<string, (components: any) => unknown>
}

/** Everything `Network.create` accepts; only `network` is required. */
export interface NetworkOptions {
  /** The network's name (or its 64-hex id). Nodes of different networks never see each other. */
  network: DigestLike
  /** Role tags of this node (`Digest.from(tag)`), visible to every peer's predicates. */
  tags?: DigestLike[]
  /**
   * Addresses of peers to join through, with `/p2p/<id>` (e.g. a relay's). Retried until one answers;
   * a malformed one is refused with InvalidArgumentError, and one that keeps failing is reported by a
   * `bootstrap:unreachable` discovery event and in `discovery.bootstrapStatus()`.
   */
  bootstrap?: string[]
  /** Listen addresses; the platform's default when omitted (Node: QUIC and TCP on all interfaces). */
  listen?: string[]
  /** Persistence root: the node identity and group logs live here (Node: a directory). */
  dataDir?: string
  /** The node's libp2p Ed25519 key; random (or loaded from `dataDir`) when omitted. */
  privateKey?: PrivateKey
  /** Discovery tuning. */
  discovery?: DiscoveryOptions
  /** Streams tuning. */
  streams?: StreamsOptions
  /** Groups tuning. */
  groups?: GroupsOptions
  /** Largest frame any protocol accepts, in bytes (default 4 MiB). */
  maxFrameSize?: number
  /**
   * Addresses to advertise instead of the listen addresses, in the node's catalog entry and to libp2p
   * (default: the listen addresses). For a node behind NAT or a proxy: its public IP, or a TLS proxy's
   * `/dns4/<name>/tcp/443/wss`.
   */
  announce?: string[]
  /** Most connections libp2p keeps open (default 300). */
  maxConnections?: number
  /**
   * Most inbound connections one remote host (an IPv4 address, or an IPv6 /64) may hold at once,
   * open or still upgrading; more are refused (default 32). Without it, one machine minting
   * identities takes every connection slot and no new peer can join.
   *
   * Gotchas: behind a proxy or NAT that hides client addresses (Docker's userland proxy, a
   * TLS-terminating proxy for WebSockets) every peer comes from one address: raise this. Relayed
   * connections are not counted here (the relay sees their real address), and loopback is exempt
   * unless `limitLoopback` is set.
   */
  maxConnectionsPerHost?: number
  /**
   * Apply `maxConnectionsPerHost` to connections from loopback too (default false: local processes,
   * such as the many nodes of a test or a development cluster on one machine, are not limited).
   */
  limitLoopback?: boolean
  /**
   * Let a browser dial private and loopback addresses (default false). Browsers refuse them, so a
   * page cannot probe its user's LAN; a development cluster on one machine or a LAN needs this.
   *
   * Gotchas: for development only. In production browsers reach relays on public addresses, over
   * `wss` or WebRTC-direct. Node dials private addresses regardless.
   */
  allowPrivateAddresses?: boolean
  /** Decides which connections libp2p may open or accept (advanced; e.g. to simulate partitions). */
  connectionGater?: ConnectionGater
  /** Extra libp2p transports and services (see `Libp2pExtensions`); rarely needed. */
  libp2p?: Libp2pExtensions
  /** Runtime services; the platform entry registers the right one, so this is rarely needed. */
  platform?: Platform
  /** Wall clock in ms since the epoch (injectable for tests of clock drift). */
  clock?: () => number
  /**
   * Abandons start-up: `create` rejects with the signal's reason (AbortError by default), having
   * stopped whatever it had started and released `dataDir`. A node already created is not closed.
   */
  signal?: AbortSignal
}

/**
 * A node of a mosaik network. Create one with only a network name, a bootstrap address and tags:
 * it finds its peers, advertises what it produces and joins its groups by itself.
 *
 * Every node must be closed (`await net.close()` or `await using net = ...`): closing announces a
 * signed departure and releases every socket, timer and stream.
 */
export class Network {
  /** The id of the network this node belongs to: Digest.from(options.network). */
  readonly networkId: NetworkId
  /** This node's peer id (base58). */
  readonly peerId: string
  /** The peer catalog: who is out there, with their tags, streams, groups and tickets. */
  readonly discovery: Discovery
  /** Typed pub/sub: producers and consumers of streams. */
  readonly streams: Streams
  /** Availability groups: replicated state machines over Raft. */
  readonly groups: Groups
  /** The underlying libp2p node, for advanced use. */
  readonly libp2p: MosaikLibp2p
  readonly #ctx: NetworkContext
  readonly #scope: Scope
  readonly #lock: DataDirLock | undefined
  #closing: Promise<void> | undefined

  private constructor(
    ctx: NetworkContext,
    scope: Scope,
    subsystems: { discovery: Discovery; streams: Streams; groups: Groups },
    lock: DataDirLock | undefined,
  ) {
    this.#ctx = ctx
    this.#lock = lock
    this.networkId = ctx.networkId
    this.peerId = ctx.peerId
    this.libp2p = ctx.libp2p
    this.discovery = subsystems.discovery
    this.streams = subsystems.streams
    this.groups = subsystems.groups
    this.#scope = scope
  }

  /**
   * Starts a node and joins the network: validates the options, locks `dataDir`, starts libp2p, then
   * discovery, streams and groups. Rejects with InvalidArgumentError, DataDirLockedError,
   * UnsupportedRuntimeError, or a MosaikError with code `BIND` when libp2p cannot start (e.g. a listen
   * address is unavailable).
   */
  static async create(options: NetworkOptions): Promise<Network> {
    if (options.network === undefined || options.network === '') {
      throw new InvalidArgumentError('`network` is required: the name or id of the network to join')
    }
    const platform = options.platform ?? currentPlatform()
    platform.checkRuntime?.()
    const networkId = Digest.from(options.network)
    for (const address of options.bootstrap ?? []) checkPeerAddress(address, 'bootstrap address')
    checkAborted(options.signal)
    // Before anything reads or writes the directory: one node per dataDir.
    const lock = options.dataDir ? await platform.lockDataDir?.(options.dataDir) : undefined
    try {
      return await Network.#create(options, platform, networkId, lock)
    } catch (err) {
      await lock?.release()
      throw err
    }
  }

  static async #create(
    options: NetworkOptions,
    platform: Platform,
    networkId: NetworkId,
    lock: DataDirLock | undefined,
  ): Promise<Network> {
    const privateKey =
      options.privateKey ??
      (options.dataDir && platform.loadIdentity
        ? await platform.loadIdentity(options.dataDir)
        : await generateKeyPair('Ed25519'))
    const maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    await platform.prepare?.()
    checkAborted(options.signal)
    const libp2p = await startLibp2p(options, platform, privateKey, maxFrameSize)

    const log = logger(`mosaik:${libp2p.peerId.toString().slice(-6)}:network`)
    const scope = new Scope((err) => log.error('background task failed: %s', (err as Error)?.stack ?? err))
    const ctx = new NetworkContext({
      networkId,
      libp2p,
      privateKey,
      now: options.clock ?? Date.now,
      linkOptions: { maxFrameSize },
      scope,
      stableIdentity: options.privateKey !== undefined || (!!options.dataDir && !!platform.loadIdentity),
    })
    try {
      // Each step starts local services only: abandoning start-up is checked between them.
      checkAborted(options.signal)
      const discovery = await Discovery.start(ctx, {
        config: discoveryConfig(options.discovery),
        tags: options.tags ?? [],
        bootstrap: options.bootstrap ?? [],
      })
      checkAborted(options.signal)
      const streams = await Streams.start(ctx, discovery, options.streams)
      checkAborted(options.signal)
      const groups = await Groups.start(
        groupsComponents(ctx, platform, options.dataDir),
        discovery,
        options.groups,
      )
      return new Network(ctx, scope, { discovery, streams, groups }, lock)
    } catch (err) {
      await scope.close()
      await libp2p.stop()
      throw err
    }
  }

  /** The addresses this node listens on, with `/p2p/<id>`, ready to hand to another node's `bootstrap`. */
  get addresses(): string[] {
    return this.libp2p.getMultiaddrs().map(String)
  }

  /** True once `close()` has been called. */
  get isClosed(): boolean {
    return this.#closing !== undefined
  }

  /** Announces departure, stops every subsystem and the libp2p node. Safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        // Groups and streams first: they announce their own departures while discovery still gossips.
        await Promise.all([this.groups.stop(), this.streams.stop()])
        await this.discovery.stop()
        await this.#scope.close()
        await this.libp2p.stop()
      } finally {
        // last: the group logs under dataDir are closed by now
        await this.#lock?.release()
      }
    })()
    return this.#closing
  }

  /** Closes the node, for `await using net = await Network.create(...)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** @internal The context subsystems are built on. */
  get context(): NetworkContext {
    return this.#ctx
  }
}

/** The context, with the platform's durable log stores under `dataDir` when the node has both. */
function groupsComponents(
  ctx: NetworkContext,
  platform: Platform,
  dataDir: string | undefined,
): GroupsComponents {
  const openLogStore = platform.openLogStore?.bind(platform)
  return {
    networkId: ctx.networkId,
    peerId: ctx.peerId,
    clock: ctx.clock,
    scope: ctx.scope,
    stableIdentity: ctx.stableIdentity,
    log: (component) => ctx.log(component),
    protocol: (name) => ctx.protocol(name),
    openLink: (peer, protocol, options) => ctx.openLink(peer, protocol, options),
    handle: (protocol, handler, options) => ctx.handle(protocol, handler, options),
    openLogStore: dataDir && openLogStore ? (name) => openLogStore(dataDir, name) : undefined,
    voting: platform.groupVoting ?? true,
    maxFrameSize: ctx.linkOptions.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
  }
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal)
}

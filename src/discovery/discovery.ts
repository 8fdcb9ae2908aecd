import { type Message, TopicValidatorResult } from '@libp2p/gossipsub'
import type { Connection, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { isLoopback, isPrivate } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { CloseCode } from '../network/close.ts'
import type { Logger, NetworkContext } from '../network/context.ts'
import { hostKey } from '../network/hosts.ts'
import type { Link } from '../network/link.ts'
import { type AbortOptions, anySignal, delay, raceSignal } from '../primitives/abort.ts'
import { Backoff, jittered } from '../primitives/backoff.ts'
import { equalBytes, randomBytes } from '../primitives/bytes.ts'
import { decodeCanonical, encodeCanonical } from '../primitives/codec.ts'
import { Digest, type DigestLike } from '../primitives/digest.ts'
import { DecodeError, MosaikError } from '../primitives/errors.ts'
import { Emitter } from '../primitives/events.ts'
import type { Scope } from '../primitives/scope.ts'
import { Watch } from '../primitives/watch.ts'
import type { Provenance } from './admission.ts'
import { type Catalog, CatalogStore, type PeerInfo, type RejectReason, type UpsertResult } from './catalog.ts'
import { DiscoveryConditions } from './conditions.ts'
import type { DiscoveryConfig } from './config.ts'
import {
  type Departure,
  departureFromWire,
  departureToWire,
  EntryLimitError,
  type EntryLimits,
  PeerEntry,
  SignedPeerEntry,
  signDeparture,
  type Ticket,
  UnsupportedEntryVersionError,
  type UnverifiedEntry,
  verifyDeparture,
} from './entry.ts'
import {
  ConcurrencyLimit,
  closeCodeOf,
  PINGS_PER_PEER,
  PINGS_TOTAL,
  pingClientLinkOptions,
  pingServerLinkOptions,
  SYNCS_PER_PEER,
  SYNCS_TOTAL,
  serveExchange,
  syncLinkOptions,
} from './limits.ts'
import { RttTracker } from './rtt.ts'
import {
  DifferentNetworkError,
  receiveSnapshot,
  SYNC_PROTOCOL_VERSION,
  SyncError,
  sendSnapshot,
  UnsupportedVersionError,
} from './sync.ts'

export { type DiscoveryConfig, type DiscoveryOptions, discoveryConfig } from './config.ts'
export { DifferentNetworkError, DiscoveryConditions, SyncError, UnsupportedVersionError }

export interface DiscoveryEvents {
  /** A peer appeared in the catalog. */
  'peer:discovered': PeerInfo
  /** A known peer published a newer entry. */
  'peer:updated': PeerInfo
  /**
   * A peer left: it announced its departure, it went silent past the purge window, or its entry was
   * evicted from a full catalog to make room for a more valuable one.
   */
  'peer:departed': { id: string; reason: 'departed' | 'purged' | 'evicted' }
  /** Input was refused; `from` is the peer that sent it, when known. */
  rejected: { reason: RejectReason; from?: string; peer?: string }
}

/** Counters of what discovery saw and did, for monitoring and tests. */
export interface DiscoveryStats {
  announcementsSent: number
  entriesAccepted: number
  departuresSeen: number
  syncsInitiated: number
  syncsAccepted: number
  syncsFailed: number
  pings: number
  rejected: Partial<Record<RejectReason, number>>
}

const MSG_ENTRY = 0
const MSG_DEPARTURE = 1

/**
 * Discovery: every node keeps a signed catalog of the peers of its network, learned through gossip
 * announcements, full catalog syncs on first contact, and pings. Entries are verified before anything
 * is applied; departures are signed; silent peers are purged.
 *
 * When to use: read `catalog()` or await `when` conditions to find peers by tag, stream or group;
 * streams and groups use it to find producers and members.
 *
 * Gotcha: the drift check needs loosely synchronized clocks (±`maxTimeDriftMs`), as in mosaik.
 */
export class Discovery extends Emitter<DiscoveryEvents> {
  readonly config: DiscoveryConfig
  readonly stats: DiscoveryStats = {
    announcementsSent: 0,
    entriesAccepted: 0,
    departuresSeen: 0,
    syncsInitiated: 0,
    syncsAccepted: 0,
    syncsFailed: 0,
    pings: 0,
    rejected: {},
  }
  /** Awaitable conditions on the catalog. */
  readonly when: DiscoveryConditions
  /**
   * True once the initial catalog sync is done: one sync with a bootstrap address succeeded, or none
   * was given (this node is a seed). Until then the catalog may not show peers that exist.
   */
  readonly bootstrapped: Watch<boolean>

  readonly #ctx: NetworkContext
  readonly #scope: Scope
  readonly #log: Logger
  readonly #topic: string
  readonly #syncProtocol: string
  readonly #pingProtocol: string
  readonly #rtt = new RttTracker()
  readonly #store: CatalogStore
  readonly #changes = new Watch(0)
  readonly #bootstrap: string[]
  /** Peers we already synced with (or are syncing with) in this run. */
  readonly #synced = new Set<string>()
  readonly #updateBuckets = new Map<string, { tokens: number; at: number }>()
  #localChain: Promise<void> = Promise.resolve()
  #announceScheduled = false
  /** The local entry as last published to at least one subscriber (a new neighbour gets it by sync). */
  #announced: SignedPeerEntry | undefined
  #maintenanceScheduled = false
  readonly #dialing = new Set<string>()
  readonly #entryLimits: EntryLimits
  readonly #syncs = new ConcurrencyLimit(SYNCS_PER_PEER, SYNCS_TOTAL)
  readonly #pings = new ConcurrencyLimit(PINGS_PER_PEER, PINGS_TOTAL)
  #cancelPurge: () => void = () => {}
  #departed = false

  private constructor(
    ctx: NetworkContext,
    config: DiscoveryConfig,
    local: SignedPeerEntry,
    bootstrap: string[],
  ) {
    super()
    this.#ctx = ctx
    this.config = config
    this.#scope = ctx.scope.child()
    this.#log = ctx.log('discovery')
    this.#topic = `mosaik/${ctx.networkId.toString()}/announce/1`
    this.#syncProtocol = ctx.protocol('discovery/sync/1')
    this.#pingProtocol = ctx.protocol('discovery/ping/1')
    this.#bootstrap = bootstrap
    this.bootstrapped = new Watch(bootstrap.length === 0)
    this.#entryLimits = { maxBytes: config.maxEntryBytes, maxAddresses: config.maxAddressesPerPeer }
    this.#store = new CatalogStore(
      local,
      {
        purgeAfterMs: config.purgeAfterMs,
        maxTimeDriftMs: config.maxTimeDriftMs,
        maxPeers: config.maxPeers,
        maxRelayedPerSource: config.maxRelayedPerSource,
        maxRttMs: config.maxRttMs,
      },
      this.#rtt,
      (peerId) => ctx.isConnected(peerId),
    )
    this.when = new DiscoveryConditions(this, this.#changes)
  }

  /** Builds and starts discovery for a network node; called by Network.create. */
  static async start(
    ctx: NetworkContext,
    options: { config: DiscoveryConfig; tags: DigestLike[]; bootstrap: string[] },
  ): Promise<Discovery> {
    const now = Math.floor(ctx.now())
    const entry = new PeerEntry({
      peerId: ctx.peerId,
      network: ctx.networkId,
      version: { start: now, update: now },
      addresses: ownAddresses(ctx, options.config.maxAddressesPerPeer),
      tags: options.tags,
    })
    entry.checkLimits({
      maxBytes: options.config.maxEntryBytes,
      maxAddresses: options.config.maxAddressesPerPeer,
    })
    const local = await SignedPeerEntry.sign(entry, ctx.privateKey)
    const discovery = new Discovery(ctx, options.config, local, options.bootstrap)
    await discovery.#start()
    return discovery
  }

  // ---- reads -----------------------------------------------------------------------------------

  /** An immutable snapshot of the catalog. */
  catalog(): Catalog {
    return this.#store.snapshot(this.#ctx.now())
  }

  /** This node's current signed entry. */
  me(): SignedPeerEntry {
    return this.#store.local
  }

  /** A peer's signed entry as received (this node's own for its id), for passing it on. */
  signedEntry(peerId: string): SignedPeerEntry | undefined {
    return peerId === this.#ctx.peerId ? this.#store.local : this.#store.getSigned(peerId)
  }

  /** The smoothed RTT to a peer in ms, when measured. */
  rtt(peerId: string): number | undefined {
    return this.#rtt.get(peerId)?.srtt
  }

  // ---- local entry -----------------------------------------------------------------------------

  addTags(...tags: DigestLike[]): Promise<void> {
    return this.updateLocal((e) => ({ tags: e.tags.with(tags) }))
  }

  removeTags(...tags: DigestLike[]): Promise<void> {
    return this.updateLocal((e) => ({ tags: e.tags.without(tags) }))
  }

  /**
   * Adds a ticket (a credential, see tickets) to this node's entry, re-signs and announces it. Adding
   * a ticket already present changes nothing. Rejects with EntryLimitError past 16 tickets or the
   * entry's byte limit.
   */
  addTicket(ticket: Ticket): Promise<void> {
    return this.updateLocal((e) => ({
      tickets: e.tickets.some((t) => sameTicket(t, ticket)) ? e.tickets : [...e.tickets, ticket],
    }))
  }

  /** Removes the ticket whose id (`Ticket.id(t)`: class.derive(data)) is `id`. */
  removeTicket(id: DigestLike): Promise<void> {
    const d = Digest.from(id)
    return this.updateLocal((e) => ({ tickets: e.tickets.filter((t) => !t.class.derive(t.data).equals(d)) }))
  }

  /** Removes every ticket of a class. */
  removeTicketsOf(cls: DigestLike): Promise<void> {
    const c = Digest.from(cls)
    return this.updateLocal((e) => ({ tickets: e.tickets.filter((t) => !t.class.equals(c)) }))
  }

  /** Replaces the tickets of the ticket's class with this one (renewal), in one entry update. */
  replaceTicket(ticket: Ticket): Promise<void> {
    return this.updateLocal((e) => ({
      tickets: [...e.tickets.filter((t) => !t.class.equals(ticket.class)), ticket],
    }))
  }

  /**
   * Changes the local entry (streams and groups use this to advertise themselves). The version is
   * bumped, the entry re-signed and announced only when the content changes (or `force` is set).
   * Rejects with EntryLimitError (and changes nothing) when the entry would exceed the entry limits.
   */
  updateLocal(
    change: (entry: PeerEntry) => Parameters<PeerEntry['update']>[1],
    force = false,
  ): Promise<void> {
    const next = this.#localChain.then(async () => {
      if (this.#departed) return
      const current = this.#store.local.entry
      const updated = current.update(this.#ctx.now(), change(current))
      if (!force && updated.sameContent(current)) return
      updated.checkLimits(this.#entryLimits)
      this.#store.setLocal(await SignedPeerEntry.sign(updated, this.#ctx.privateKey))
      this.#changes.set(this.#changes.value + 1)
      this.#scheduleAnnounce(0)
    })
    this.#localChain = next.catch(() => {})
    return next
  }

  // ---- remote entries --------------------------------------------------------------------------

  /**
   * Injects a signed entry learned out of band; applied only if valid and newer. It counts as direct
   * when this node is connected to its peer, else as relayed by this node itself.
   */
  async feed(signed: SignedPeerEntry): Promise<boolean> {
    const verified = await SignedPeerEntry.verify(signed.bytes, signed.signature, this.#entryLimits)
    const peer = verified.entry.peerId
    const connected = this.#ctx.isConnected(peer)
    return (
      this.#accept(verified, false, this.#provenance(peer, connected ? peer : undefined)).status !==
      'rejected'
    )
  }

  /**
   * Adds a local-only, unsigned entry (ignored if a signed one exists; replaced by one later). Throws
   * EntryLimitError for an entry over the entry limits.
   */
  insert(entry: PeerEntry): boolean {
    entry.checkLimits(this.#entryLimits)
    const ok = this.#store.insertUnsigned(entry)
    if (ok) {
      this.#changes.set(this.#changes.value + 1)
      this.#ctx.learnAddresses(entry.peerId, entry.addresses).catch(() => {})
    }
    return ok
  }

  /** Removes a local-only entry. */
  remove(peerId: string): boolean {
    const ok = this.#store.removeUnsigned(peerId)
    if (ok) {
      this.#changes.set(this.#changes.value + 1)
      this.#forgetPeerStore(peerId)
    }
    return ok
  }

  clearUnsigned(): void {
    this.#store.clearUnsigned()
    this.#changes.set(this.#changes.value + 1)
  }

  // ---- contact ---------------------------------------------------------------------------------

  /**
   * Best effort: connects to the given peers (multiaddrs with /p2p/, or known peer ids) and syncs
   * catalogs with each one not synced before. Failures are logged, not thrown.
   */
  dial(...peers: string[]): void {
    for (const peer of peers) this.#scope.spawn(this.syncWith(peer).catch(() => {}))
  }

  /**
   * A full, bidirectional catalog exchange with one peer: each side sends every fresh signed entry it
   * knows (its own included) and merges the other's. A node bootstrapped with one address learns the
   * whole network this way.
   */
  async syncWith(peer: string, options: AbortOptions = {}): Promise<void> {
    const deadline = AbortSignal.timeout(this.config.requestTimeoutMs)
    const signal = anySignal(options.signal, this.#scope.signal, deadline)
    this.stats.syncsInitiated++
    let link: Link | undefined
    // Mark the peer before dialing, so the new connection does not trigger a second, redundant sync.
    const target = peerOfAddress(peer)
    if (target) this.#synced.add(target)
    try {
      link = await this.#ctx.openLink(peer, this.#syncProtocol, { signal, link: this.#syncLink() })
      this.#synced.add(link.remotePeer)
      await this.#sendSnapshot(link, signal)
      await this.#receiveSnapshot(link, signal)
      await link.close(CloseCode.Success)
    } catch (err) {
      this.stats.syncsFailed++
      // The remote learns why; the close frame flushes in the background, the caller does not wait.
      if (link) link.closeWith(...closeCodeOf(err, deadline, this.#scope.signal))
      throw err instanceof MosaikError ? err : new SyncError(peer, err as Error)
    }
  }

  /** Pings a peer: measures the round trip and refreshes its entry from the reply. Returns the RTT in ms. */
  async ping(peerId: string, options: AbortOptions = {}): Promise<number> {
    const deadline = AbortSignal.timeout(this.config.requestTimeoutMs)
    const signal = anySignal(options.signal, this.#scope.signal, deadline)
    const link = await this.#ctx.openLink(peerId, this.#pingProtocol, {
      signal,
      link: pingClientLinkOptions(this.config.maxEntryBytes),
    })
    try {
      const started = performance.now()
      await link.send([SYNC_PROTOCOL_VERSION, this.#ctx.networkId.bytes], { signal })
      const reply = await link.recv({ signal })
      const rtt = performance.now() - started
      this.stats.pings++
      this.#rtt.record(link.remotePeer, rtt)
      this.#store.rttChanged()
      const signed = await SignedPeerEntry.fromWire(reply, this.#entryLimits)
      if (signed.entry.peerId !== link.remotePeer)
        throw new DecodeError('ping reply carries another peer entry')
      this.#accept(signed, false, this.#provenance(link.remotePeer, link.remotePeer))
      this.#changes.set(this.#changes.value + 1)
      await link.close(CloseCode.Success)
      return rtt
    } catch (err) {
      link.closeWith(...closeCodeOf(err, deadline, this.#scope.signal))
      throw err
    }
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async #start(): Promise<void> {
    const { libp2p } = this.#ctx
    const pubsub = libp2p.services.pubsub
    pubsub.topicValidators.set(this.#topic, this.#validateAnnouncement)
    pubsub.subscribe(this.#topic)
    pubsub.addEventListener('subscription-change', this.#onSubscriptionChange)
    libp2p.addEventListener('connection:open', this.#onConnectionOpen)
    libp2p.addEventListener('peer:disconnect', this.#onPeerDisconnect)
    libp2p.addEventListener('self:peer:update', this.#onSelfUpdate)

    // libp2p's per-connection stream limits are a backstop; the handlers' own limits come first and
    // answer with TooManyStreams.
    await this.#ctx.handle(this.#syncProtocol, (link) => this.#acceptSync(link), {
      maxInboundStreams: SYNCS_PER_PEER + 4,
      link: this.#syncLink(),
    })
    await this.#ctx.handle(this.#pingProtocol, (link) => this.#acceptPing(link), {
      maxInboundStreams: PINGS_PER_PEER + 4,
      link: pingServerLinkOptions(this.config.maxEntryBytes),
    })

    this.#scheduleAnnounce(0)
    this.#scope.every(
      () => jittered(this.config.announceIntervalMs, this.config.announceJitter),
      () => this.updateLocal(() => ({}), true).catch(() => {}),
    )
    this.#scope.every(
      () => jittered(this.config.rttProbeIntervalMs, 0.5),
      () => this.#probeRtts(),
    )
    this.#scope.every(
      () => jittered(2000, 0.5),
      () => this.#maintainNeighbors(),
    )
    // Gossip is best effort (a message can miss a node whose mesh is being rebuilt); a periodic full
    // sync with a random neighbour repairs whatever it missed, departures included.
    this.#scope.every(
      () => jittered(this.config.antiEntropyIntervalMs, 0.5),
      () => this.#antiEntropy(),
    )
    for (const address of this.#bootstrap) this.#scope.spawn(this.#bootstrapFrom(address))
  }

  /**
   * Announces departure (signed) so peers drop this node at once, waits the departure window, then
   * stops every timer and handler. Called by Network.close.
   */
  async stop(): Promise<void> {
    if (this.#departed) return
    const { libp2p } = this.#ctx
    try {
      await this.#localChain
      this.#departed = true
      const local = this.#store.local.entry
      const departure = await signDeparture(
        {
          peerId: local.peerId,
          network: local.network,
          lastVersion: local.version,
          timestamp: Math.floor(this.#ctx.now()),
        },
        this.#ctx.privateKey,
      )
      // Gossip carries the departure to the network. Peers we are connected to but whose gossip
      // subscription has not arrived yet (a node leaving right after joining) get it directly, over
      // the catalog sync protocol, so they drop us at once instead of after the purge window.
      const pubsub = libp2p.services.pubsub
      const subscribers = new Set(pubsub.getSubscribers(this.#topic).map(String))
      const direct = [...new Set(libp2p.getConnections().map((c) => c.remotePeer.toString()))]
        .filter((p) => !subscribers.has(p))
        .slice(0, 16)
      const wire = departureToWire(departure)
      const window = Math.max(this.config.departureWindowMs, 100)
      await Promise.allSettled([
        ...direct.map((peer) => this.#pushDeparture(peer, wire, AbortSignal.timeout(4 * window))),
        subscribers.size > 0
          ? pubsub
              .publish(this.#topic, encodeCanonical([MSG_DEPARTURE, wire, randomBytes(8)]))
              .then(async () => {
                // Let the transport flush before the connections close.
                if (this.config.departureWindowMs > 0) await delay(this.config.departureWindowMs)
              })
          : Promise.resolve(),
      ])
    } catch (err) {
      this.#log('departure announcement failed: %s', (err as Error).message)
    }
    this.#departed = true
    libp2p.services.pubsub.removeEventListener('subscription-change', this.#onSubscriptionChange)
    libp2p.removeEventListener('connection:open', this.#onConnectionOpen)
    libp2p.removeEventListener('peer:disconnect', this.#onPeerDisconnect)
    libp2p.removeEventListener('self:peer:update', this.#onSelfUpdate)
    this.#cancelPurge()
    this.#changes.close()
    await this.#scope.close()
    this.removeAllListeners()
  }

  /** Hands our departure to one peer over a catalog sync that carries nothing else. */
  async #pushDeparture(peer: string, departure: unknown, signal: AbortSignal): Promise<void> {
    const link = await this.#ctx.openLink(peer, this.#syncProtocol, { signal, link: this.#syncLink() })
    try {
      await link.send([SYNC_PROTOCOL_VERSION, this.#ctx.networkId.bytes, 0, 1], { signal })
      await link.send([departure], { signal })
      // The peer answers with its catalog; take it, then close cleanly.
      await this.#receiveSnapshot(link, signal)
      await link.close(CloseCode.Success)
    } catch {
      link.abort('departure push failed')
    }
  }

  // ---- announcements ---------------------------------------------------------------------------

  /** Coalesces announcement requests: many triggers within `delayMs` give one publish. */
  #scheduleAnnounce(delayMs: number): void {
    if (this.#announceScheduled || this.#departed) return
    this.#announceScheduled = true
    this.#scope.setTimeout(() => {
      this.#announceScheduled = false
      this.#scope.spawn(this.#announce())
    }, delayMs)
  }

  async #announce(): Promise<void> {
    const pubsub = this.#ctx.libp2p.services.pubsub
    // Publishing to nobody is a silent drop; the next neighbour to subscribe triggers an announcement.
    if (pubsub.getSubscribers(this.#topic).length === 0) return
    const local = this.#store.local
    // The nonce makes each announcement a distinct gossip message: gossipsub refuses to publish the
    // same bytes twice, and a periodic re-announcement must go out.
    await pubsub.publish(this.#topic, encodeCanonical([MSG_ENTRY, local.toWire(), randomBytes(8)]))
    this.#announced = local
    this.stats.announcementsSent++
  }

  readonly #onSubscriptionChange = (
    evt: CustomEvent<{
      peerId: { toString(): string }
      subscriptions: { topic: string; subscribe: boolean }[]
    }>,
  ): void => {
    // Only an entry that never reached anyone needs the new neighbour: one that did is spreading by
    // gossip, and the neighbour gets it in the catalog sync every new connection runs. Announcing to
    // every new subscriber made a burst of n joining nodes flood n² announcements.
    if (this.#announced === this.#store.local) return
    if (evt.detail.subscriptions.some((s) => s.topic === this.#topic && s.subscribe))
      this.#scheduleAnnounce(20)
  }

  /** Gossipsub validator: decode, verify and apply; invalid input is rejected (and penalized). */
  readonly #validateAnnouncement = async (
    from: { toString(): string },
    message: Message,
  ): Promise<TopicValidatorResult> => {
    const sender = from.toString()
    if (message.data.length > this.config.maxAnnouncementBytes) return this.#reject('oversized', sender)
    let kind: unknown
    let body: unknown
    try {
      const decoded = decodeCanonical(message.data)
      if (!Array.isArray(decoded) || decoded.length !== 3) throw new DecodeError('not an announcement')
      ;[kind, body] = decoded
    } catch {
      return this.#reject('malformed', sender)
    }
    if (kind === MSG_ENTRY) {
      const result = await this.#ingest(body, true, sender, false)
      if (result.status === 'rejected') {
        return isPenalized(result.reason) ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
      }
      // Forward even entries we already have (e.g. from a sync): other nodes may not, and gossipsub's
      // seen-cache already stops each message from circulating twice.
      return TopicValidatorResult.Accept
    }
    if (kind === MSG_DEPARTURE) {
      const applied = await this.#ingestDeparture(body, true, sender)
      if (applied === 'rejected') return TopicValidatorResult.Reject
      return applied === 'applied' ? TopicValidatorResult.Accept : TopicValidatorResult.Ignore
    }
    return this.#reject('malformed', sender)
  }

  /**
   * Takes a departure from gossip (which must be fresh) or from a sync (which may be as old as the
   * purge window): verified, then applied. Returns 'rejected' for input that is invalid.
   */
  async #ingestDeparture(
    wire: unknown,
    gossip: boolean,
    from: string,
  ): Promise<'applied' | 'ignored' | 'rejected'> {
    let d: Departure
    try {
      d = departureFromWire(wire)
    } catch {
      this.#reject('malformed', from)
      return 'rejected'
    }
    const now = this.#ctx.now()
    if (!d.network.equals(this.#ctx.networkId)) {
      this.#reject('different-network', from, d.peerId)
      return 'rejected'
    }
    const age = now - d.timestamp
    const maxAge = gossip ? this.config.maxTimeDriftMs : this.config.purgeAfterMs
    if (age < -this.config.maxTimeDriftMs || age > maxAge) {
      this.#reject('clock-drift', from, d.peerId)
      return 'ignored'
    }
    try {
      if (!(await verifyDeparture(d))) {
        this.#reject('invalid-signature', from, d.peerId)
        return 'rejected'
      }
    } catch (err) {
      this.#reject(rejectReasonOf(err), from, d.peerId)
      return 'rejected'
    }
    if (!this.#store.depart(d, now)) return 'ignored'
    this.stats.departuresSeen++
    this.#forget(d.peerId)
    this.#onCatalogChanged()
    this.emit('peer:departed', { id: d.peerId, reason: 'departed' })
    return 'applied'
  }

  /**
   * Drops what we kept about a peer that left, libp2p's peer store included (unless it is still
   * connected, or known from a local entry), so churn does not grow memory.
   */
  #forget(peerId: string): void {
    this.#rtt.remove(peerId)
    this.#synced.delete(peerId)
    this.#updateBuckets.delete(peerId)
    this.#forgetPeerStore(peerId)
  }

  #forgetPeerStore(peerId: string): void {
    if (peerId === this.#ctx.peerId || this.#ctx.isConnected(peerId) || this.#store.holds(peerId)) return
    let id: PeerId
    try {
      id = peerIdFromString(peerId)
    } catch {
      return
    }
    this.#ctx.libp2p.peerStore.delete(id).catch(() => {})
  }

  /** A peer that is not in the catalog is forgotten by libp2p too once its last connection closes. */
  readonly #onPeerDisconnect = (evt: CustomEvent<PeerId>): void => {
    this.#forgetPeerStore(evt.detail.toString())
  }

  /**
   * Where an entry of `peerId` came from, for admission: direct when `from` is the peer itself or we
   * are connected to it; charged to the host of the connection it came through.
   */
  #provenance(peerId: string, from: string | undefined): Provenance {
    const direct = from === peerId || this.#ctx.isConnected(peerId)
    const via = direct ? peerId : from
    if (via === undefined) return { direct, group: 'local' }
    return { direct, group: this.#groupOf(via) }
  }

  /** `host:<ip>` of a connection to `peerId`, or `peer:<id>` when it has none with an IP. */
  #groupOf(peerId: string): string {
    try {
      for (const c of this.#ctx.libp2p.getConnections(peerIdFromString(peerId))) {
        const host = hostKey(c.remoteAddr)
        if (host) return host
      }
    } catch {}
    return `peer:${peerId}`
  }

  /** A token bucket per peer, so one peer cannot flood the catalog with versions of its entry. */
  #allowUpdate(peerId: string): boolean {
    const rate = this.config.maxUpdatesPerSecond
    const now = this.#ctx.now()
    const bucket = this.#updateBuckets.get(peerId) ?? { tokens: rate * 2, at: now }
    bucket.tokens = Math.min(rate * 2, bucket.tokens + ((now - bucket.at) / 1000) * rate)
    bucket.at = now
    this.#updateBuckets.set(peerId, bucket)
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  #reject(reason: RejectReason, from?: string, peer?: string): TopicValidatorResult {
    this.stats.rejected[reason] = (this.stats.rejected[reason] ?? 0) + 1
    this.#log('rejected input from %s: %s', from ?? 'local', reason)
    this.emit('rejected', { reason, from, peer })
    return isPenalized(reason) ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
  }

  /**
   * Takes an entry from the wire: cheap checks first (most entries in a sync are ones we already
   * hold, and admission refuses over-quota ones whatever their signature), then the signature, then
   * the catalog rules. Refusals are counted; with `strict` (catalog syncs) an entry over the entry
   * limits throws EntryLimitError, so the sync is closed with FrameTooLarge.
   */
  async #ingest(wire: unknown, gossip: boolean, from: string, strict: boolean): Promise<UpsertResult> {
    let unverified: UnverifiedEntry
    try {
      unverified = SignedPeerEntry.parse(wire, this.#entryLimits)
    } catch (err) {
      const reason = rejectReasonOf(err)
      this.#reject(reason, from, err instanceof EntryLimitError ? err.peerId : undefined)
      if (strict && err instanceof EntryLimitError) throw err
      return { status: 'rejected', reason }
    }
    const { entry, bytes, signature } = unverified
    const provenance = this.#provenance(entry.peerId, from)
    const pre = this.#store.precheck(entry, bytes, signature, this.#ctx.now(), gossip, provenance)
    if (pre === 'unchanged') return { status: 'unchanged' }
    if (pre) {
      if (pre !== 'local') this.#reject(pre, from, entry.peerId)
      return { status: 'rejected', reason: pre }
    }
    let signed: SignedPeerEntry
    try {
      signed = await unverified.verify()
    } catch (err) {
      const reason = rejectReasonOf(err)
      this.#reject(reason, from, entry.peerId)
      return { status: 'rejected', reason }
    }
    if (gossip && !this.#allowUpdate(entry.peerId)) {
      this.#reject('rate-limited', from, entry.peerId)
      return { status: 'rejected', reason: 'rate-limited' }
    }
    return this.#accept(signed, gossip, provenance, from)
  }

  /** Applies a verified entry to the catalog and emits what changed. */
  #accept(signed: SignedPeerEntry, gossip: boolean, provenance: Provenance, from?: string): UpsertResult {
    const result = this.#store.upsertSigned(signed, this.#ctx.now(), gossip, provenance)
    if (result.status === 'rejected') {
      // Our own entry coming back through gossip or a sync is normal, not an attack.
      if (result.reason !== 'local') this.#reject(result.reason, from, signed.entry.peerId)
      return result
    }
    if (result.status === 'unchanged') return result
    this.stats.entriesAccepted++
    const evicted = result.status === 'inserted' ? result.evicted : undefined
    if (evicted) this.#forget(evicted)
    // The entry is within the limits, so libp2p's peer store never gets more than maxAddressesPerPeer.
    this.#ctx.learnAddresses(signed.entry.peerId, signed.entry.addresses).catch(() => {})
    this.#onCatalogChanged()
    if (result.status === 'inserted') this.#scheduleMaintenance()
    if (evicted) this.emit('peer:departed', { id: evicted, reason: 'evicted' })
    this.emit(result.status === 'inserted' ? 'peer:discovered' : 'peer:updated', result.info)
    return result
  }

  #onCatalogChanged(): void {
    this.#changes.set(this.#changes.value + 1)
    this.#armPurge()
  }

  /** Keeps one timer at the soonest expiry among signed entries. */
  #armPurge(): void {
    this.#cancelPurge()
    const next = this.#store.nextExpiry()
    if (next === undefined) return
    const wait = Math.max(0, next - this.#ctx.now()) + 1
    this.#cancelPurge = this.#scope.setTimeout(() => {
      const purged = this.#store.purge(this.#ctx.now())
      for (const id of purged) {
        this.#forget(id)
        this.emit('peer:departed', { id, reason: 'purged' })
      }
      if (purged.length > 0) this.#changes.set(this.#changes.value + 1)
      this.#armPurge()
    }, wait)
  }

  // ---- catalog sync ----------------------------------------------------------------------------

  #syncLink() {
    return syncLinkOptions(this.config.maxEntryBytes, this.config.maxSyncBytes)
  }

  /** Sends every fresh signed entry (ours and those of peers seen connected first) and departure. */
  #sendSnapshot(link: Link, signal: AbortSignal): Promise<void> {
    const snapshot = {
      entries: this.#store.syncSnapshot(this.#ctx.now()).map((e) => e.toWire()),
      departures: this.#store.syncDepartures().map(departureToWire),
    }
    return sendSnapshot(link, this.#ctx.networkId, snapshot, this.config.maxSyncBytes, signal)
  }

  #receiveSnapshot(link: Link, signal: AbortSignal): Promise<void> {
    const from = link.remotePeer
    // The count is bounded so a peer cannot announce work without end; the bytes are bounded by the
    // link (maxSyncBytes), and admission refuses over-quota entries before their signatures.
    const maxItems = 4 * this.config.maxPeers + 16
    return receiveSnapshot(
      link,
      { network: this.#ctx.networkId, maxItems, signal },
      {
        entry: (wire) => this.#ingest(wire, false, from, true),
        departure: (wire) => this.#ingestDeparture(wire, false, from),
        differentNetwork: () => this.#reject('different-network', from),
      },
    )
  }

  #acceptSync(link: Link): Promise<void> {
    const options = {
      limit: this.#syncs,
      deadlineMs: this.config.requestTimeoutMs,
      signal: this.#scope.signal,
    }
    return serveExchange(link, options, async (signal) => {
      this.stats.syncsAccepted++
      this.#synced.add(link.remotePeer)
      await this.#receiveSnapshot(link, signal)
      await this.#sendSnapshot(link, signal)
      // The initiator closes once it has merged our snapshot, within the same deadline.
      await raceSignal(link.closed, signal)
    })
  }

  #acceptPing(link: Link): Promise<void> {
    const options = {
      limit: this.#pings,
      deadlineMs: this.config.requestTimeoutMs,
      signal: this.#scope.signal,
    }
    return serveExchange(link, options, async (signal) => {
      const hello = await link.recv({ signal })
      if (!Array.isArray(hello) || hello[0] !== SYNC_PROTOCOL_VERSION) {
        await link.close(CloseCode.UnsupportedVersion, 'ping version')
        return
      }
      if (!(hello[1] instanceof Uint8Array) || !equalBytes(hello[1], this.#ctx.networkId.bytes)) {
        await link.close(CloseCode.DifferentNetwork, 'different network')
        return
      }
      await link.send(this.#store.local.toWire(), { signal })
      await raceSignal(link.closed, signal)
    })
  }

  /** First contact: the dialing side of a new connection syncs catalogs with the peer once per run. */
  readonly #onConnectionOpen = (evt: CustomEvent<Connection>): void => {
    const connection = evt.detail
    const peer = connection.remotePeer.toString()
    // The connection proves the peer holds its key: its entry, if held, now counts as direct.
    this.#store.connected(peer, hostKey(connection.remoteAddr) ?? `peer:${peer}`)
    if (connection.direction !== 'outbound' || this.#synced.has(peer) || this.#departed) return
    this.#synced.add(peer)
    this.#scope.spawn(
      this.syncWith(peer).catch((err) => {
        this.#synced.delete(peer)
        this.#log('first-contact sync with %s failed: %s', peer, (err as Error).message)
      }),
    )
  }

  readonly #onSelfUpdate = (): void => {
    const addresses = ownAddresses(this.#ctx, this.config.maxAddressesPerPeer)
    this.updateLocal(() => ({ addresses })).catch((err) => {
      this.#log.error('cannot advertise new addresses: %s', (err as Error).message)
    })
  }

  /** Retries a bootstrap address with backoff until one sync with it succeeds. */
  async #bootstrapFrom(address: string): Promise<void> {
    const backoff = new Backoff({
      initialMs: 100,
      maxIntervalMs: 5000,
      maxElapsedMs: Number.POSITIVE_INFINITY,
    })
    while (!this.#scope.closed) {
      try {
        await this.syncWith(address)
        this.bootstrapped.set(true)
        return
      } catch (err) {
        this.#log('bootstrap via %s failed: %s', address, (err as Error).message)
      }
      await delay(backoff.next() ?? 5000, this.#scope.signal).catch(() => {})
    }
  }

  /** Runs neighbour maintenance soon, coalescing bursts of discoveries into one pass. */
  #scheduleMaintenance(): void {
    if (this.#maintenanceScheduled || this.#departed) return
    this.#maintenanceScheduled = true
    this.#scope.setTimeout(() => {
      this.#maintenanceScheduled = false
      this.#maintainNeighbors()
    }, 20)
  }

  /**
   * Keeps `targetNeighbors` peers of the catalog connected, chosen at random. Gossipsub only talks to
   * connected peers, so without this a star around the bootstrap node would leave most announcements
   * to lazy gossip; a random graph of a few links per node lets the mesh carry them to everyone, and
   * each new link starts with a catalog sync.
   */
  #maintainNeighbors(): void {
    const peers = this.catalog().signedPeers()
    const connected = peers.filter((p) => this.#ctx.isConnected(p.id)).length
    const missing = this.config.targetNeighbors - connected - this.#dialing.size
    if (missing <= 0) return
    const candidates = peers.filter((p) => !this.#dialing.has(p.id) && !this.#ctx.isConnected(p.id))
    for (let i = 0; i < missing && candidates.length > 0; i++) {
      const [peer] = candidates.splice(Math.floor(Math.random() * candidates.length), 1)
      const id = peer!.id
      this.#dialing.add(id)
      this.#scope.spawn(
        this.#ctx.libp2p
          .dial(peerIdFromString(id), { signal: AbortSignal.timeout(this.config.requestTimeoutMs) })
          .catch(() => {})
          .finally(() => this.#dialing.delete(id)),
      )
    }
  }

  #antiEntropy(): void {
    const connected = this.catalog()
      .signedPeers()
      .filter((p) => this.#ctx.isConnected(p.id))
    const peer = connected[Math.floor(Math.random() * connected.length)]
    if (peer) this.#scope.spawn(this.syncWith(peer.id).catch(() => {}))
  }

  #probeRtts(): void {
    for (const peer of this.catalog().signedPeers()) {
      if (this.#ctx.isConnected(peer.id)) this.#scope.spawn(this.ping(peer.id).catch(() => {}))
    }
  }
}

/** The peer id a multiaddr or id names (`.../p2p/<id>` or a bare id). */
function peerOfAddress(address: string): string | undefined {
  if (!address.startsWith('/')) return address
  const i = address.lastIndexOf('/p2p/')
  if (i < 0) return undefined
  const id = address.slice(i + 5)
  return id.includes('/') ? undefined : id
}

/**
 * This node's addresses for its entry, at most `max`: public ones first, then private, then
 * loopback, so a host with many interfaces still advertises the ones others can reach.
 */
function ownAddresses(ctx: NetworkContext, max: number): string[] {
  const rank = (a: string) => {
    try {
      const ma = multiaddr(a)
      return isLoopback(ma) ? 2 : isPrivate(ma) ? 1 : 0
    } catch {
      return 3
    }
  }
  const all = ctx.libp2p.getMultiaddrs().map(String)
  if (all.length <= max) return all
  return all
    .map((a, i) => ({ a, r: rank(a), i }))
    .sort((x, y) => x.r - y.r || x.i - y.i)
    .slice(0, max)
    .map((x) => x.a)
}

function rejectReasonOf(err: unknown): RejectReason {
  if (err instanceof EntryLimitError) return 'oversized'
  if (err instanceof UnsupportedEntryVersionError) return 'unsupported-version'
  if (err instanceof MosaikError && err.code === 'INVALID_SIGNATURE') return 'invalid-signature'
  return 'malformed'
}

/** Reasons that mean the sender misbehaved, as opposed to sending something merely old. */
function isPenalized(reason: RejectReason): boolean {
  return (
    reason === 'malformed' ||
    reason === 'oversized' ||
    reason === 'invalid-signature' ||
    reason === 'different-network' ||
    reason === 'unsupported-version'
  )
}

function sameTicket(a: Ticket, b: Ticket): boolean {
  return a.class.equals(b.class) && equalBytes(a.data, b.data)
}

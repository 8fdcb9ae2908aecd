import type { PeerId } from '@libp2p/interface'
import { isLoopback, isPrivate } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { AbortOptions } from '../primitives/abort.ts'
import { jittered } from '../primitives/backoff.ts'
import { equalBytes } from '../primitives/bytes.ts'
import { Digest, type DigestLike } from '../primitives/digest.ts'
import { Emitter } from '../primitives/events.ts'
import { Watch } from '../primitives/watch.ts'
import { checkPeer } from '../transport/addresses.ts'
import { Announcements } from './announcements.ts'
import { type Catalog, CatalogStore, type UpsertResult } from './catalog.ts'
import { DiscoveryConditions } from './conditions.ts'
import type { DiscoveryConfig } from './config.ts'
import { departureToWire, signDeparture } from './departure.ts'
import { PeerEntry, SignedPeerEntry, type Ticket } from './entry.ts'
import { CatalogExchange } from './exchange.ts'
import { type DepartureApplied, Ingestion } from './ingest.ts'
import { type BootstrapStatus, Neighbours } from './neighbours.ts'
import { RttTracker } from './rtt.ts'
import {
  type DiscoveryComponents,
  type DiscoveryEvents,
  DiscoveryState,
  type DiscoveryStats,
} from './state.ts'
import { DifferentNetworkError, SyncError, UnsupportedVersionError } from './sync.ts'

export { type DiscoveryConfig, type DiscoveryOptions, discoveryConfig } from './config.ts'
export type { BootstrapState, BootstrapStatus } from './neighbours.ts'
export type { DiscoveryEvents, DiscoveryStats } from './state.ts'
export { DifferentNetworkError, DiscoveryConditions, SyncError, UnsupportedVersionError }

/** Connected peers a node pushes a departure to, beside gossip. */
const MAX_DEPARTURE_PUSHES = 16

/**
 * Discovery: every node keeps a signed catalog of the peers of its network, learned through gossip
 * announcements, full catalog syncs on first contact, and pings. Entries are verified before anything
 * is applied; departures are signed; silent peers are purged.
 *
 * When to use: read `catalog()` or await `when` conditions to find peers by tag, stream or group;
 * streams and groups use it to find producers and members.
 *
 * Gotcha: the drift check needs loosely synchronized clocks (±`maxTimeDriftMs`), as in mosaik.
 *
 * The work is split among the parts it composes: Announcements (gossip, announcements.ts), Ingestion
 * (checking and applying entries and departures, ingest.ts), CatalogExchange (catalog syncs and
 * pings, exchange.ts) and Neighbours (bootstrap, first contact, neighbours, anti-entropy, RTT probes,
 * neighbours.ts). They share one DiscoveryState (state.ts).
 */
export class Discovery {
  readonly #events = new Emitter<DiscoveryEvents>()
  /** The options this discovery runs with, defaults filled in. */
  readonly config: DiscoveryConfig
  /** Live counters of what discovery saw and did (mutated in place). */
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

  readonly #ctx: DiscoveryComponents
  readonly #state: DiscoveryState
  readonly #store: CatalogStore
  readonly #ingestion: Ingestion
  readonly #announcements: Announcements
  readonly #exchange: CatalogExchange
  readonly #neighbours: Neighbours
  #localChain: Promise<void> = Promise.resolve()

  /**
   * Subscribes to catalog events (`peer:discovered`, `peer:updated`, `peer:departed`, `rejected`,
   * `bootstrap:unreachable`); returns the unsubscribe function.
   */
  on<K extends keyof DiscoveryEvents>(event: K, listener: (payload: DiscoveryEvents[K]) => void): () => void {
    return this.#events.on(event, listener)
  }

  /** Removes a listener added with `on`. */
  off<K extends keyof DiscoveryEvents>(event: K, listener: (payload: DiscoveryEvents[K]) => void): void {
    this.#events.off(event, listener)
  }

  /** Like `on`, for the next event only. */
  once<K extends keyof DiscoveryEvents>(
    event: K,
    listener: (payload: DiscoveryEvents[K]) => void,
  ): () => void {
    return this.#events.once(event, listener)
  }

  private constructor(
    ctx: DiscoveryComponents,
    config: DiscoveryConfig,
    local: SignedPeerEntry,
    bootstrap: string[],
  ) {
    this.#ctx = ctx
    this.config = config
    this.bootstrapped = new Watch(bootstrap.length === 0)
    const rtt = new RttTracker()
    this.#store = new CatalogStore(
      local,
      {
        purgeAfterMs: config.purgeAfterMs,
        maxTimeDriftMs: config.maxTimeDriftMs,
        maxPeers: config.maxPeers,
        maxRelayedPerSource: config.maxRelayedPerSource,
        maxRttMs: config.maxRttMs,
      },
      rtt,
      (peerId) => ctx.isConnected(peerId),
    )
    // Dials by peer id (links of every subsystem, neighbour dials) take their addresses from here.
    ctx.useAddressBook((peerId) => this.#store.addressesOf(peerId))
    this.#state = new DiscoveryState({
      ctx,
      config,
      scope: ctx.scope.child(),
      log: ctx.log('discovery'),
      events: this.#events,
      stats: this.stats,
      store: this.#store,
      rtt,
      entryLimits: { maxBytes: config.maxEntryBytes, maxAddresses: config.maxAddressesPerPeer },
    })
    this.#ingestion = new Ingestion(this.#state, {
      onInserted: () => this.#neighbours.scheduleMaintenance(),
      onDeparted: (d) => this.#passOn(d),
    })
    this.#announcements = new Announcements(this.#state, this.#ingestion)
    this.#exchange = new CatalogExchange(this.#state, this.#ingestion)
    this.#neighbours = new Neighbours(this.#state, this.#exchange, bootstrap, this.bootstrapped)
    this.when = new DiscoveryConditions(this, this.#state.changes)
  }

  /** Builds and starts discovery for a network node; called by Network.create. */
  static async start(
    ctx: DiscoveryComponents,
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

  /**
   * Calls `onChange` with the catalog after each change, until `signal` aborts; resolves then.
   * Changes that come while a call runs are folded into the next one, which sees the latest catalog.
   *
   * When to use: to keep something in step with the catalog (streams' producers and consumers and
   * groups' bonds follow it this way). Gotchas: `onChange` is not called for the catalog as it is
   * now, only for later ones: read `catalog()` first.
   */
  async followCatalog(onChange: (catalog: Catalog) => void, options: { signal: AbortSignal }): Promise<void> {
    let last = this.catalog()
    while (!options.signal.aborted) {
      try {
        last = await this.when.catalog((c) => c !== last, options)
      } catch {
        return
      }
      onChange(last)
    }
  }

  /** A peer's signed entry as received (this node's own for its id), for passing it on. */
  signedEntry(peerId: string): SignedPeerEntry | undefined {
    return peerId === this.#ctx.peerId ? this.#store.local : this.#store.getSigned(peerId)
  }

  /** The smoothed RTT to a peer in ms, when measured. */
  rtt(peerId: string): number | undefined {
    return this.#state.rtt.get(peerId)?.srtt
  }

  // ---- local entry -----------------------------------------------------------------------------

  /** Adds role tags to this node's entry, re-signs and announces it. */
  addTags(...tags: DigestLike[]): Promise<void> {
    return this.updateLocal((e) => ({ tags: e.tags.with(tags) }))
  }

  /** Removes role tags from this node's entry, re-signs and announces it. */
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
      if (this.#state.departed) return
      const current = this.#store.local.entry
      const updated = current.update(this.#ctx.now(), change(current))
      if (!force && updated.sameContent(current)) return
      updated.checkLimits(this.#state.entryLimits)
      this.#store.setLocal(await SignedPeerEntry.sign(updated, this.#ctx.privateKey))
      this.#state.changed()
      this.#announcements.schedule(0)
    })
    this.#localChain = next.catch(() => {})
    return next
  }

  // ---- remote entries --------------------------------------------------------------------------

  /**
   * Takes a signed entry `from` relayed in its wire form (a group member announcing a bond): checked
   * as a catalog sync's entries are, and a refusal is counted in `stats.rejected` and emitted as
   * 'rejected'. @internal
   */
  ingestRelayed(wire: unknown, from: string): Promise<UpsertResult> {
    return this.#ingestion.entry(wire, false, from, false)
  }

  /**
   * Injects a signed entry learned out of band; applied only if valid and newer. It counts as direct
   * when this node is connected to its peer, else as relayed by this node itself. (`insert` takes a
   * local-only unsigned entry.)
   */
  async insertSigned(signed: SignedPeerEntry): Promise<boolean> {
    const verified = await SignedPeerEntry.verify(signed.bytes, signed.signature, this.#state.entryLimits)
    const peer = verified.entry.peerId
    const connected = this.#ctx.isConnected(peer)
    return (
      this.#ingestion.accept(verified, false, this.#ingestion.provenance(peer, connected ? peer : undefined))
        .status !== 'rejected'
    )
  }

  /**
   * Adds a local-only, unsigned entry (ignored if a signed one exists; replaced by one later). Throws
   * EntryLimitError for an entry over the entry limits.
   */
  insert(entry: PeerEntry): boolean {
    entry.checkLimits(this.#state.entryLimits)
    const ok = this.#store.insertUnsigned(entry)
    if (ok) this.#state.changed()
    return ok
  }

  /** Removes a local-only entry. */
  remove(peerId: string): boolean {
    const ok = this.#store.removeUnsigned(peerId)
    if (ok) {
      this.#state.changed()
      this.#ingestion.forgetPeerStore(peerId)
    }
    return ok
  }

  /** Removes every local-only entry added with `insert`. */
  clearUnsigned(): void {
    this.#store.clearUnsigned()
    this.#state.changed()
  }

  // ---- contact ---------------------------------------------------------------------------------

  /**
   * Best effort: connects to the given peers (multiaddrs with /p2p/, or known peer ids) and syncs
   * catalogs with each one not synced before. Failures are logged, not thrown; a malformed address
   * throws InvalidArgumentError at once, and then none is dialed.
   */
  dial(...peers: string[]): void {
    for (const peer of peers) checkPeer(peer)
    for (const peer of peers) this.#state.scope.spawn(this.syncWith(peer).catch(() => {}))
  }

  /**
   * A full, bidirectional catalog exchange with one peer: each side sends every fresh signed entry it
   * knows (its own included) and merges the other's. A node bootstrapped with one address learns the
   * whole network this way. `peer` is a peer id or a multiaddr ending with `/p2p/<id>`; anything
   * else rejects with InvalidArgumentError.
   */
  async syncWith(peer: string, options: AbortOptions = {}): Promise<void> {
    checkPeer(peer)
    return this.#exchange.syncWith(peer, options)
  }

  /**
   * Where each bootstrap address stands: `connecting` until a sync with it succeeds (`synced`),
   * `unreachable` after failed attempts in a row (the `bootstrap:unreachable` event fires then). Failed
   * addresses are retried with backoff (at most 5 s apart) until they answer.
   */
  bootstrapStatus(): BootstrapStatus[] {
    return this.#neighbours.bootstrapStatus()
  }

  /** Pings a peer: measures the round trip and refreshes its entry from the reply. Returns the RTT in ms. */
  ping(peerId: string, options: AbortOptions = {}): Promise<number> {
    return this.#exchange.ping(peerId, options)
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async #start(): Promise<void> {
    const { libp2p } = this.#ctx
    this.#announcements.start()
    libp2p.addEventListener('connection:open', this.#neighbours.onConnectionOpen)
    libp2p.addEventListener('peer:disconnect', this.#onPeerDisconnect)
    libp2p.addEventListener('self:peer:update', this.#onSelfUpdate)
    await this.#exchange.start()

    this.#announcements.schedule(0)
    this.#state.scope.every(
      () => jittered(this.config.announceIntervalMs, this.config.announceJitter),
      () => this.updateLocal(() => ({}), true).catch(() => {}),
    )
    this.#neighbours.start()
  }

  /**
   * Announces departure (signed) so peers drop this node at once, waits the departure window, then
   * stops every timer and handler. Called by Network.close.
   */
  async stop(): Promise<void> {
    const state = this.#state
    if (state.departed) return
    const { libp2p } = this.#ctx
    try {
      await this.#localChain
      state.departed = true
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
      // Gossip carries the departure to the network. Connected peers gossip cannot reach yet (a
      // node leaving right after joining, or one that joined moments ago) get it directly, over the
      // catalog sync protocol, so they drop us at once instead of after the purge window.
      const reachable = this.#announcements.reachable()
      const wire = departureToWire(departure)
      await Promise.allSettled([
        ...this.#pushDeparture(wire, reachable, []),
        reachable.size > 0 ? this.#announcements.publishDeparture(wire) : Promise.resolve(),
      ])
    } catch (err) {
      state.log('departure announcement failed: %s', (err as Error).message)
    }
    state.departed = true
    this.#announcements.stop()
    libp2p.removeEventListener('connection:open', this.#neighbours.onConnectionOpen)
    libp2p.removeEventListener('peer:disconnect', this.#onPeerDisconnect)
    libp2p.removeEventListener('self:peer:update', this.#onSelfUpdate)
    this.#ingestion.stop()
    state.changes.close()
    await state.scope.close()
    this.#events.removeAllListeners()
  }

  /**
   * Passes a departure on where gossip may not carry it: pushed by the departed peer itself, it is
   * published here too (its gossip may not reach this node's side of the mesh); and connected peers
   * gossip cannot reach from here yet (they joined moments ago) get it pushed. Without this, such a
   * peer kept the departed one until the purge window.
   */
  #passOn(d: DepartureApplied): void {
    if (this.#state.departed) return
    if (!d.gossip && d.from === d.peerId) this.#announcements.relayDeparture(d.wire)
    const reachable = this.#announcements.reachable()
    for (const push of this.#pushDeparture(d.wire, reachable, [d.peerId, d.from]))
      this.#state.scope.spawn(push)
  }

  /**
   * Pushes a departure over the catalog sync protocol to the connected peers gossip does not reach
   * (at most MAX_DEPARTURE_PUSHES), leaving out `except`.
   */
  #pushDeparture(wire: unknown, reachable: Set<string>, except: string[]): Promise<void>[] {
    const deadline = 4 * Math.max(this.config.departureWindowMs, 100)
    return [...new Set(this.#ctx.libp2p.getConnections().map((c) => c.remotePeer.toString()))]
      .filter((p) => !reachable.has(p) && !except.includes(p))
      .slice(0, MAX_DEPARTURE_PUSHES)
      .map((peer) => this.#exchange.pushDeparture(peer, wire, deadline))
  }

  /** A peer that is not in the catalog is forgotten by libp2p too once its last connection closes. */
  readonly #onPeerDisconnect = (evt: CustomEvent<PeerId>): void => {
    this.#ingestion.forgetPeerStore(evt.detail.toString())
  }

  readonly #onSelfUpdate = (): void => {
    const addresses = ownAddresses(this.#ctx, this.config.maxAddressesPerPeer)
    this.updateLocal(() => ({ addresses })).catch((err) => {
      this.#state.log.error('cannot advertise new addresses: %s', (err as Error).message)
    })
  }
}

/**
 * This node's addresses for its entry, at most `max`: public ones first, then private, then
 * loopback, so a host with many interfaces still advertises the ones others can reach.
 */
function ownAddresses(ctx: DiscoveryComponents, max: number): string[] {
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

function sameTicket(a: Ticket, b: Ticket): boolean {
  return a.class.equals(b.class) && equalBytes(a.data, b.data)
}

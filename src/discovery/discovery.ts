import { type Message, TopicValidatorResult } from '@libp2p/gossipsub'
import type { Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { CloseCode } from '../network/close.ts'
import type { Logger, NetworkContext } from '../network/context.ts'
import type { Link } from '../network/link.ts'
import { type AbortOptions, anySignal, delay } from '../primitives/abort.ts'
import { Backoff, jittered } from '../primitives/backoff.ts'
import { equalBytes, randomBytes } from '../primitives/bytes.ts'
import { decodeCanonical, encodeCanonical } from '../primitives/codec.ts'
import type { DigestLike } from '../primitives/digest.ts'
import { DecodeError, MosaikError } from '../primitives/errors.ts'
import { Emitter } from '../primitives/events.ts'
import type { Scope } from '../primitives/scope.ts'
import { Watch } from '../primitives/watch.ts'
import { type Catalog, CatalogStore, type PeerInfo, type RejectReason, type UpsertResult } from './catalog.ts'
import {
  type Departure,
  departureFromWire,
  departureToWire,
  PeerEntry,
  SignedPeerEntry,
  signDeparture,
  UnsupportedEntryVersionError,
  type UnverifiedEntry,
  verifyDeparture,
} from './entry.ts'
import { RttTracker } from './rtt.ts'

/** Tuning of discovery; every field has mosaik's default. */
export interface DiscoveryOptions {
  /** Base interval of periodic re-announcements (default 45 s). */
  announceIntervalMs?: number
  /** ± fraction of the interval applied at random (default 0.5). */
  announceJitter?: number
  /** Entries not refreshed within this window are hidden and purged (default 300 s). */
  purgeAfterMs?: number
  /** Gossiped entries and departures further than this from local time are ignored (default 50 s). */
  maxTimeDriftMs?: number
  /** Hide peers whose smoothed RTT exceeds this (unknown RTT is admitted). Default: no filter. */
  maxRttMs?: number
  /** Interval of RTT probes to connected peers (default 30 s, ±50 %). */
  rttProbeIntervalMs?: number
  /** How long close() waits after broadcasting the departure (default 500 ms). */
  departureWindowMs?: number
  /** Most signed peers the catalog holds; more are refused as `catalog-full` (default 10 000). */
  maxPeers?: number
  /** Gossip neighbours a node tries to keep connected, dialing known peers when below (default 6). */
  targetNeighbors?: number
  /** Interval of anti-entropy syncs with one random connected peer (default 30 s, ±50 %). */
  antiEntropyIntervalMs?: number
  /** Timeout of a catalog sync and of a ping (default 5 s). */
  requestTimeoutMs?: number
  /** Largest encoded announcement accepted (default 64 KiB). */
  maxAnnouncementBytes?: number
  /** Entry updates accepted per peer per second through gossip, with a burst of twice that (default 10). */
  maxUpdatesPerSecond?: number
}

export type DiscoveryConfig = Required<Omit<DiscoveryOptions, 'maxRttMs'>> & { maxRttMs: number | undefined }

export function discoveryConfig(options: DiscoveryOptions = {}): DiscoveryConfig {
  return {
    announceIntervalMs: options.announceIntervalMs ?? 45_000,
    announceJitter: options.announceJitter ?? 0.5,
    purgeAfterMs: options.purgeAfterMs ?? 300_000,
    maxTimeDriftMs: options.maxTimeDriftMs ?? 50_000,
    maxRttMs: options.maxRttMs,
    rttProbeIntervalMs: options.rttProbeIntervalMs ?? 30_000,
    departureWindowMs: options.departureWindowMs ?? 500,
    maxPeers: options.maxPeers ?? 10_000,
    targetNeighbors: options.targetNeighbors ?? 6,
    antiEntropyIntervalMs: options.antiEntropyIntervalMs ?? 30_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 5_000,
    maxAnnouncementBytes: options.maxAnnouncementBytes ?? 64 * 1024,
    maxUpdatesPerSecond: options.maxUpdatesPerSecond ?? 10,
  }
}

export interface DiscoveryEvents {
  /** A peer appeared in the catalog. */
  'peer:discovered': PeerInfo
  /** A known peer published a newer entry. */
  'peer:updated': PeerInfo
  /** A peer left: it announced its departure, or it went silent past the purge window. */
  'peer:departed': { id: string; reason: 'departed' | 'purged' }
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
const SYNC_PROTOCOL_VERSION = 1
const SYNC_CHUNK = 256

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
  #maintenanceScheduled = false
  readonly #dialing = new Set<string>()
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
    this.#store = new CatalogStore(
      local,
      {
        purgeAfterMs: config.purgeAfterMs,
        maxTimeDriftMs: config.maxTimeDriftMs,
        maxPeers: config.maxPeers,
        maxRttMs: config.maxRttMs,
      },
      this.#rtt,
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
      addresses: ctx.libp2p.getMultiaddrs().map(String),
      tags: options.tags,
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
   * Changes the local entry (streams and groups use this to advertise themselves). The version is
   * bumped, the entry re-signed and announced only when the content changes (or `force` is set).
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
      this.#store.setLocal(await SignedPeerEntry.sign(updated, this.#ctx.privateKey))
      this.#changes.set(this.#changes.value + 1)
      this.#scheduleAnnounce(0)
    })
    this.#localChain = next.catch(() => {})
    return next
  }

  // ---- remote entries --------------------------------------------------------------------------

  /** Injects a signed entry learned out of band; applied only if valid and newer. */
  async feed(signed: SignedPeerEntry): Promise<boolean> {
    const verified = await SignedPeerEntry.verify(signed.bytes, signed.signature)
    return this.#accept(verified, false).status !== 'rejected'
  }

  /** Adds a local-only, unsigned entry (ignored if a signed one exists; replaced by one later). */
  insert(entry: PeerEntry): boolean {
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
    if (ok) this.#changes.set(this.#changes.value + 1)
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
    const signal = anySignal(
      options.signal,
      this.#scope.signal,
      AbortSignal.timeout(this.config.requestTimeoutMs),
    )
    this.stats.syncsInitiated++
    let link: Link | undefined
    // Mark the peer before dialing, so the new connection does not trigger a second, redundant sync.
    const target = peerOfAddress(peer)
    if (target) this.#synced.add(target)
    try {
      link = await this.#ctx.openLink(peer, this.#syncProtocol, { signal })
      this.#synced.add(link.remotePeer)
      await this.#sendSnapshot(link, signal)
      await this.#receiveSnapshot(link, signal)
      await link.close(CloseCode.Success)
    } catch (err) {
      this.stats.syncsFailed++
      link?.abort('sync failed')
      throw err instanceof MosaikError ? err : new SyncError(peer, err as Error)
    }
  }

  /** Pings a peer: measures the round trip and refreshes its entry from the reply. Returns the RTT in ms. */
  async ping(peerId: string, options: AbortOptions = {}): Promise<number> {
    const signal = anySignal(
      options.signal,
      this.#scope.signal,
      AbortSignal.timeout(this.config.requestTimeoutMs),
    )
    const link = await this.#ctx.openLink(peerId, this.#pingProtocol, { signal })
    try {
      const started = performance.now()
      await link.send([SYNC_PROTOCOL_VERSION, this.#ctx.networkId.bytes], { signal })
      const reply = await link.recv({ signal })
      const rtt = performance.now() - started
      this.stats.pings++
      this.#rtt.record(link.remotePeer, rtt)
      this.#store.rttChanged()
      const signed = await SignedPeerEntry.fromWire(reply)
      if (signed.entry.peerId !== link.remotePeer)
        throw new DecodeError('ping reply carries another peer entry')
      this.#accept(signed, false)
      this.#changes.set(this.#changes.value + 1)
      await link.close(CloseCode.Success)
      return rtt
    } catch (err) {
      link.abort('ping failed')
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
    libp2p.addEventListener('self:peer:update', this.#onSelfUpdate)

    await this.#ctx.handle(this.#syncProtocol, (link) => this.#acceptSync(link))
    await this.#ctx.handle(this.#pingProtocol, (link) => this.#acceptPing(link))

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
    libp2p.removeEventListener('self:peer:update', this.#onSelfUpdate)
    this.#cancelPurge()
    this.#changes.close()
    await this.#scope.close()
    this.removeAllListeners()
  }

  /** Hands our departure to one peer over a catalog sync that carries nothing else. */
  async #pushDeparture(peer: string, departure: unknown, signal: AbortSignal): Promise<void> {
    const link = await this.#ctx.openLink(peer, this.#syncProtocol, { signal })
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
    // The nonce makes each announcement a distinct gossip message: gossipsub refuses to publish the
    // same bytes twice, and a re-announcement to new neighbours must go out.
    await pubsub.publish(
      this.#topic,
      encodeCanonical([MSG_ENTRY, this.#store.local.toWire(), randomBytes(8)]),
    )
    this.stats.announcementsSent++
  }

  readonly #onSubscriptionChange = (
    evt: CustomEvent<{
      peerId: { toString(): string }
      subscriptions: { topic: string; subscribe: boolean }[]
    }>,
  ): void => {
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
      const result = await this.#ingest(body, true, sender)
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

  /** Drops what we kept about a peer that left, so churn does not grow memory. */
  #forget(peerId: string): void {
    this.#rtt.remove(peerId)
    this.#synced.delete(peerId)
    this.#updateBuckets.delete(peerId)
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
   * hold), then the signature, then the catalog rules. Never throws; refusals are counted.
   */
  async #ingest(wire: unknown, gossip: boolean, from: string): Promise<UpsertResult> {
    let unverified: UnverifiedEntry
    try {
      unverified = SignedPeerEntry.parse(wire)
    } catch (err) {
      const reason = rejectReasonOf(err)
      this.#reject(reason, from)
      return { status: 'rejected', reason }
    }
    const { entry, bytes, signature } = unverified
    const pre = this.#store.precheck(entry, bytes, signature, this.#ctx.now(), gossip)
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
    return this.#accept(signed, gossip, from)
  }

  /** Applies a verified entry to the catalog and emits what changed. */
  #accept(signed: SignedPeerEntry, gossip: boolean, from?: string): UpsertResult {
    const result = this.#store.upsertSigned(signed, this.#ctx.now(), gossip)
    if (result.status === 'rejected') {
      // Our own entry coming back through gossip or a sync is normal, not an attack.
      if (result.reason !== 'local') this.#reject(result.reason, from, signed.entry.peerId)
      return result
    }
    if (result.status === 'unchanged') return result
    this.stats.entriesAccepted++
    this.#ctx.learnAddresses(signed.entry.peerId, signed.entry.addresses).catch(() => {})
    this.#onCatalogChanged()
    if (result.status === 'inserted') this.#scheduleMaintenance()
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

  /** Header `[version, network, entries, departures]`, then the entries and departures in chunks. */
  async #sendSnapshot(link: Link, signal: AbortSignal): Promise<void> {
    const entries = this.#store.syncSnapshot(this.#ctx.now()).map((e) => e.toWire())
    const departures = this.#store.syncDepartures().map(departureToWire)
    const header = [SYNC_PROTOCOL_VERSION, this.#ctx.networkId.bytes, entries.length, departures.length]
    await link.send(header, { signal })
    for (const items of [entries, departures]) {
      for (let i = 0; i < items.length; i += SYNC_CHUNK)
        await link.send(items.slice(i, i + SYNC_CHUNK), { signal })
    }
  }

  async #receiveSnapshot(link: Link, signal: AbortSignal): Promise<void> {
    const header = await link.recv({ signal })
    if (!Array.isArray(header) || header.length < 1) {
      link.closeWith(CloseCode.ProtocolViolation, 'bad sync header')
      throw new DecodeError('bad sync header')
    }
    if (header[0] !== SYNC_PROTOCOL_VERSION) {
      link.closeWith(CloseCode.UnsupportedVersion, `catalog sync version ${String(header[0])}`)
      throw new UnsupportedVersionError('catalog sync', header[0])
    }
    if (header.length !== 4 || !Number.isSafeInteger(header[2]) || !Number.isSafeInteger(header[3])) {
      link.closeWith(CloseCode.ProtocolViolation, 'bad sync header')
      throw new DecodeError('bad sync header')
    }
    if (!(header[1] instanceof Uint8Array) || !equalBytes(header[1], this.#ctx.networkId.bytes)) {
      link.closeWith(CloseCode.DifferentNetwork, 'different network')
      this.#reject('different-network', link.remotePeer)
      throw new DifferentNetworkError(link.remotePeer)
    }
    const [, , entryCount, departureCount] = header as [number, Uint8Array, number, number]
    // Bounded so a peer cannot keep us verifying signatures forever; entries past the catalog limit
    // are refused one by one (catalog-full).
    const limit = 4 * this.config.maxPeers + 16
    if (entryCount < 0 || departureCount < 0 || entryCount > limit || departureCount > limit) {
      link.closeWith(CloseCode.ProtocolViolation, 'too many entries')
      this.#reject('catalog-full', link.remotePeer)
      throw new DecodeError(
        `sync of ${entryCount} entries and ${departureCount} departures exceeds the limit`,
      )
    }
    const from = link.remotePeer
    await this.#receiveItems(link, entryCount, signal, (wire) => this.#ingest(wire, false, from))
    await this.#receiveItems(link, departureCount, signal, (wire) => this.#ingestDeparture(wire, false, from))
  }

  async #receiveItems(
    link: Link,
    total: number,
    signal: AbortSignal,
    ingest: (wire: unknown) => Promise<unknown>,
  ): Promise<void> {
    let received = 0
    while (received < total) {
      const chunk = await link.recv({ signal })
      if (!Array.isArray(chunk) || chunk.length === 0 || received + chunk.length > total) {
        link.closeWith(CloseCode.ProtocolViolation, 'bad sync chunk')
        throw new DecodeError('bad sync chunk')
      }
      received += chunk.length
      for (const wire of chunk) await ingest(wire)
    }
  }

  async #acceptSync(link: Link): Promise<void> {
    const signal = anySignal(this.#scope.signal, AbortSignal.timeout(this.config.requestTimeoutMs))
    this.stats.syncsAccepted++
    this.#synced.add(link.remotePeer)
    await this.#receiveSnapshot(link, signal)
    await this.#sendSnapshot(link, signal)
    // The initiator closes once it has merged our snapshot.
    await link.closed
  }

  async #acceptPing(link: Link): Promise<void> {
    const signal = anySignal(this.#scope.signal, AbortSignal.timeout(this.config.requestTimeoutMs))
    const hello = await link.recv({ signal })
    if (!Array.isArray(hello) || hello[0] !== SYNC_PROTOCOL_VERSION) {
      link.closeWith(CloseCode.UnsupportedVersion, 'ping version')
      return
    }
    if (!(hello[1] instanceof Uint8Array) || !equalBytes(hello[1], this.#ctx.networkId.bytes)) {
      link.closeWith(CloseCode.DifferentNetwork, 'different network')
      return
    }
    await link.send(this.#store.local.toWire(), { signal })
    await link.closed
  }

  /** First contact: the dialing side of a new connection syncs catalogs with the peer once per run. */
  readonly #onConnectionOpen = (evt: CustomEvent<Connection>): void => {
    const connection = evt.detail
    const peer = connection.remotePeer.toString()
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
    const addresses = this.#ctx.libp2p.getMultiaddrs().map(String)
    this.updateLocal(() => ({ addresses })).catch(() => {})
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

/**
 * Awaitable conditions on the catalog. Each resolves as soon as it holds (at once if it already does)
 * and takes an AbortSignal.
 */
export class DiscoveryConditions {
  readonly #discovery: Discovery
  readonly #changes: Watch<number>

  constructor(discovery: Discovery, changes: Watch<number>) {
    this.#discovery = discovery
    this.#changes = changes
  }

  /** Resolves with the catalog once `predicate` holds for it. */
  async catalog(predicate: (catalog: Catalog) => boolean, options?: AbortOptions): Promise<Catalog> {
    await this.#changes.until(() => predicate(this.#discovery.catalog()), options)
    return this.#discovery.catalog()
  }

  /** Resolves once at least `n` peers (optionally matching `filter`) are in the catalog. */
  peers(
    n: number,
    filter: (peer: PeerInfo) => boolean = () => true,
    options?: AbortOptions,
  ): Promise<Catalog> {
    return this.catalog((c) => c.peers().filter(filter).length >= n, options)
  }

  /** Resolves once `peerId` is in the catalog. */
  peer(peerId: string, options?: AbortOptions): Promise<PeerInfo> {
    return this.catalog((c) => c.has(peerId), options).then((c) => c.get(peerId)!)
  }

  /** Resolves once `peerId` is no longer in the catalog. */
  gone(peerId: string, options?: AbortOptions): Promise<Catalog> {
    return this.catalog((c) => !c.has(peerId), options)
  }
}

export class SyncError extends MosaikError {
  constructor(peer: string, cause: Error) {
    super('SYNC_FAILED', `catalog sync with ${peer} failed: ${cause.message}`, { cause })
  }
}

export class DifferentNetworkError extends MosaikError {
  constructor(peer: string) {
    super('DIFFERENT_NETWORK', `${peer} belongs to a different network`)
  }
}

export class UnsupportedVersionError extends MosaikError {
  constructor(what: string, version: unknown) {
    super('UNSUPPORTED_VERSION', `unsupported ${what} protocol version ${String(version)}`)
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

function rejectReasonOf(err: unknown): RejectReason {
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

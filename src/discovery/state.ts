import type { Emitter } from '../primitives/events.ts'
import type { Scope } from '../primitives/scope.ts'
import { Watch } from '../primitives/watch.ts'
import type { Logger, MosaikLibp2p, NetworkContext } from '../transport/context.ts'
import type { Catalog, CatalogStore, PeerInfo, RejectReason } from './catalog.ts'
import type { DiscoveryConfig } from './config.ts'
import type { EntryLimits } from './entry.ts'
import type { RttTracker } from './rtt.ts'

/** The events `Discovery` emits (subscribe with `discovery.on(name, listener)`). */
export interface DiscoveryEvents {
  /** A peer appeared in the catalog. */
  'peer:discovered': PeerInfo
  /** A known peer published a newer entry. */
  'peer:updated': PeerInfo
  /**
   * A peer left: it announced its departure, it went silent past the purge window, or its entry was
   * evicted from a full catalog to make room for a more valuable one.
   */
  'peer:departed': {
    /** The peer that left. */
    id: string
    /** How it left: announced (`departed`), went silent (`purged`) or made room (`evicted`). */
    reason: 'departed' | 'purged' | 'evicted'
  }
  /**
   * A bootstrap address failed `failures` times in a row (BOOTSTRAP_UNREACHABLE_AFTER); `error` is the
   * last failure. Fires once per address; the address is still retried with backoff (see
   * `Discovery.bootstrapStatus()`).
   */
  'bootstrap:unreachable': {
    /** The bootstrap address, as configured. */
    address: string
    /** The last failure. */
    error: Error
    /** Failed attempts in a row. */
    failures: number
  }
  /** Input was refused; `from` is the peer that sent it, when known. */
  rejected: {
    /** Why the input was refused. */
    reason: RejectReason
    /** The peer that sent it, when known. */
    from?: string
    /** The peer the refused entry or departure describes, when known. */
    peer?: string
  }
}

/** Counters of what discovery saw and did, for monitoring and tests. */
export interface DiscoveryStats {
  /** Announcements of this node's entry published over gossip. */
  announcementsSent: number
  /** Peer entries (gossiped or synced) that were new or newer and entered the catalog. */
  entriesAccepted: number
  /** Signed departures accepted. */
  departuresSeen: number
  /** Full catalog syncs this node started. */
  syncsInitiated: number
  /** Full catalog syncs a peer started with this node. */
  syncsAccepted: number
  /** Syncs this node started that failed. */
  syncsFailed: number
  /** Pings this node completed (RTT measurements). */
  pings: number
  /** Refused input, counted by reason. */
  rejected: Partial<Record<RejectReason, number>>
}

/**
 * What discovery uses of its node: identity, clock, links on its protocols, and the libp2p pieces it
 * drives (gossipsub, the peer store, connections and their events). Network passes its context.
 */
export interface DiscoveryComponents
  extends Pick<
    NetworkContext,
    | 'networkId'
    | 'peerId'
    | 'privateKey'
    | 'now'
    | 'clock'
    | 'scope'
    | 'log'
    | 'protocol'
    | 'openLink'
    | 'handle'
    | 'useAddressBook'
    | 'dialPeer'
    | 'forgetTaught'
    | 'isConnected'
  > {
  readonly libp2p: Pick<
    MosaikLibp2p,
    | 'services'
    | 'dial'
    | 'getConnections'
    | 'getMultiaddrs'
    | 'peerStore'
    | 'addEventListener'
    | 'removeEventListener'
  >
}

/**
 * What the parts of one Discovery share: the node, the catalog store, the counters and the flags
 * that more than one part reads. Discovery builds it and hands it to the parts it composes
 * (announcements, ingestion, catalog exchange, neighbours).
 */
export class DiscoveryState {
  readonly ctx: DiscoveryComponents
  readonly config: DiscoveryConfig
  readonly scope: Scope
  readonly log: Logger
  readonly events: Emitter<DiscoveryEvents>
  readonly stats: DiscoveryStats
  readonly store: CatalogStore
  readonly rtt: RttTracker
  readonly entryLimits: EntryLimits
  /** Bumped on every change the catalog conditions may be waiting for. */
  readonly changes = new Watch(0)
  /** Peers we already synced with (or are syncing with) in this run. */
  readonly synced = new Set<string>()
  /** Set once this node announced its departure: nothing more is announced, dialed or synced. */
  departed = false

  constructor(fields: {
    ctx: DiscoveryComponents
    config: DiscoveryConfig
    scope: Scope
    log: Logger
    events: Emitter<DiscoveryEvents>
    stats: DiscoveryStats
    store: CatalogStore
    rtt: RttTracker
    entryLimits: EntryLimits
  }) {
    this.ctx = fields.ctx
    this.config = fields.config
    this.scope = fields.scope
    this.log = fields.log
    this.events = fields.events
    this.stats = fields.stats
    this.store = fields.store
    this.rtt = fields.rtt
    this.entryLimits = fields.entryLimits
  }

  /** An immutable snapshot of the catalog. */
  catalog(): Catalog {
    return this.store.snapshot(this.ctx.now())
  }

  /** Wakes whoever waits on the catalog conditions. */
  changed(): void {
    this.changes.set(this.changes.value + 1)
  }
}

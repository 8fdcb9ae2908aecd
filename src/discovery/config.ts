import { DEFAULT_ENTRY_LIMITS } from './entry.ts'

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
  /**
   * Most signed peers the catalog holds (default 10 000). A newcomer to a full catalog takes the place
   * of an entry of the largest group (see `maxRelayedPerSource`), or is refused as `catalog-full`.
   */
  maxPeers?: number
  /**
   * Most entries of peers never seen connected (only heard of) that one source may keep in the
   * catalog: a source is the host (IP address, or IPv6 /64) of the connection they came through, or
   * the relaying peer when that connection has no IP. More are refused as `over-quota` before their
   * signatures are checked. Default: a quarter of `maxPeers`.
   *
   * Why: keys are free to mint, so without it one peer relaying entries of fresh keys fills the
   * catalog and honest peers are refused. A peer that connects and hands over its own entry always
   * gets in, taking the place of such an entry.
   *
   * Gotcha: a node bootstrapped from a single peer of a network larger than this learns the rest from
   * its other neighbours and from gossip, not from the first sync.
   */
  maxRelayedPerSource?: number
  /**
   * Most addresses in one peer entry (default 16). An entry with more is refused whole (it is signed,
   * so it cannot be trimmed); this node's own entry keeps its first 16 addresses, public ones first.
   *
   * Gotcha: every node of a network should use the same entry limits. A node refuses an entry over
   * its own limits, and closes a catalog sync that carries one with FrameTooLarge.
   */
  maxAddressesPerPeer?: number
  /**
   * Largest encoded peer entry in bytes (default 8 KiB: 16 long addresses and about 120 tags, streams
   * and groups). Entries also hold at most 64 tags and 16 tickets. This node's own entry must fit:
   * a change that would make it larger fails with EntryLimitError. Same gotcha as
   * `maxAddressesPerPeer`.
   */
  maxEntryBytes?: number
  /**
   * Most bytes of entries and departures one catalog sync carries each way (default 8 MiB, about
   * 10 000 typical entries). A node sends at most this much, entries of peers it has seen connected
   * first, and closes a sync that brings more with FrameTooLarge.
   */
  maxSyncBytes?: number
  /** Gossip neighbours a node tries to keep connected, dialing known peers when below (default 6). */
  targetNeighbors?: number
  /** Interval of anti-entropy syncs with one random connected peer (default 30 s, ±50 %). */
  antiEntropyIntervalMs?: number
  /**
   * Deadline of a whole catalog sync and of a ping, on both sides (default 5 s). An inbound exchange
   * still open at the deadline is closed with Timeout.
   */
  requestTimeoutMs?: number
  /** Largest encoded announcement accepted (default: `maxEntryBytes` plus 512 bytes of framing). */
  maxAnnouncementBytes?: number
  /** Entry updates accepted per peer per second through gossip, with a burst of twice that (default 10). */
  maxUpdatesPerSecond?: number
}

/** DiscoveryOptions with every default filled in (`maxRttMs` may stay unset): `Discovery.config`. */
export type DiscoveryConfig = Required<Omit<DiscoveryOptions, 'maxRttMs'>> & {
  /** The RTT filter of the catalog; undefined: no filter. */
  maxRttMs: number | undefined
}

export function discoveryConfig(options: DiscoveryOptions = {}): DiscoveryConfig {
  const maxPeers = options.maxPeers ?? 10_000
  const maxEntryBytes = options.maxEntryBytes ?? DEFAULT_ENTRY_LIMITS.maxBytes
  return {
    announceIntervalMs: options.announceIntervalMs ?? 45_000,
    announceJitter: options.announceJitter ?? 0.5,
    purgeAfterMs: options.purgeAfterMs ?? 300_000,
    maxTimeDriftMs: options.maxTimeDriftMs ?? 50_000,
    maxRttMs: options.maxRttMs,
    rttProbeIntervalMs: options.rttProbeIntervalMs ?? 30_000,
    departureWindowMs: options.departureWindowMs ?? 500,
    maxPeers,
    maxRelayedPerSource: options.maxRelayedPerSource ?? Math.max(1, Math.floor(maxPeers / 4)),
    maxAddressesPerPeer: options.maxAddressesPerPeer ?? DEFAULT_ENTRY_LIMITS.maxAddresses,
    maxEntryBytes,
    maxSyncBytes: options.maxSyncBytes ?? 8 * 1024 * 1024,
    targetNeighbors: options.targetNeighbors ?? 6,
    antiEntropyIntervalMs: options.antiEntropyIntervalMs ?? 30_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 5_000,
    maxAnnouncementBytes: options.maxAnnouncementBytes ?? maxEntryBytes + 512,
    maxUpdatesPerSecond: options.maxUpdatesPerSecond ?? 10,
  }
}

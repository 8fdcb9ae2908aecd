import { equalBytes } from '../primitives/bytes.ts'
import type { NetworkId } from '../primitives/digest.ts'
import { Admission, type Provenance } from './admission.ts'
import type { Departure } from './departure.ts'
import {
  compareVersions,
  type DigestSet,
  type EntryVersion,
  type PeerEntry,
  type SignedPeerEntry,
  type Ticket,
} from './entry.ts'
import type { RttTracker } from './rtt.ts'

/** What predicates, conditions and catalog reads see of a peer. */
export interface PeerInfo {
  /** The peer's libp2p peer id. */
  readonly id: string
  /** The network the peer belongs to. */
  readonly network: NetworkId
  /** The version of the peer's entry (run start and latest update). */
  readonly version: EntryVersion
  /** The multiaddrs the peer announces. */
  readonly addresses: readonly string[]
  /** The role tags the peer declares (self-declared: not a credential). */
  readonly tags: DigestSet
  /** The ids of the streams the peer produces. */
  readonly streams: DigestSet
  /** The ids of the groups the peer is a member of. */
  readonly groups: DigestSet
  /** The credentials the peer carries (see Ticket). */
  readonly tickets: readonly Ticket[]
  /** False for entries inserted locally with `discovery.insert`. */
  readonly signed: boolean
  /** Smoothed round-trip time in ms, when measured. */
  readonly rtt: number | undefined
  /** When the peer's process started, in ms since the epoch (`version.start`). */
  readonly startedAt: number
  /** When the peer last changed its entry, in ms since the epoch (`version.update`). */
  readonly updatedAt: number
  /** The underlying entry. */
  readonly entry: PeerEntry
}

/** True when the peer's RTT is below `ms`, or unknown (optimistic, as mosaik's `rtt_below`). */
export function rttBelow(peer: PeerInfo, ms: number): boolean {
  return peer.rtt === undefined || peer.rtt < ms
}

export function toPeerInfo(entry: PeerEntry, signed: boolean, rtt: number | undefined): PeerInfo {
  return {
    id: entry.peerId,
    network: entry.network,
    version: entry.version,
    addresses: entry.addresses,
    tags: entry.tags,
    streams: entry.streams,
    groups: entry.groups,
    tickets: entry.tickets,
    signed,
    rtt,
    startedAt: entry.startedAt,
    updatedAt: entry.updatedAt,
    entry,
  }
}

/** Why an entry was not taken into the catalog. */
export type RejectReason =
  | 'malformed'
  | 'oversized'
  | 'invalid-signature'
  | 'unsupported-version'
  | 'different-network'
  | 'outdated'
  | 'clock-drift'
  | 'future'
  | 'not-newer'
  | 'departed'
  | 'local'
  | 'catalog-full'
  | 'over-quota'
  | 'rate-limited'

export type UpsertResult =
  | { readonly status: 'updated'; readonly info: PeerInfo }
  /** `evicted`: the peer whose entry made room for this one in a full catalog. */
  | { readonly status: 'inserted'; readonly info: PeerInfo; readonly evicted?: string }
  | { readonly status: 'unchanged' }
  | { readonly status: 'rejected'; readonly reason: RejectReason }

export interface CatalogLimits {
  purgeAfterMs: number
  maxTimeDriftMs: number
  maxPeers: number
  maxRelayedPerSource: number
  maxRttMs: number | undefined
}

/**
 * The node's view of the network. It holds signed entries (synced and gossiped) and unsigned ones
 * (inserted locally), and enforces the rules that keep bad data out: a different network, an entry
 * older than the purge window or from the future, a version not newer than the one known, a replay
 * of a departed run, or a newcomer that admission (see admission.ts) has no room for are all
 * rejected with a reason.
 */
export class CatalogStore {
  readonly #network: NetworkId
  readonly #limits: CatalogLimits
  readonly #rtt: RttTracker
  readonly #admission: Admission
  #local: SignedPeerEntry
  readonly #signed = new Map<string, SignedPeerEntry>()
  readonly #unsigned = new Map<string, PeerEntry>()
  /**
   * The signed departure of each departed peer, kept for the purge window: replays of its entry are
   * refused, and catalog syncs pass the departure on to peers that missed the gossip.
   */
  readonly #departed = new Map<string, { departure: Departure; at: number }>()
  #snapshot: Catalog | undefined

  constructor(
    local: SignedPeerEntry,
    limits: CatalogLimits,
    rtt: RttTracker,
    isConnected: (peerId: string) => boolean = () => false,
  ) {
    this.#local = local
    this.#network = local.entry.network
    this.#limits = limits
    this.#rtt = rtt
    this.#admission = new Admission(limits, isConnected)
  }

  get local(): SignedPeerEntry {
    return this.#local
  }

  setLocal(local: SignedPeerEntry): void {
    this.#local = local
    this.#changed()
  }

  getSigned(peerId: string): SignedPeerEntry | undefined {
    return this.#signed.get(peerId)
  }

  /** The addresses of the entry held for `peerId` (signed, else local-only), if any. */
  addressesOf(peerId: string): readonly string[] | undefined {
    return (this.#signed.get(peerId)?.entry ?? this.#unsigned.get(peerId))?.addresses
  }

  /** Whether any entry (signed or local, stale or not) of `peerId` is held. */
  holds(peerId: string): boolean {
    return this.#signed.has(peerId) || this.#unsigned.has(peerId)
  }

  /**
   * Checks an entry against the rules without storing it. `gossip` entries must be fresh (drift);
   * `provenance` says where a newcomer came from, for admission.
   */
  check(entry: PeerEntry, now: number, gossip: boolean, provenance: Provenance): RejectReason | undefined {
    if (!entry.network.equals(this.#network)) return 'different-network'
    if (entry.peerId === this.#local.entry.peerId) return 'local'
    if (entry.updatedAt > now + this.#limits.maxTimeDriftMs) return 'future'
    if (entry.updatedAt < now - this.#limits.purgeAfterMs) return 'outdated'
    if (gossip && now - entry.updatedAt > this.#limits.maxTimeDriftMs) return 'clock-drift'
    const departed = this.#departed.get(entry.peerId)
    if (
      departed &&
      now - departed.at < this.#limits.purgeAfterMs &&
      compareVersions(entry.version, departed.departure.lastVersion) <= 0
    ) {
      return 'departed'
    }
    const known = this.#signed.get(entry.peerId)
    if (known && !entry.isNewerThan(known.entry)) {
      return compareVersions(entry.version, known.entry.version) === 0 ? undefined : 'not-newer'
    }
    if (!known) return this.#admission.refuse(provenance, this.#signed.size)
    return undefined
  }

  /**
   * What to do with an entry before paying for its signature check: 'unchanged' when it is byte for
   * byte the entry we hold (already verified), a reason when the rules refuse it whatever its
   * signature, undefined when it must be verified and applied.
   */
  precheck(
    entry: PeerEntry,
    bytes: Uint8Array,
    signature: Uint8Array,
    now: number,
    gossip: boolean,
    provenance: Provenance,
  ): 'unchanged' | RejectReason | undefined {
    const known = this.#signed.get(entry.peerId)
    if (known && equalBytes(known.bytes, bytes) && equalBytes(known.signature, signature)) {
      this.#admission.admit(entry.peerId, provenance, entry.updatedAt)
      return 'unchanged'
    }
    return this.check(entry, now, gossip, provenance)
  }

  /**
   * Inserts or replaces a verified signed entry, following the catalog rules. A newcomer to a full
   * catalog evicts the entry admission chooses (reported as `evicted`).
   */
  upsertSigned(signed: SignedPeerEntry, now: number, gossip: boolean, provenance: Provenance): UpsertResult {
    const entry = signed.entry
    const reason = this.check(entry, now, gossip, provenance)
    if (reason) return { status: 'rejected', reason }
    const known = this.#signed.get(entry.peerId)
    let evicted: string | undefined
    if (!known && this.#signed.size >= this.#limits.maxPeers) {
      evicted = this.#admission.victim(provenance)
      if (evicted === undefined) return { status: 'rejected', reason: 'catalog-full' }
      this.#signed.delete(evicted)
      this.#admission.forget(evicted)
    }
    this.#admission.admit(entry.peerId, provenance, entry.updatedAt)
    if (known && compareVersions(entry.version, known.entry.version) === 0) return { status: 'unchanged' }
    this.#signed.set(entry.peerId, signed)
    this.#unsigned.delete(entry.peerId)
    this.#departed.delete(entry.peerId)
    this.#changed()
    const info = toPeerInfo(entry, true, this.#rtt.get(entry.peerId)?.srtt)
    return known ? { status: 'updated', info } : { status: 'inserted', info, evicted }
  }

  /** A connection to `peerId` from host group `group` opened: its entry, if held, is now direct. */
  connected(peerId: string, group: string): void {
    this.#admission.connected(peerId, group)
  }

  /** A local-only entry; ignored when a signed entry for that peer exists. */
  insertUnsigned(entry: PeerEntry): boolean {
    if (!entry.network.equals(this.#network) || entry.peerId === this.#local.entry.peerId) return false
    if (this.#signed.has(entry.peerId)) return false
    this.#unsigned.set(entry.peerId, entry)
    this.#changed()
    return true
  }

  removeUnsigned(peerId: string): boolean {
    const removed = this.#unsigned.delete(peerId)
    if (removed) this.#changed()
    return removed
  }

  clearUnsigned(): void {
    if (this.#unsigned.size === 0) return
    this.#unsigned.clear()
    this.#changed()
  }

  /**
   * Applies a verified departure: removes the peer if the departure covers the version we hold and
   * keeps it as a tombstone. Returns 'removed' when a known peer was removed, 'known' when this
   * departure (or a later one of the peer) was applied before, else 'ignored' (stale: we hold a newer
   * entry; or a peer we never held).
   */
  depart(departure: Departure, now: number): 'removed' | 'known' | 'ignored' {
    const { peerId, lastVersion } = departure
    const known = this.#signed.get(peerId)
    if (known && compareVersions(lastVersion, known.entry.version) < 0) return 'ignored'
    const tomb = this.#departed.get(peerId)
    // Tombstones of peers we never held are kept only while there is room: departures signed by
    // fresh keys are free to mint, and must not grow memory without bound.
    const room = known !== undefined || this.#departed.size < this.#limits.maxPeers
    if (tomb ? compareVersions(lastVersion, tomb.departure.lastVersion) > 0 : room) {
      this.#departed.set(peerId, { departure, at: now })
    }
    if (!known) {
      return tomb && compareVersions(lastVersion, tomb.departure.lastVersion) <= 0 ? 'known' : 'ignored'
    }
    this.#signed.delete(peerId)
    this.#admission.forget(peerId)
    this.#changed()
    return 'removed'
  }

  /** Departures still inside the purge window, to pass on in catalog syncs. */
  syncDepartures(): Departure[] {
    return [...this.#departed.values()].map((d) => d.departure)
  }

  /** Drops entries not refreshed within the purge window; returns the purged ids. */
  purge(now: number): string[] {
    const purged: string[] = []
    const cutoff = now - this.#limits.purgeAfterMs
    for (const [id, s] of this.#signed) {
      if (s.entry.updatedAt < cutoff) {
        this.#signed.delete(id)
        this.#admission.forget(id)
        purged.push(id)
      }
    }
    for (const [id, e] of this.#unsigned) if (e.updatedAt < cutoff) this.#unsigned.delete(id)
    for (const [id, d] of this.#departed)
      if (now - d.at >= this.#limits.purgeAfterMs) this.#departed.delete(id)
    if (purged.length > 0) this.#changed()
    return purged
  }

  /** When the next entry expires (ms since epoch), or undefined when there is none. */
  nextExpiry(): number | undefined {
    let soonest: number | undefined
    for (const s of this.#signed.values()) {
      const at = s.entry.updatedAt + this.#limits.purgeAfterMs
      if (soonest === undefined || at < soonest) soonest = at
    }
    return soonest
  }

  /** Signed entries to hand to a peer in a catalog sync: fresh ones, ours first. */
  syncSnapshot(now: number): SignedPeerEntry[] {
    const cutoff = now - this.#limits.purgeAfterMs
    const direct = [this.#local]
    const relayed: SignedPeerEntry[] = []
    for (const s of this.#signed.values()) {
      if (s.entry.updatedAt < cutoff) continue
      ;(this.#admission.isDirect(s.entry.peerId) ? direct : relayed).push(s)
    }
    // Entries of peers seen connected first, so a snapshot cut at the sync byte limit keeps those.
    return direct.concat(relayed)
  }

  /** Called when RTT estimates change, so snapshots show fresh values. */
  rttChanged(): void {
    this.#changed()
  }

  /** An immutable view; reused until something changes. */
  snapshot(now: number): Catalog {
    // Cached until the next change; the purge timer counts as a change, so staleness stays exact.
    if (this.#snapshot) return this.#snapshot
    const cutoff = now - this.#limits.purgeAfterMs
    const rttOf = (id: string) => this.#rtt.get(id)?.srtt
    const signed = [...this.#signed.values()]
      .filter((s) => s.entry.updatedAt >= cutoff)
      .map((s) => toPeerInfo(s.entry, true, rttOf(s.entry.peerId)))
    const unsigned = [...this.#unsigned.values()]
      .filter((e) => e.updatedAt >= cutoff)
      .map((e) => toPeerInfo(e, false, rttOf(e.peerId)))
    const local = toPeerInfo(this.#local.entry, true, undefined)
    this.#snapshot = new Catalog(local, signed, unsigned, this.#limits.maxRttMs, now)
    return this.#snapshot
  }

  #changed(): void {
    this.#snapshot = undefined
  }
}

const byId = (a: PeerInfo, b: PeerInfo) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

/**
 * An immutable snapshot of the catalog. `peers()` excludes this node, stale entries and (when
 * `maxRttMs` is set) peers measured slower than it; peers with unknown RTT are admitted.
 */
export class Catalog {
  /** This node's own entry. */
  readonly local: PeerInfo
  /** When the snapshot was taken, in ms since the epoch. */
  readonly takenAt: number
  readonly #signed: readonly PeerInfo[]
  readonly #unsigned: readonly PeerInfo[]
  readonly #byId: Map<string, PeerInfo>
  readonly #maxRttMs: number | undefined

  constructor(
    local: PeerInfo,
    signed: PeerInfo[],
    unsigned: PeerInfo[],
    maxRttMs: number | undefined,
    takenAt: number,
  ) {
    this.local = local
    this.takenAt = takenAt
    this.#maxRttMs = maxRttMs
    const admitted = (p: PeerInfo) => maxRttMs === undefined || rttBelow(p, maxRttMs)
    this.#signed = signed.filter(admitted).sort(byId)
    this.#unsigned = unsigned.filter(admitted).sort(byId)
    this.#byId = new Map()
    for (const p of this.#unsigned) this.#byId.set(p.id, p)
    for (const p of this.#signed) this.#byId.set(p.id, p)
  }

  /** Signed peers then unsigned ones, each ordered by id; never this node. */
  peers(): PeerInfo[] {
    return [...this.#signed, ...this.#unsigned]
  }

  /** Peers known from their signed entries, ordered by id; never this node. */
  signedPeers(): readonly PeerInfo[] {
    return this.#signed
  }

  /** Peers inserted locally without a signature (`discovery.insert`), ordered by id. */
  unsignedPeers(): readonly PeerInfo[] {
    return this.#unsigned
  }

  /** The peer with this id, signed or not, if the snapshot admits it. */
  get(peerId: string): PeerInfo | undefined {
    return this.#byId.get(peerId)
  }

  /** The peer with this id, only if its entry is signed. */
  getSigned(peerId: string): PeerInfo | undefined {
    const p = this.#byId.get(peerId)
    return p?.signed ? p : undefined
  }

  /** Whether the snapshot admits a peer with this id. */
  has(peerId: string): boolean {
    return this.#byId.has(peerId)
  }

  /** Number of peers, not counting this node. */
  get size(): number {
    return this.#byId.size
  }

  /** Number of signed peers, not counting this node. */
  get signedCount(): number {
    return this.#signed.length
  }

  /** The RTT bound this snapshot was filtered with, if any. */
  get maxRttMs(): number | undefined {
    return this.#maxRttMs
  }
}

import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { MosaikError } from '../primitives/errors.ts'
import { hostKey } from '../transport/hosts.ts'
import { peerIdOf } from '../transport/peer-ids.ts'
import type { Provenance } from './admission.ts'
import type { RejectReason, UpsertResult } from './catalog.ts'
import { type Departure, departureFromWire, verifyDeparture } from './departure.ts'
import {
  EntryLimitError,
  SignedPeerEntry,
  UnsupportedEntryVersionError,
  type UnverifiedEntry,
} from './entry.ts'
import type { DiscoveryState } from './state.ts'

/** A departure that removed a peer here, and how it came. */
export interface DepartureApplied {
  /** Its wire form, to pass on as it is. */
  readonly wire: unknown
  /** The peer that departed. */
  readonly peerId: string
  /** The peer it came from (the departed peer itself when it was pushed by it). */
  readonly from: string
  /** Whether it came by gossip (else by a catalog sync or a push). */
  readonly gossip: boolean
}

/**
 * Ingestion: how entries and departures from the wire (gossip, catalog syncs, pings) or from the
 * application get into the catalog. Everything is checked before it is applied, refusals are
 * counted and reported, and what a departed, purged or evicted peer left behind is forgotten.
 */
export class Ingestion {
  readonly #state: DiscoveryState
  /** Called when a new peer entered the catalog (neighbour maintenance may want to dial it). */
  readonly #onInserted: () => void
  /** Called when a departure removed a peer: discovery passes it on where gossip may not reach. */
  readonly #onDeparted: (departure: DepartureApplied) => void
  readonly #updateBuckets = new Map<string, { tokens: number; at: number }>()
  #cancelPurge: () => void = () => {}

  constructor(
    state: DiscoveryState,
    hooks: { onInserted: () => void; onDeparted: (departure: DepartureApplied) => void },
  ) {
    this.#state = state
    this.#onInserted = hooks.onInserted
    this.#onDeparted = hooks.onDeparted
  }

  /**
   * Takes an entry from the wire: cheap checks first (most entries in a sync are ones we already
   * hold, and admission refuses over-quota ones whatever their signature), then the signature, then
   * the catalog rules. Refusals are counted; with `strict` (catalog syncs) an entry over the entry
   * limits throws EntryLimitError, so the sync is closed with FrameTooLarge.
   */
  async entry(wire: unknown, gossip: boolean, from: string, strict: boolean): Promise<UpsertResult> {
    const { ctx, store, entryLimits } = this.#state
    let unverified: UnverifiedEntry
    try {
      unverified = SignedPeerEntry.parse(wire, entryLimits)
    } catch (err) {
      const reason = rejectReasonOf(err)
      this.reject(reason, from, err instanceof EntryLimitError ? err.peerId : undefined)
      if (strict && err instanceof EntryLimitError) throw err
      return { status: 'rejected', reason }
    }
    const { entry, bytes, signature } = unverified
    const provenance = this.provenance(entry.peerId, from)
    const pre = store.precheck(entry, bytes, signature, ctx.now(), gossip, provenance)
    if (pre === 'unchanged') return { status: 'unchanged' }
    if (pre) {
      if (pre !== 'local') this.reject(pre, from, entry.peerId)
      return { status: 'rejected', reason: pre }
    }
    let signed: SignedPeerEntry
    try {
      signed = await unverified.verify()
    } catch (err) {
      const reason = rejectReasonOf(err)
      this.reject(reason, from, entry.peerId)
      return { status: 'rejected', reason }
    }
    if (gossip && !this.#allowUpdate(entry.peerId)) {
      this.reject('rate-limited', from, entry.peerId)
      return { status: 'rejected', reason: 'rate-limited' }
    }
    return this.accept(signed, gossip, provenance, from)
  }

  /** Applies a verified entry to the catalog and emits what changed. */
  accept(signed: SignedPeerEntry, gossip: boolean, provenance: Provenance, from?: string): UpsertResult {
    const { ctx, store, stats, events } = this.#state
    const result = store.upsertSigned(signed, ctx.now(), gossip, provenance)
    if (result.status === 'rejected') {
      // Our own entry coming back through gossip or a sync is normal, not an attack.
      if (result.reason !== 'local') this.reject(result.reason, from, signed.entry.peerId)
      return result
    }
    if (result.status === 'unchanged') return result
    stats.entriesAccepted++
    const evicted = result.status === 'inserted' ? result.evicted : undefined
    if (evicted) this.forget(evicted)
    this.#onCatalogChanged()
    if (result.status === 'inserted') this.#onInserted()
    if (evicted) events.emit('peer:departed', { id: evicted, reason: 'evicted' })
    events.emit(result.status === 'inserted' ? 'peer:discovered' : 'peer:updated', result.info)
    return result
  }

  /**
   * Takes a departure from gossip (which must be fresh) or from a sync (which may be as old as the
   * purge window): verified, then applied. Returns 'applied' when it removed a peer, 'known' when it
   * was applied before (the same departure came another way), 'rejected' for invalid input.
   */
  async departure(
    wire: unknown,
    gossip: boolean,
    from: string,
  ): Promise<'applied' | 'known' | 'ignored' | 'rejected'> {
    const { ctx, config, store, stats, events } = this.#state
    let d: Departure
    try {
      d = departureFromWire(wire)
    } catch {
      this.reject('malformed', from)
      return 'rejected'
    }
    const now = ctx.now()
    if (!d.network.equals(ctx.networkId)) {
      this.reject('different-network', from, d.peerId)
      return 'rejected'
    }
    const age = now - d.timestamp
    const maxAge = gossip ? config.maxTimeDriftMs : config.purgeAfterMs
    if (age < -config.maxTimeDriftMs || age > maxAge) {
      this.reject('clock-drift', from, d.peerId)
      return 'ignored'
    }
    try {
      if (!(await verifyDeparture(d))) {
        this.reject('invalid-signature', from, d.peerId)
        return 'rejected'
      }
    } catch (err) {
      this.reject(rejectReasonOf(err), from, d.peerId)
      return 'rejected'
    }
    const outcome = store.depart(d, now)
    if (outcome !== 'removed') return outcome
    stats.departuresSeen++
    this.forget(d.peerId)
    this.#onCatalogChanged()
    events.emit('peer:departed', { id: d.peerId, reason: 'departed' })
    this.#onDeparted({ wire, peerId: d.peerId, from, gossip })
    return 'applied'
  }

  /** Counts and reports refused input; tells gossipsub whether to penalize the sender. */
  reject(reason: RejectReason, from?: string, peer?: string): TopicValidatorResult {
    const { stats, log, events } = this.#state
    stats.rejected[reason] = (stats.rejected[reason] ?? 0) + 1
    log('rejected input from %s: %s', from ?? 'local', reason)
    events.emit('rejected', { reason, from, peer })
    return isPenalized(reason) ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
  }

  // ---- provenance ------------------------------------------------------------------------------

  /**
   * Where an entry of `peerId` came from, for admission: direct when `from` is the peer itself or we
   * are connected to it; charged to the host of the connection it came through.
   */
  provenance(peerId: string, from: string | undefined): Provenance {
    const direct = from === peerId || this.#state.ctx.isConnected(peerId)
    const via = direct ? peerId : from
    if (via === undefined) return { direct, group: 'local' }
    return { direct, group: this.#groupOf(via) }
  }

  /** `host:<ip>` of a connection to `peerId`, or `peer:<id>` when it has none with an IP. */
  #groupOf(peerId: string): string {
    try {
      for (const c of this.#state.ctx.libp2p.getConnections(peerIdOf(peerId))) {
        const host = hostKey(c.remoteAddr)
        if (host) return host
      }
    } catch {}
    return `peer:${peerId}`
  }

  /** A token bucket per peer, so one peer cannot flood the catalog with versions of its entry. */
  #allowUpdate(peerId: string): boolean {
    const rate = this.#state.config.maxUpdatesPerSecond
    const now = this.#state.ctx.clock.now()
    const bucket = this.#updateBuckets.get(peerId) ?? { tokens: rate * 2, at: now }
    bucket.tokens = Math.min(rate * 2, bucket.tokens + ((now - bucket.at) / 1000) * rate)
    bucket.at = now
    this.#updateBuckets.set(peerId, bucket)
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  // ---- forgetting ------------------------------------------------------------------------------

  /**
   * Drops what we kept about a peer that left, libp2p's peer store included (unless it is still
   * connected, or known from a local entry), so churn does not grow memory.
   */
  forget(peerId: string): void {
    this.#state.rtt.remove(peerId)
    this.#state.synced.delete(peerId)
    this.#updateBuckets.delete(peerId)
    this.forgetPeerStore(peerId)
  }

  forgetPeerStore(peerId: string): void {
    const { ctx, store } = this.#state
    if (peerId === ctx.peerId || ctx.isConnected(peerId) || store.holds(peerId)) return
    let id: PeerId
    try {
      id = peerIdOf(peerId)
    } catch {
      return
    }
    ctx.forgetTaught(peerId)
    ctx.libp2p.peerStore.delete(id).catch(() => {})
  }

  #onCatalogChanged(): void {
    this.#state.changed()
    this.#armPurge()
  }

  /** Keeps one timer at the soonest expiry among signed entries. */
  #armPurge(): void {
    const { ctx, scope, store, events } = this.#state
    this.#cancelPurge()
    const next = store.nextExpiry()
    if (next === undefined) return
    const wait = Math.max(0, next - ctx.now()) + 1
    this.#cancelPurge = scope.setTimeout(() => {
      const purged = store.purge(ctx.now())
      for (const id of purged) {
        this.forget(id)
        events.emit('peer:departed', { id, reason: 'purged' })
      }
      if (purged.length > 0) this.#state.changed()
      this.#armPurge()
    }, wait)
  }

  /** Stops the purge timer (discovery is stopping). */
  stop(): void {
    this.#cancelPurge()
  }
}

function rejectReasonOf(err: unknown): RejectReason {
  if (err instanceof EntryLimitError) return 'oversized'
  if (err instanceof UnsupportedEntryVersionError) return 'unsupported-version'
  if (err instanceof MosaikError && err.code === 'INVALID_SIGNATURE') return 'invalid-signature'
  return 'malformed'
}

/** Reasons that mean the sender misbehaved, as opposed to sending something merely old. */
export function isPenalized(reason: RejectReason): boolean {
  return (
    reason === 'malformed' ||
    reason === 'oversized' ||
    reason === 'invalid-signature' ||
    reason === 'different-network' ||
    reason === 'unsupported-version'
  )
}

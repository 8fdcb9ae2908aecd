import { type AbortOptions, deadline as deadlineOf, linkSignals, raceSignal } from '../primitives/abort.ts'
import { equalBytes } from '../primitives/bytes.ts'
import { DecodeError, MosaikError } from '../primitives/errors.ts'
import { peerOfAddress } from '../transport/addresses.ts'
import { CloseCode } from '../transport/close.ts'
import { InboundLimit } from '../transport/limits.ts'
import type { Link } from '../transport/link.ts'
import { departureToWire } from './departure.ts'
import { SignedPeerEntry } from './entry.ts'
import type { Ingestion } from './ingest.ts'
import {
  closeCodeOf,
  PINGS_PER_HOST,
  PINGS_PER_PEER,
  PINGS_TOTAL,
  pingClientLinkOptions,
  pingServerLinkOptions,
  SYNCS_PER_HOST,
  SYNCS_PER_PEER,
  SYNCS_TOTAL,
  serveExchange,
  syncLinkOptions,
} from './limits.ts'
import type { DiscoveryState } from './state.ts'
import { DISCOVERY_WIRE_VERSION, receiveSnapshot, SyncError, sendSnapshot } from './sync.ts'

/**
 * The request/response side of discovery: full catalog syncs (the wire protocol is in sync.ts) and
 * pings, both as the dialing and as the answering side, each answered within the request timeout and
 * under per-peer, per-host and total concurrency limits.
 */
export class CatalogExchange {
  readonly #state: DiscoveryState
  readonly #ingestion: Ingestion
  readonly #syncProtocol: string
  readonly #pingProtocol: string
  readonly #syncs = new InboundLimit({ perPeer: SYNCS_PER_PEER, perHost: SYNCS_PER_HOST, total: SYNCS_TOTAL })
  readonly #pings = new InboundLimit({ perPeer: PINGS_PER_PEER, perHost: PINGS_PER_HOST, total: PINGS_TOTAL })

  constructor(state: DiscoveryState, ingestion: Ingestion) {
    this.#state = state
    this.#ingestion = ingestion
    this.#syncProtocol = state.ctx.protocol('discovery/sync/1')
    this.#pingProtocol = state.ctx.protocol('discovery/ping/1')
  }

  /** Answers catalog syncs and pings. */
  async start(): Promise<void> {
    const { ctx, config } = this.#state
    // libp2p's per-connection stream limits are a backstop; the handlers' own limits come first and
    // answer with TooManyStreams.
    await ctx.handle(this.#syncProtocol, (link) => this.#acceptSync(link), {
      maxInboundStreams: SYNCS_PER_PEER + 4,
      link: this.#syncLink(),
    })
    await ctx.handle(this.#pingProtocol, (link) => this.#acceptPing(link), {
      maxInboundStreams: PINGS_PER_PEER + 4,
      link: pingServerLinkOptions(config.maxEntryBytes),
    })
  }

  // ---- dialing side ----------------------------------------------------------------------------

  /** A full, bidirectional catalog exchange with one peer (see Discovery.syncWith). */
  async syncWith(peer: string, options: AbortOptions = {}): Promise<void> {
    const { ctx, config, scope, stats, synced } = this.#state
    const deadline = deadlineOf(config.requestTimeoutMs, scope)
    const linked = linkSignals(options.signal, scope.signal, deadline.signal)
    const signal = linked.signal
    stats.syncsInitiated++
    let link: Link | undefined
    // Mark the peer before dialing, so the new connection does not trigger a second, redundant sync.
    const target = peerOfAddress(peer)
    if (target) synced.add(target)
    try {
      link = await ctx.openLink(peer, this.#syncProtocol, { signal, link: this.#syncLink() })
      synced.add(link.remotePeer)
      await this.#sendSnapshot(link, signal)
      await this.#receiveSnapshot(link, signal)
      await link.close(CloseCode.Success)
    } catch (err) {
      stats.syncsFailed++
      // The remote learns why; the close frame flushes in the background, the caller does not wait.
      if (link) link.beginClose(...closeCodeOf(err, deadline.signal, scope.signal))
      throw err instanceof MosaikError ? err : new SyncError(peer, err as Error)
    } finally {
      linked.clear()
      deadline.clear()
    }
  }

  /** Pings a peer: measures the round trip and refreshes its entry from the reply (see Discovery.ping). */
  async ping(peerId: string, options: AbortOptions = {}): Promise<number> {
    const { ctx, config, scope, stats, store, rtt: rtts, entryLimits } = this.#state
    const deadline = deadlineOf(config.requestTimeoutMs, scope)
    const linked = linkSignals(options.signal, scope.signal, deadline.signal)
    const signal = linked.signal
    let link: Link | undefined
    try {
      link = await ctx.openLink(peerId, this.#pingProtocol, {
        signal,
        link: pingClientLinkOptions(config.maxEntryBytes),
      })
      const started = ctx.clock.now()
      await link.send([DISCOVERY_WIRE_VERSION, ctx.networkId.bytes], { signal })
      const reply = await link.recv({ signal })
      const rtt = ctx.clock.now() - started
      const signed = await SignedPeerEntry.fromWire(reply, entryLimits)
      if (signed.entry.peerId !== link.remotePeer) {
        throw new DecodeError('ping reply carries another peer entry')
      }
      // Only a reply that is the peer's own entry completes a ping: a bad one measures nothing.
      stats.pings++
      rtts.record(link.remotePeer, rtt)
      store.rttChanged()
      this.#ingestion.accept(signed, false, this.#ingestion.provenance(link.remotePeer, link.remotePeer))
      this.#state.changed()
      await link.close(CloseCode.Success)
      return rtt
    } catch (err) {
      link?.beginClose(...closeCodeOf(err, deadline.signal, scope.signal))
      throw err
    } finally {
      linked.clear()
      deadline.clear()
    }
  }

  /** Hands our departure to one peer over a catalog sync that carries nothing else. */
  async pushDeparture(peer: string, departure: unknown, timeoutMs: number): Promise<void> {
    const { ctx, scope } = this.#state
    const deadline = deadlineOf(timeoutMs, scope)
    const linked = linkSignals(deadline.signal, scope.signal)
    const signal = linked.signal
    let link: Link | undefined
    try {
      link = await ctx.openLink(peer, this.#syncProtocol, { signal, link: this.#syncLink() })
      await link.send([DISCOVERY_WIRE_VERSION, ctx.networkId.bytes, 0, 1], { signal })
      await link.send([departure], { signal })
      // The peer answers with its catalog; take it, then close cleanly.
      await this.#receiveSnapshot(link, signal)
      await link.close(CloseCode.Success)
    } catch (err) {
      // Best effort: gossip and the peers' purge carry the departure where a push fails.
      this.#state.log('departure push to %s failed: %s', peer, (err as Error).message)
      link?.abort('departure push failed')
    } finally {
      linked.clear()
      deadline.clear()
    }
  }

  // ---- snapshots -------------------------------------------------------------------------------

  #syncLink() {
    return syncLinkOptions(this.#state.config.maxEntryBytes, this.#state.config.maxSyncBytes)
  }

  /**
   * Sends every fresh signed entry (ours and those of peers seen connected first) and departure; or,
   * `empty`, a snapshot of nothing.
   */
  #sendSnapshot(link: Link, signal: AbortSignal, empty = false): Promise<void> {
    const { ctx, config, store } = this.#state
    const snapshot = empty
      ? { entries: [], departures: [] }
      : {
          entries: store.syncSnapshot(ctx.now()).map((e) => e.toWire()),
          departures: store.syncDepartures().map(departureToWire),
        }
    return sendSnapshot(link, ctx.networkId, snapshot, config.maxSyncBytes, signal)
  }

  #receiveSnapshot(link: Link, signal: AbortSignal): Promise<{ entries: number; departures: number }> {
    const from = link.remotePeer
    const ingestion = this.#ingestion
    // The count is bounded so a peer cannot announce work without end; the bytes are bounded by the
    // link (maxSyncBytes), and admission refuses over-quota entries before their signatures.
    const maxItems = 4 * this.#state.config.maxPeers + 16
    return receiveSnapshot(
      link,
      { network: this.#state.ctx.networkId, maxItems, signal },
      {
        entry: (wire) => ingestion.entry(wire, false, from, true),
        departure: (wire) => ingestion.departure(wire, false, from),
        differentNetwork: () => ingestion.reject('different-network', from),
      },
    )
  }

  // ---- answering side --------------------------------------------------------------------------

  #acceptSync(link: Link): Promise<void> {
    const { config, scope, stats, synced } = this.#state
    const options = {
      limit: this.#syncs,
      deadlineMs: config.requestTimeoutMs,
      signal: scope.signal,
      timers: scope,
    }
    return serveExchange(link, options, async (signal) => {
      stats.syncsAccepted++
      synced.add(link.remotePeer)
      const received = await this.#receiveSnapshot(link, signal)
      // A departure pushed to us (departures and no entry: a sync always carries the sender's own
      // entry) wants no catalog back: the empty answer saves encoding ours for a node that is leaving,
      // once per peer it was connected to.
      const pushed = received.entries === 0 && received.departures > 0
      await this.#sendSnapshot(link, signal, pushed)
      // The initiator closes once it has merged our snapshot, within the same deadline.
      await raceSignal(link.closed, signal)
    })
  }

  #acceptPing(link: Link): Promise<void> {
    const { ctx, config, scope, store } = this.#state
    const options = {
      limit: this.#pings,
      deadlineMs: config.requestTimeoutMs,
      signal: scope.signal,
      timers: scope,
    }
    return serveExchange(link, options, async (signal) => {
      const hello = await link.recv({ signal })
      if (!Array.isArray(hello) || hello.length !== 2) {
        await link.close(CloseCode.ProtocolViolation, 'malformed ping')
        return
      }
      if (hello[0] !== DISCOVERY_WIRE_VERSION) {
        await link.close(CloseCode.UnsupportedVersion, 'ping version')
        return
      }
      if (!(hello[1] instanceof Uint8Array) || !equalBytes(hello[1], ctx.networkId.bytes)) {
        await link.close(CloseCode.DifferentNetwork, 'different network')
        return
      }
      await link.send(store.local.toWire(), { signal })
      await raceSignal(link.closed, signal)
    })
  }
}

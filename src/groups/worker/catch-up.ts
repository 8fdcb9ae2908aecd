import { linkSignals, raceSignal } from '../../primitives/abort.ts'
import { equalBytes, randomBytes, toHex } from '../../primitives/bytes.ts'
import { encodeCanonical } from '../../primitives/codec.ts'
import { DecodeError } from '../../primitives/errors.ts'
import { sha256 } from '../../primitives/sha256.ts'
import { Watch } from '../../primitives/watch.ts'
import { BondMsg, Refusal, RequestRefusedError } from '../bond.ts'
import { isBounded, parseEntry } from '../raft/messages.ts'
import type { Entry, SnapshotMeta } from '../raft/types.ts'
import { notLeader, Req, type WorkerHost } from './host.ts'
import { hedged, SNAPSHOT_CHUNK, SnapshotDownload } from './snapshot-download.ts'

/** The most entries one fetch asks for (and one member serves). */
const CATCH_UP_BATCH = 2000
/** The most command bytes one fetch is answered with, beyond its first entry: a frame holds 4 MiB. */
export const CATCH_UP_BYTES = 1024 * 1024

/**
 * Catch-up a member serves to one other at a time: answers read from the store at once, and bytes
 * waiting on the bond for that member's credit. An honest member asks one member for one window of
 * entries and a few chunks at a time, and reads what it asked for; one that asks faster than it reads
 * would otherwise make this member hold answers of up to 1 MiB each without bound. A member refused
 * (BUSY) asks again a heartbeat later, a few times, before it gives up on that member for the round.
 */
const SERVING_PER_MEMBER = 4
const BACKLOG_BYTES_PER_MEMBER = 8 * CATCH_UP_BYTES
const BUSY_RETRIES = 5

/**
 * What members offering one snapshot agree on, and what the fetched bytes are checked against:
 * SHA-256, native where the platform offers it (BLAKE3 in JavaScript took longer than the transfer).
 */
const snapshotHash = (data: Uint8Array): Uint8Array => sha256(data)

interface ServedSnapshot {
  meta: SnapshotMeta
  data: Uint8Array
  hash: Uint8Array
  expires: number
}

interface SnapshotOffer {
  peer: string
  meta: SnapshotMeta
  size: number
  hash: Uint8Array
}

/** A snapshot fetch under way: from whom, the offers so far, and how to abandon it. */
interface SnapshotFetch {
  leader: string
  index: number
  offers: Map<string, SnapshotOffer>
  offerCount: Watch<number>
  abandon: AbortController
  /** Once the fetch knows what it fetches: fetches chunks from a member that offers it too. */
  join?: (offer: SnapshotOffer) => void
}

/** What catch-up needs from the worker beyond the shared host. */
export interface CatchUpHost extends WorkerHost {
  /** The state machine's snapshot now (at the applied index). */
  snapshotState(): Uint8Array
  /** Proposes an internal command (as leader); resolves with its index. */
  proposeInternal(payload: Uint8Array): Promise<number>
  /**
   * Offers a verified snapshot to the core, once no Ready is being handled; true when it accepted it
   * (the worker then installs it in the store and the state machine in its next Ready, before anything
   * that follows).
   */
  offerSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<boolean>
}

/**
 * Bringing a member that is far behind up to date, and helping others do so. Committed entries are
 * pulled from several members of the same cluster in parallel; when they compacted what is needed,
 * the leader has every member snapshot at one index and the chunks are fetched from all of them and
 * checked against the hash before the core is offered the snapshot.
 */
export class CatchUp {
  readonly #host: CatchUpHost
  #running = false
  #fetch: SnapshotFetch | undefined
  readonly #served = new Map<number, ServedSnapshot>()
  /** Hashes of snapshot bytes offered: the state machine hands out the same bytes while its state holds. */
  readonly #hashes = new WeakMap<Uint8Array, Uint8Array>()
  #sweepArmed = false
  /** As leader: when each member last had a snapshot marker proposed for it. */
  readonly #markedFor = new Map<string, number>()
  /** Entries answers each member has being read from the store here. */
  readonly #serving = new Map<string, number>()

  constructor(host: CatchUpHost) {
    this.#host = host
  }

  /** Pulls committed entries `from ..= to` from several members and feeds them to the core in order. */
  async pull(from: number, to: number): Promise<void> {
    if (this.#running) return
    this.#running = true
    const host = this.#host
    try {
      let next = from
      // A gap wider than the compaction interval reaches below what members keep (each compacts every
      // `snapshotEvery` entries): ask for a snapshot at once, not after a fetch round that says so.
      // A member configured otherwise only makes this cost a snapshot where entries would have done.
      if (to - from >= host.config.snapshotEvery && (await this.fetchSnapshot(from))) {
        next = host.node.status().commitIndex + 1
      }
      while (next <= to && !host.closedOrHalted()) {
        const round = await this.#pullRound(next, to)
        if (round === undefined) return
        if (round.next > next) {
          next = round.next
          continue
        }
        // The members compacted what we need: take a snapshot instead, then pull what follows it.
        if (!round.compacted || !(await this.fetchSnapshot(next))) return
        next = host.node.status().commitIndex + 1
      }
    } catch (err) {
      host.log('catch-up stopped: %s', (err as Error).message)
    } finally {
      this.#running = false
    }
  }

  /**
   * One round of a pull: consecutive windows of entries from `next` on, one per bonded member (the
   * leader's last, as it is the busiest), the gap split evenly among them up to CATCH_UP_BATCH each,
   * fed to the core in order until one falls short. Says how far the core got and whether a member had
   * compacted past its window; undefined when the pull must stop (no cluster yet, no member, or this
   * member left the cluster or stopped meanwhile).
   */
  async #pullRound(next: number, to: number): Promise<{ next: number; compacted: boolean } | undefined> {
    const host = this.#host
    const { clusterId, leader } = host.node.status()
    if (clusterId === undefined) return undefined
    const peers = [...host.transport.bonds.value.keys()]
    peers.sort((a, b) => Number(a === leader) - Number(b === leader))
    if (peers.length === 0) return undefined
    let compacted = false
    const size = Math.min(CATCH_UP_BATCH, Math.ceil((to - next + 1) / peers.length))
    const windows = peers.map(async (peer, i) => {
      const start = next + i * size
      if (start > to) return [] as Entry[]
      const window = await this.#fetchWindow(peer, start, Math.min(to, start + size - 1), clusterId)
      if (window.firstKept > start) compacted = true
      return window.entries
    })
    for (const w of windows) {
      const entries = await w
      if (host.closedOrHalted() || host.node.status().clusterId !== clusterId) return undefined
      if (entries.length === 0 || entries[0]!.index !== next) break
      host.node.appendCommitted(entries, host.rt.now())
      next = entries[entries.length - 1]!.index + 1
      host.stats.entriesPulled += entries.length
      host.kick()
    }
    return { next, compacted }
  }

  /** Committed entries `start ..= end` from `peer`, with the first index it still keeps; none on failure. */
  async #fetchWindow(
    peer: string,
    start: number,
    end: number,
    clusterId: string,
  ): Promise<{ entries: Entry[]; firstKept: number }> {
    const none = { entries: [], firstKept: start }
    let r: unknown
    try {
      r = await this.#ask(
        peer,
        Req.FetchEntries,
        [start, end, clusterId],
        this.#host.config.catchUpFetchTimeoutMs,
        this.#host.stopped,
      )
    } catch {
      return none
    }
    if (!Array.isArray(r) || r.length !== 2 || !Array.isArray(r[1])) return none
    const firstKept = typeof r[0] === 'number' ? r[0] : start
    try {
      return { entries: r[1].map(parseEntry), firstKept }
    } catch {
      return { entries: [], firstKept }
    }
  }

  /** Serves committed entries to a member of the same cluster (from the store, at or below its commit). */
  async serveEntries(peer: string, body: unknown): Promise<[number, unknown[]]> {
    if (
      !Array.isArray(body) ||
      body.length !== 3 ||
      !isBounded(body[0]) ||
      !isBounded(body[1]) ||
      typeof body[2] !== 'string'
    ) {
      throw new DecodeError('malformed fetch')
    }
    const [from, upTo, clusterId] = body as [number, number, string]
    const host = this.#host
    // Entries of another cluster would corrupt the requester's log: refuse.
    if (host.node.status().clusterId !== clusterId)
      throw new RequestRefusedError(Refusal.OtherCluster, 'another cluster')
    // Only entries the store holds as committed are safe to hand to a peer that appends them blindly.
    // The answer says where this member's log starts, so a requester behind it takes a snapshot.
    const committed = host.store.hardState().commit
    const to = Math.min(upTo, committed, from + CATCH_UP_BATCH - 1)
    const first = host.store.firstIndex()
    if (to < from || from < first) return [first, []]
    const serving = this.#serving.get(peer) ?? 0
    this.#admit(peer, serving)
    this.#serving.set(peer, serving + 1)
    try {
      return [first, await host.store.entries(from, to, { maxBytes: CATCH_UP_BYTES })]
    } finally {
      const left = (this.#serving.get(peer) ?? 1) - 1
      if (left > 0) this.#serving.set(peer, left)
      else this.#serving.delete(peer)
    }
  }

  /** Refuses (BUSY) catch-up for `peer` while it has its share under way here (see SERVING_PER_MEMBER). */
  #admit(peer: string, serving: number): void {
    const backlog = this.#host.transport.backlog(peer)
    if (serving >= SERVING_PER_MEMBER || backlog >= BACKLOG_BYTES_PER_MEMBER) {
      this.#host.stats.catchUpRefused++
      throw new RequestRefusedError(
        Refusal.Busy,
        `${serving} catch-up answers of this member are being read and ${backlog} bytes wait to be sent to it`,
      )
    }
  }

  /**
   * As leader: a member is too far behind for the log; have every member snapshot at one index. But
   * a voter gets the snapshot the leader's store holds, offered at once: the marker could only commit
   * with the quorum, which may be waiting for that very voter (two voters, or one other down).
   */
  async requestSnapshot(peer: string): Promise<number> {
    const host = this.#host
    const status = host.node.status()
    if (status.role !== 'leader') throw notLeader()
    // Every marker is a log entry and a snapshot held by every member: a member asks again only after
    // a failed try and an election timeout (installSnapshot), so more often than half of one is refused.
    const now = host.rt.now()
    const last = this.#markedFor.get(peer)
    if (last !== undefined && now - last < host.config.electionTimeoutMs / 2) {
      throw new RequestRefusedError(Refusal.TooSoon, 'a snapshot was requested for this member moments ago')
    }
    this.#markedFor.set(peer, now)
    if (this.#markedFor.size > 1024) {
      for (const [p, at] of this.#markedFor)
        if (now - at >= host.config.electionTimeoutMs) this.#markedFor.delete(p)
    }
    if (status.voters.includes(peer)) {
      const stored = await host.store.readSnapshot()
      if (stored?.data !== undefined) {
        this.#offer(peer, stored.meta, stored.data)
        return stored.meta.index
      }
    }
    return host.proposeInternal(encodeCanonical(['snapshot', peer, toHex(randomBytes(8))]))
  }

  /**
   * Applying the snapshot marker: take a snapshot here and offer it to the member that asked. Not
   * when this member is not bonded with it: the offer could not reach it, and the snapshot would be
   * held for nothing.
   */
  onSnapshotMarker(index: number, requester: string): void {
    const host = this.#host
    if (requester === host.id || !host.transport.bonds.value.has(requester)) return
    this.#offer(requester, host.node.snapshotMeta(index), host.snapshotState())
  }

  #offer(requester: string, meta: SnapshotMeta, data: Uint8Array): void {
    const host = this.#host
    let hash = this.#hashes.get(data)
    if (hash === undefined) {
      hash = snapshotHash(data)
      this.#hashes.set(data, hash)
    }
    this.#served.set(meta.index, { meta, data, hash, expires: host.rt.now() + host.config.snapshotTtlMs })
    host.stats.snapshotsHeld = this.#served.size
    this.#armSweep()
    host.stats.snapshotsServed++
    host.transport.send(requester, BondMsg.SnapshotOffer, [meta, data.length, hash])
  }

  serveChunk(peer: string, body: unknown): Uint8Array {
    if (!Array.isArray(body) || body.length !== 3 || !body.every((n) => isBounded(n))) {
      throw new DecodeError('malformed snapshot fetch')
    }
    const [index, offset, length] = body as [number, number, number]
    const served = this.#served.get(index)
    if (!served) throw new Error(`no snapshot at ${index}`)
    this.#admit(peer, 0)
    served.expires = this.#host.rt.now() + this.#host.config.snapshotTtlMs
    return served.data.subarray(offset, offset + Math.min(length, SNAPSHOT_CHUNK))
  }

  onOffer(peer: string, body: unknown): void {
    const fetch = this.#fetch
    if (!fetch || !Array.isArray(body) || body.length !== 3) return
    const [meta, size, hash] = body as [SnapshotMeta, number, Uint8Array]
    if (!Number.isSafeInteger(size) || size < 0 || !(hash instanceof Uint8Array) || !isSnapshotMeta(meta))
      return
    const offer = { peer, meta, size, hash }
    fetch.offers.set(peer, offer)
    fetch.offerCount.set(fetch.offers.size)
    fetch.join?.(offer)
  }

  /**
   * The core reports a needed snapshot once and waits: fetches one at or after `minIndex` until it is
   * installed or no longer needed, pausing between tries (a try fails when a bond or request is lost).
   */
  async installSnapshot(minIndex: number): Promise<void> {
    const host = this.#host
    while (!host.closedOrHalted()) {
      const s = host.node.status()
      if (!s.catchingUp || s.commitIndex >= minIndex) return
      // A fetch begun under another leader (which may be cut off, its requests lost until they time
      // out) gives way: the current leader's snapshot is the one the core waits for.
      const current = this.#fetch
      if (current !== undefined && current.leader !== s.leader) current.abandon.abort()
      if (await this.fetchSnapshot(minIndex)) return
      // Every try has all members snapshot: not more often than an election timeout.
      await new Promise<void>((resolve) => host.rt.setTimeout(resolve, host.config.electionTimeoutMs))
    }
  }

  /**
   * Installs a snapshot at or after `minIndex`: asks the leader to have every member snapshot at one
   * index, fetches the chunks from every member that offers the same hash, checks it, then offers it
   * to the core. True when the core accepted it.
   */
  async fetchSnapshot(minIndex: number): Promise<boolean> {
    const host = this.#host
    if (this.#fetch) return false
    const { leader, clusterId } = host.node.status()
    if (leader === undefined || clusterId === undefined) return false
    const fetch: SnapshotFetch = {
      leader,
      index: 0,
      offers: new Map(),
      offerCount: new Watch(0),
      abandon: new AbortController(),
    }
    const abandoned = fetch.abandon.signal
    this.#fetch = fetch
    try {
      const index = await this.#request(
        fetch,
        leader,
        Req.RequestSnapshot,
        null,
        host.config.forwardTimeoutMs,
      )
      if (typeof index !== 'number' || !isBounded(index) || index < minIndex) return false
      fetch.index = index
      const usable = (o: SnapshotOffer) =>
        o.meta.index === index && (o.meta.clusterId === undefined || o.meta.clusterId === clusterId)
      const { size, hash, meta } = await this.#firstOffer(fetch, usable)
      const download = new SnapshotDownload(
        size,
        (peer, off) =>
          hedged(
            () =>
              this.#request(
                fetch,
                peer,
                Req.FetchSnapshot,
                [index, off, SNAPSHOT_CHUNK],
                host.config.catchUpFetchTimeoutMs,
              ),
            2 * host.config.electionTimeoutMs,
            host.rt,
          ),
        (peer) => host.transport.bonds.value.has(peer),
      )
      // Offers arrive as members apply the snapshot marker: fetch from the first at once, and from
      // each member that offers the same snapshot later, as it does.
      fetch.join = (o) => {
        if (usable(o) && equalBytes(o.hash, hash) && o.size === size) download.addSource(o.peer)
      }
      for (const o of fetch.offers.values()) fetch.join(o)
      const complete = await download.complete({ signal: abandoned })
      if (!complete || abandoned.aborted) return false
      if (!equalBytes(snapshotHash(download.data), hash)) {
        // The members offering it agreed on a hash the fetched bytes do not have: try again, loudly.
        host.log.error('the snapshot at %d fetched from %s does not match its hash', index, [
          ...fetch.offers.keys(),
        ])
        return false
      }
      if (host.closedOrHalted() || host.node.status().clusterId !== clusterId) return false
      return await host.offerSnapshot(meta, download.data)
    } catch (err) {
      host.log('snapshot fetch failed: %s', (err as Error).message)
      return false
    } finally {
      this.#fetch = undefined
    }
  }

  /** A request of `fetch`: it ends when the fetch is abandoned, whatever its own timeout. */
  #request(
    fetch: SnapshotFetch,
    peer: string,
    kind: number,
    body: unknown,
    timeoutMs: number,
  ): Promise<unknown> {
    const signal = fetch.abandon.signal
    return raceSignal(this.#ask(peer, kind, body, timeoutMs, signal), signal)
  }

  /**
   * A catch-up request to `peer`. Refused BUSY (it already serves this member its share), it is asked
   * again a heartbeat later, up to BUSY_RETRIES times: giving up at once would end a pull whose only
   * source is that member, or drop a snapshot's only source.
   */
  async #ask(
    peer: string,
    kind: number,
    body: unknown,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<unknown> {
    for (let tries = 0; ; tries++) {
      try {
        return await this.#host.transport.request(peer, kind, body, timeoutMs)
      } catch (err) {
        const busy = err instanceof RequestRefusedError && err.refusal === Refusal.Busy
        if (!busy || tries >= BUSY_RETRIES || signal.aborted) throw err
        await this.#host.pause(signal)
      }
    }
  }

  /**
   * The first offer the fetch can use; rejects when none came within `snapshotOfferTimeoutMs` or the
   * fetch was abandoned.
   */
  async #firstOffer(fetch: SnapshotFetch, usable: (o: SnapshotOffer) => boolean): Promise<SnapshotOffer> {
    const offered = this.#host.rt.timeout(this.#host.config.snapshotOfferTimeoutMs)
    const linked = linkSignals(fetch.abandon.signal, offered.signal)
    try {
      await fetch.offerCount.until(() => [...fetch.offers.values()].some(usable), { signal: linked.signal })
    } finally {
      linked.clear()
      offered.clear()
    }
    return [...fetch.offers.values()].find(usable)!
  }

  /** Drops each served snapshot once it expires (fetches push its expiry back). */
  #armSweep(): void {
    if (this.#sweepArmed || this.#served.size === 0) return
    this.#sweepArmed = true
    let first = Number.POSITIVE_INFINITY
    for (const s of this.#served.values()) first = Math.min(first, s.expires)
    this.#host.rt.setTimeout(
      () => {
        this.#sweepArmed = false
        const now = this.#host.rt.now()
        for (const [index, s] of this.#served) if (now >= s.expires) this.#served.delete(index)
        this.#host.stats.snapshotsHeld = this.#served.size
        this.#armSweep()
      },
      Math.max(0, first - this.#host.rt.now()) + 1,
    )
  }
}

function isSnapshotMeta(v: unknown): v is SnapshotMeta {
  if (v === null || typeof v !== 'object') return false
  const m = v as Record<string, unknown>
  return (
    isBounded(m.index as number) &&
    isBounded(m.term as number) &&
    typeof m.config === 'object' &&
    m.config !== null &&
    Array.isArray((m.config as { voters?: unknown }).voters)
  )
}

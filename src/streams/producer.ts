import { isLoopback } from '@libp2p/utils'
import type { Catalog, PeerInfo } from '../discovery/catalog.ts'
import type { Discovery } from '../discovery/discovery.ts'
import { ConcurrencyLimit } from '../discovery/limits.ts'
import { CloseCode, type LinkClose } from '../network/close.ts'
import type { Logger, NetworkContext } from '../network/context.ts'
import { hostKey } from '../network/hosts.ts'
import type { Link } from '../network/link.ts'
import { type AbortOptions, delay } from '../primitives/abort.ts'
import type { Codec } from '../primitives/codec.ts'
import type { DigestLike, StreamId } from '../primitives/digest.ts'
import {
  abortReason,
  ClosedError,
  FrameTooLargeError,
  FullError,
  InvalidArgumentError,
  MosaikError,
  OfflineError,
} from '../primitives/errors.ts'
import { Emitter } from '../primitives/events.ts'
import { macrotask } from '../primitives/schedule.ts'
import { Watch } from '../primitives/watch.ts'
import { type TicketDecision, TicketGate } from '../tickets/gate.ts'
import { type TicketValidator, validatorList } from '../tickets/ticket.ts'
import {
  type ChannelInfo,
  ChannelRecord,
  ChannelState,
  type PeerPredicate,
  passesAll,
  predicates,
} from './channel.ts'
import { ChannelConditions, When } from './conditions.ts'
import { Probation } from './probation.ts'
import { packBatch, startStreamMessage, varintLength } from './wire.ts'

/** How a producer admits consumers and treats slow ones. Every field is optional. */
export interface ProducerOptions<T> {
  /**
   * Admission predicate on the consumer's catalog entry; an array is AND-ed. It is re-evaluated
   * whenever the catalog changes, and consumers that stop passing are closed with NotAllowed (10403).
   * Default: everyone. (See `rttBelow` for a latency filter: the producer pings an unmeasured consumer
   * before evaluating it.)
   */
  require?: PeerPredicate | readonly PeerPredicate[]
  /**
   * Ticket validators consumers must satisfy (an array: all of them). A consumer whose entry lacks a
   * valid ticket is refused with NotAllowed (10403); a subscribed one is closed the same way at its
   * earliest ticket expiry, or when a new version of its entry no longer passes.
   */
  requireTicket?: TicketValidator | readonly TicketValidator[]
  /**
   * When the producer counts as online (sending is allowed), built from `when.subscribed()`.
   * Default: `c => c.minimumOf(1)`. `c => c.minimumOf(0)` sends even with no consumer; such datums go
   * to `onUndelivered`.
   */
  onlineWhen?: (subscribed: ChannelConditions) => ChannelConditions
  /** Most consumers at once; more are closed with NoCapacity (10509) and retry later. Default: no cap. */
  maxConsumers?: number
  /**
   * Datums queued per consumer beyond what its link's credit window carries (default 1024). `send`
   * waits while a consumer's queue is full, so a producer never outruns consumers that keep up.
   */
  bufferSize?: number
  /**
   * How long a consumer's full queue may hold the producer back while another consumer keeps up
   * (default 500 ms). Past it, the consumer is lagging: its queue has not drained below half in that
   * time. A lone consumer, or consumers that are all behind, never lag: the producer just waits.
   *
   * The grace is given once per peer: a peer found lagging is on probation until a minute after its
   * last strike. Meanwhile its full queues get no grace (they lag at once) and it may subscribe only
   * in turns, the grace apart and doubling per strike up to 30 s (an early link is held until its
   * turn, at most the handshake timeout, then closed with TooSlow). So a peer that never reads and
   * re-subscribes in a loop holds the producer back for one grace period, not one per subscription.
   * (See probation.ts.)
   *
   * Gotchas: an honest consumer found lagging once also loses its grace for that minute, and one
   * that reconnects before its turn waits in the handshake until then.
   */
  lagTimeoutMs?: number
  /**
   * What happens to a lagging consumer. True (default): it is closed with TooSlow (10413) and
   * reconnects after its backoff. False: it stays subscribed but no longer holds the producer back;
   * datums that find its queue full are dropped for it and counted (`stats.dropped`) until it drains.
   */
  disconnectLagging?: boolean
  /**
   * Most subscriptions one consumer peer may hold on this producer at once, counted from the
   * handshake until the link closes (default 8). More are closed with TooManyStreams (429); the
   * consumer retries after its backoff, and the earlier subscriptions are not affected.
   *
   * When to use: raise it when one node legitimately runs many consumers of this stream (each
   * consumer opens its own subscription); lower it to 1-2 for streams open to untrusted peers.
   * Gotchas: a closed subscription counts until its link has finished closing (at most the link's
   * linger, 2 s), so a consumer that reconnects at once may briefly see 429.
   */
  maxSubscriptionsPerPeer?: number
  /**
   * Most subscriptions the peers of one remote host (an IPv4 address or IPv6 /64) may hold on this
   * producer at once (default 64); more are closed with TooManyStreams (429).
   *
   * When to use: peer ids are free to mint, so this is the limit that holds against one machine
   * posing as many consumers; raise it when many honest consumers share one public address (a NAT).
   * Gotchas: loopback connections and connections without an address of their own (in-memory,
   * relayed) are not counted per host, only per peer.
   */
  maxSubscriptionsPerHost?: number
  /** Called with every datum sent while no consumer was subscribed (only possible with `onlineWhen`). */
  onUndelivered?: (datum: T) => void
  /** Overrides the definition's stream id, e.g. to run several streams of one definition. */
  streamId?: DigestLike
}

/** Counters of a producer (all of its handles together). */
export interface ProducerStats {
  /** Datums sent while at least one consumer was subscribed. */
  readonly datums: number
  /** Encoded bytes of those datums (each counted once, however many consumers got it). */
  readonly bytes: number
  /** Datums sent while no consumer was subscribed. */
  readonly undelivered: number
  /** Per-consumer copies dropped because a lagging consumer's queue was full. */
  readonly dropped: number
  /** Times a consumer was found lagging (closed with TooSlow, or dropping datums). */
  readonly lagging: number
  /**
   * Consumers refused (capacity, require, subscriptions per peer or host, lagging peers before their
   * turn) or closed because `require` stopped holding.
   */
  readonly rejected: number
}

export interface ProducerEvents {
  'consumer:connected': ChannelInfo
  'consumer:disconnected': { info: ChannelInfo; close: LinkClose }
  /** A consumer was refused at admission (NoCapacity, NotAllowed) or closed because `require` failed. */
  'consumer:rejected': { peerId: string; code: number; reason: string }
}

/** What a sink needs from the Streams subsystem. */
export interface SinkHost {
  readonly ctx: NetworkContext
  readonly discovery: Discovery
  readonly log: Logger
  /** The largest encoded datum a batch frame can carry. */
  readonly maxDatumBytes: number
  readonly handshakeTimeoutMs: number
  /** The last handle of `sink` closed: unregister and withdraw it. */
  release(sink: Sink<unknown>): Promise<void>
}

const DEFAULT_BUFFER_SIZE = 1024
const DEFAULT_LAG_TIMEOUT_MS = 500
const DEFAULT_SUBSCRIPTIONS_PER_PEER = 8
const DEFAULT_SUBSCRIPTIONS_PER_HOST = 64
/** Target size of one batch message: small datums are packed together up to this many bytes. */
const MAX_BATCH_BYTES = 32 * 1024
const RESOLVED: Promise<void> = Promise.resolve()
const EMPTY = new Uint8Array(0)
const noop = () => {}

interface SendWaiter {
  readonly bytes: Uint8Array
  readonly datum: unknown
  readonly handle: object
  readonly resolve: () => void
  readonly reject: (err: Error) => void
  done: boolean
  cleanup: (() => void) | undefined
}

/** One consumer's subscription: its link and its queue of encoded datums not yet written. */
class Subscription {
  readonly record: ChannelRecord
  readonly link: Link
  queue: Uint8Array[] = []
  head = 0
  /** A batch waits in the link for credit; nothing more is written until it goes. */
  stalled = false
  removed = false
  /** Since when this queue has been full while another consumer kept up. */
  fullSince: number | undefined
  /** Found lagging with disconnectLagging off: it no longer holds the producer back. */
  lagging = false

  get queued(): number {
    return this.queue.length - this.head
  }

  constructor(record: ChannelRecord, link: Link) {
    this.record = record
    this.link = link
  }
}

/**
 * The fan-out of one stream id on this node, shared by every Producer handle of it. Each datum is
 * encoded once; the same bytes go into every connected subscription's queue, and a macrotask flush
 * packs each queue into batch messages as far as the link's credit allows.
 */
export class Sink<T> {
  readonly streamId: StreamId
  readonly when: When
  readonly events = new Emitter<ProducerEvents>()
  readonly #host: SinkHost
  readonly #codec: Codec<T>
  readonly #require: PeerPredicate[]
  readonly #tickets: TicketGate
  readonly #maxConsumers: number
  readonly #bufferSize: number
  readonly #lagTimeoutMs: number
  readonly #disconnectLagging: boolean
  readonly #perPeer: ConcurrencyLimit
  readonly #perHost: ConcurrencyLimit
  /** Peers found lagging: no grace, and spaced re-subscriptions. */
  readonly #probation: Probation
  readonly #onUndelivered: ((datum: T) => void) | undefined
  readonly #onlineCondition: ChannelConditions
  readonly #changes = new Watch(0)
  readonly #subs: Subscription[] = []
  readonly #connecting = new Set<Subscription>()
  readonly #waiters: SendWaiter[] = []
  #waitHead = 0
  #online = false
  #flushScheduled = false
  /** No datum was written since the last flush: the next one may be written at once. */
  #eager = true
  #lagTimer: ReturnType<typeof setTimeout> | undefined
  #handles = 0
  #closed = false
  readonly #stats = { datums: 0, bytes: 0, undelivered: 0, dropped: 0, lagging: 0, rejected: 0 }

  constructor(host: SinkHost, streamId: StreamId, codec: Codec<T>, options: ProducerOptions<T>) {
    const bufferSize = options.bufferSize ?? DEFAULT_BUFFER_SIZE
    const maxConsumers = options.maxConsumers ?? Number.POSITIVE_INFINITY
    if (!Number.isInteger(bufferSize) || bufferSize < 1) {
      throw new InvalidArgumentError(`bufferSize must be a positive integer, got ${bufferSize}`)
    }
    if (!(maxConsumers >= 0)) throw new InvalidArgumentError(`maxConsumers must be ≥ 0, got ${maxConsumers}`)
    const perPeer = options.maxSubscriptionsPerPeer ?? DEFAULT_SUBSCRIPTIONS_PER_PEER
    const perHost = options.maxSubscriptionsPerHost ?? DEFAULT_SUBSCRIPTIONS_PER_HOST
    for (const [name, n] of [
      ['maxSubscriptionsPerPeer', perPeer],
      ['maxSubscriptionsPerHost', perHost],
    ] as const) {
      if (!(n >= 1)) throw new InvalidArgumentError(`${name} must be ≥ 1, got ${n}`)
    }
    this.#host = host
    this.streamId = streamId
    this.#codec = codec
    this.#require = predicates(options.require)
    this.#tickets = new TicketGate(validatorList(options.requireTicket), () =>
      this.onCatalog(this.#host.discovery.catalog()),
    )
    this.#maxConsumers = maxConsumers
    this.#bufferSize = bufferSize
    this.#lagTimeoutMs = options.lagTimeoutMs ?? DEFAULT_LAG_TIMEOUT_MS
    this.#probation = new Probation(this.#lagTimeoutMs)
    this.#disconnectLagging = options.disconnectLagging ?? true
    this.#perPeer = new ConcurrencyLimit(perPeer, Number.POSITIVE_INFINITY)
    this.#perHost = new ConcurrencyLimit(perHost, Number.POSITIVE_INFINITY)
    this.#onUndelivered = options.onUndelivered
    const source = { changes: this.#changes, connectedPeers: () => this.#subs.map((s) => s.record.peer) }
    this.when = new When(source, () => this.#online)
    const base = new ChannelConditions(source)
    this.#onlineCondition = options.onlineWhen ? options.onlineWhen(base) : base.minimumOf(1)
    this.#online = this.#onlineCondition.isMet
  }

  get closed(): boolean {
    return this.#closed
  }

  get isOnline(): boolean {
    return this.#online
  }

  get stats(): ProducerStats {
    return { ...this.#stats }
  }

  consumers(): ChannelInfo[] {
    const now = Date.now()
    return [...this.#connecting, ...this.#subs].map((s) => s.record.info(now))
  }

  acquire(): void {
    this.#handles++
  }

  /** Drops one handle's reference; the last one closes the sink. */
  async release(handle: object): Promise<void> {
    this.#rejectWaiters((w) => w.handle === handle, new ClosedError('producer is closed'))
    if (--this.#handles > 0 || this.#closed) return
    await this.#host.release(this as Sink<unknown>)
  }

  // ---- sending ---------------------------------------------------------------------------------

  encode(datum: T): Uint8Array {
    let bytes: Uint8Array
    try {
      bytes = this.#codec.encode(datum)
    } catch (err) {
      if (err instanceof MosaikError) throw err
      throw new MosaikError('ENCODE', `datum cannot be encoded: ${(err as Error).message}`, { cause: err })
    }
    if (bytes.length > this.#host.maxDatumBytes) {
      throw new FrameTooLargeError(bytes.length, this.#host.maxDatumBytes)
    }
    return bytes
  }

  send(handle: object, datum: T, options?: AbortOptions): Promise<void> {
    let bytes: Uint8Array
    try {
      bytes = this.encode(datum)
    } catch (err) {
      return Promise.reject(err)
    }
    // Dropping a laggard to make room may take the producer offline: check online again after.
    if (this.#waitHead === this.#waiters.length && this.#online && this.#hasRoom() && this.#online) {
      this.#publish(bytes, datum)
      return RESOLVED
    }
    return this.#wait(handle, bytes, datum, options?.signal)
  }

  trySend(datum: T): void {
    const bytes = this.encode(datum)
    if (!this.#online) throw new OfflineError(datum, 'producer is offline: its online condition is not met')
    if (this.#waitHead !== this.#waiters.length || !this.#hasRoom()) {
      throw new FullError(datum, 'a consumer queue is full')
    }
    // Dropping a laggard may have taken the producer offline.
    if (!this.#online) throw new OfflineError(datum, 'producer is offline: its online condition is not met')
    this.#publish(bytes, datum)
  }

  /**
   * True when every consumer that is not lagging has room, after dropping (or skipping) full ones on
   * probation; otherwise the lag clocks of the full queues run.
   */
  #hasRoom(): boolean {
    if (this.#hasCapacity()) return true
    return this.#watchLaggards() && this.#hasCapacity()
  }

  /** True while every consumer that is not lagging has room in its queue. */
  #hasCapacity(): boolean {
    const subs = this.#subs
    const cap = this.#bufferSize
    for (let i = 0; i < subs.length; i++) {
      const s = subs[i]!
      if (s.queue.length - s.head >= cap && !s.lagging) return false
    }
    return true
  }

  #publish(bytes: Uint8Array, datum: unknown): void {
    const subs = this.#subs
    const n = subs.length
    if (n === 0) {
      this.#stats.undelivered++
      if (this.#onUndelivered) {
        try {
          this.#onUndelivered(datum as T)
        } catch (err) {
          this.#host.log('onUndelivered threw: %s', (err as Error).message)
        }
      }
      return
    }
    this.#stats.datums++
    this.#stats.bytes += bytes.length
    const cap = this.#bufferSize
    for (let i = 0; i < n; i++) {
      const sub = subs[i]!
      // Only a lagging consumer (disconnectLagging off) can be full here: the datum skips it.
      if (sub.queue.length - sub.head >= cap) this.#stats.dropped++
      else sub.queue.push(bytes)
    }
    if (this.#eager) {
      // The first datum after an idle turn goes out at once (low latency at low rates); the rest of
      // the turn queues up for the macrotask flush, which batches them (throughput in bursts).
      this.#eager = false
      for (let i = 0; i < subs.length; i++) this.#flushOne(subs[i]!)
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      macrotask(this.#flush)
    }
  }

  /**
   * The producer is held back by full queues. While some other consumer keeps up, a full queue of a
   * peer on probation lags at once, and every other full queue starts its lag clock, checked when the
   * first clock runs out. Returns true when it found a consumer lagging (which may have made room).
   * (Why probation: see probation.ts.)
   *
   * A subscription younger than the lag timeout does not count as keeping up: its queue has room
   * because its link's credit window (1 MiB) is still filling, whether or not its consumer reads. A
   * burst of new subscriptions that never read must not make a consumer that reads, but is the
   * slowest for a moment, look like the laggard.
   */
  #watchLaggards(): boolean {
    const subs = this.#subs
    const cap = this.#bufferSize
    const now = Date.now()
    const settled = now - this.#lagTimeoutMs
    let someoneKeepsUp = false
    let firstSettles: number | undefined
    for (let i = 0; i < subs.length; i++) {
      const s = subs[i]!
      if (s.queue.length - s.head >= cap || s.lagging) continue
      const connectedAt = s.record.connectedAt!
      if (connectedAt <= settled) {
        someoneKeepsUp = true
        break
      }
      if (firstSettles === undefined || connectedAt < firstSettles) firstSettles = connectedAt
    }
    if (!someoneKeepsUp) {
      // Look again once the oldest young subscription with room has settled: nothing else may come
      // to wake the producer (a full queue that never drains schedules no flush).
      if (firstSettles !== undefined && this.#lagTimer === undefined) {
        this.#lagTimer = setTimeout(this.#checkLaggards, firstSettles + this.#lagTimeoutMs - now)
      }
      return false
    }
    let first: number | undefined
    let laggards: Subscription[] | undefined
    for (let i = 0; i < subs.length; i++) {
      const s = subs[i]!
      if (s.lagging || s.queue.length - s.head < cap) continue
      if (this.#probation.has(s.record.peerId, now)) {
        laggards ??= []
        laggards.push(s)
        continue
      }
      s.fullSince ??= now
      if (first === undefined || s.fullSince < first) first = s.fullSince
    }
    if (laggards) for (const s of laggards) this.#lagged(s, now, 'queue full while on probation')
    if (first !== undefined && this.#lagTimer === undefined) {
      this.#lagTimer = setTimeout(this.#checkLaggards, Math.max(0, first + this.#lagTimeoutMs - now))
    }
    return laggards !== undefined
  }

  readonly #checkLaggards = (): void => {
    this.#lagTimer = undefined
    if (this.#closed) return
    const now = Date.now()
    for (const sub of [...this.#subs]) {
      if (sub.fullSince === undefined || now - sub.fullSince < this.#lagTimeoutMs) continue
      this.#lagged(sub, now, `queue full for ${this.#lagTimeoutMs} ms`)
    }
    if (this.#waitHead < this.#waiters.length) this.#wake()
  }

  /** A consumer fell behind: close it (or stop waiting for it), and put its peer on probation. */
  #lagged(sub: Subscription, now: number, reason: string): void {
    if (sub.removed || sub.lagging) return
    sub.fullSince = undefined
    this.#stats.lagging++
    this.#probation.lagged(sub.record.peerId, now)
    if (this.#disconnectLagging) this.#terminate(sub, CloseCode.StreamTooSlow, reason)
    else sub.lagging = true
  }

  #wait(handle: object, bytes: Uint8Array, datum: unknown, signal: AbortSignal | undefined): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('producer is closed'))
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    const waiter: SendWaiter = { bytes, datum, handle, resolve, reject, done: false, cleanup: undefined }
    if (signal) {
      const onAbort = () => {
        if (waiter.done) return
        waiter.done = true
        reject(abortReason(signal))
        this.#skipDone()
      }
      signal.addEventListener('abort', onAbort, { once: true })
      waiter.cleanup = () => signal.removeEventListener('abort', onAbort)
    }
    this.#waiters.push(waiter)
    // A laggard found now makes room: hand the waiters on at once.
    if (this.#online && this.#watchLaggards()) this.#wake()
    return promise
  }

  /** Hands queued sends to the fan-out, in order, while online with capacity. */
  #wake(): void {
    const ws = this.#waiters
    while (this.#waitHead < ws.length) {
      const w = ws[this.#waitHead]!
      if (!w.done) {
        if (!this.#online) break
        if (!this.#hasCapacity()) {
          // Dropping a laggard on probation may make room (or re-enter this loop, which is safe).
          if (this.#watchLaggards()) continue
          break
        }
        w.done = true
        w.cleanup?.()
        this.#publish(w.bytes, w.datum)
        w.resolve()
      }
      this.#waitHead++
    }
    this.#compactWaiters()
  }

  #skipDone(): void {
    const ws = this.#waiters
    while (this.#waitHead < ws.length && ws[this.#waitHead]!.done) this.#waitHead++
    this.#compactWaiters()
  }

  #compactWaiters(): void {
    if (this.#waitHead === this.#waiters.length) {
      this.#waiters.length = 0
      this.#waitHead = 0
    } else if (this.#waitHead > 1024 && this.#waitHead * 2 > this.#waiters.length) {
      this.#waiters.splice(0, this.#waitHead)
      this.#waitHead = 0
    }
  }

  #rejectWaiters(match: (w: SendWaiter) => boolean, err: Error): void {
    for (let i = this.#waitHead; i < this.#waiters.length; i++) {
      const w = this.#waiters[i]!
      if (w.done || !match(w)) continue
      w.done = true
      w.cleanup?.()
      w.reject(err)
    }
    this.#skipDone()
  }

  // ---- flushing --------------------------------------------------------------------------------

  readonly #flush = (): void => {
    this.#flushScheduled = false
    this.#eager = true
    const subs = this.#subs
    for (let i = 0; i < subs.length; i++) this.#flushOne(subs[i]!)
    if (this.#waitHead < this.#waiters.length) this.#wake()
  }

  /** Writes a subscription's queue to its link as batch messages until the queue or the credit ends. */
  #flushOne(sub: Subscription): void {
    if (sub.stalled || sub.removed) return
    const link = sub.link
    if (link.isClosed) return
    const queue = sub.queue
    const start = sub.head
    const end = queue.length
    let head = start
    while (head < end) {
      let size = 0
      let datumBytes = 0
      let stop = head
      do {
        const len = queue[stop]!.length
        const rec = varintLength(len) + len
        if (stop > head && size + rec > MAX_BATCH_BYTES) break
        size += rec
        datumBytes += len
        stop++
      } while (stop < end && size < MAX_BATCH_BYTES)
      const batch = packBatch(queue, head, stop, size)
      sub.record.datums += stop - head
      sub.record.bytes += datumBytes
      head = stop
      const written = link.sendBytes(batch)
      if (link.queuedSends > 0) {
        // Out of credit (the consumer is behind) or the transport buffer is full: resume on its grant.
        sub.stalled = true
        written.then(() => {
          sub.stalled = false
          this.#scheduleFlush()
        }, noop)
        break
      }
    }
    if (queue.length - head <= this.#bufferSize >> 1) {
      sub.fullSince = undefined
      sub.lagging = false
    }
    if (head >= queue.length) {
      queue.length = 0
      sub.head = 0
    } else {
      for (let i = start; i < head; i++) queue[i] = EMPTY
      sub.head = head
      if (head > 4096 && head * 2 > queue.length) {
        queue.splice(0, head)
        sub.head = 0
      }
    }
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#closed) return
    this.#flushScheduled = true
    macrotask(this.#flush)
  }

  // ---- subscriptions ---------------------------------------------------------------------------

  /**
   * Admits a consumer whose handshake named this stream: subscriptions per peer and per host, then
   * capacity, then `require` (after an RTT probe when the consumer has never been measured and a
   * predicate may look at it), then StartStream.
   */
  async admit(link: Link, peer: PeerInfo): Promise<void> {
    if (!this.#countSubscription(link, peer.id)) return
    if (!(await this.#awaitTurn(link, peer.id))) return
    if (this.#subs.length + this.#connecting.size >= this.#maxConsumers) {
      this.#refuse(link, peer.id, CloseCode.StreamNoCapacity, `at most ${this.#maxConsumers} consumers`)
      return
    }
    const record = new ChannelRecord(this.streamId, this.#host.ctx.peerId, peer.id, peer)
    const sub = new Subscription(record, link)
    this.#connecting.add(sub)
    let tickets: TicketDecision | undefined
    try {
      if (this.#require.length > 0 && peer.rtt === undefined) {
        await this.#host.discovery
          .ping(peer.id, { signal: AbortSignal.timeout(this.#host.handshakeTimeoutMs) })
          .catch(noop)
        record.peer = this.#host.discovery.catalog().get(peer.id) ?? peer
      }
      if (this.#tickets.required) tickets = await this.#tickets.authorize(record.peer.entry)
    } finally {
      this.#connecting.delete(sub)
    }
    if (link.isClosed) return
    if (this.#closed) {
      link.closeWith(CloseCode.GracefulShutdown, 'producer closed')
      return
    }
    if (this.#subs.length >= this.#maxConsumers) {
      this.#refuse(link, peer.id, CloseCode.StreamNoCapacity, `at most ${this.#maxConsumers} consumers`)
      return
    }
    if (!passesAll(this.#require, record.peer)) {
      this.#refuse(link, peer.id, CloseCode.StreamNotAllowed, 'require failed')
      return
    }
    if (tickets && !tickets.ok) {
      this.#refuse(link, peer.id, CloseCode.StreamNotAllowed, `ticket refused: ${tickets.error.code}`)
      return
    }
    await link.send(startStreamMessage(this.#host.ctx.networkId, this.streamId))
    record.state = ChannelState.Connected
    record.connectedAt = Date.now()
    this.#subs.push(sub)
    link.closed.then((close) => this.#removed(sub, close))
    // Consumers never send after the handshake; a message now is a protocol violation.
    link
      .recvBytes()
      .then(() => this.#terminate(sub, CloseCode.ProtocolViolation, 'consumers do not send data'), noop)
    this.#channelsChanged()
    this.events.emit('consumer:connected', record.info(Date.now()))
  }

  /**
   * Waits for the turn of a peer on probation. The link is held (up to the handshake timeout) rather
   * than refused at once, so a peer that re-subscribes in a loop waits instead of spinning through
   * handshakes. False when the turn did not come in that time (refused with TooSlow) or the link
   * closed meanwhile.
   */
  async #awaitTurn(link: Link, peerId: string): Promise<boolean> {
    let wait = this.#probation.admit(peerId, Date.now())
    if (wait === 0) return true
    const stop = new AbortController()
    link.closed.then(() => stop.abort(), noop)
    await delay(Math.min(wait, this.#host.handshakeTimeoutMs), stop.signal).catch(noop)
    stop.abort()
    if (link.isClosed) return false
    wait = this.#probation.admit(peerId, Date.now())
    if (wait === 0) return true
    this.#refuse(link, peerId, CloseCode.StreamTooSlow, `lagging: next subscription in ${wait} ms`)
    return false
  }

  /**
   * Counts the subscription against its peer's and its host's limits until its link closes; refuses
   * it with TooManyStreams when either is reached.
   */
  #countSubscription(link: Link, peerId: string): boolean {
    const releasePeer = this.#perPeer.enter(peerId)
    if (!releasePeer) {
      this.#refuse(link, peerId, CloseCode.TooManyStreams, 'too many subscriptions from this peer')
      return false
    }
    const address = link.connection.remoteAddr
    const host = isLoopback(address) ? undefined : hostKey(address)
    const releaseHost = host === undefined ? noop : this.#perHost.enter(host)
    if (!releaseHost) {
      releasePeer()
      this.#refuse(link, peerId, CloseCode.TooManyStreams, 'too many subscriptions from this host')
      return false
    }
    link.closed.then(() => {
      releasePeer()
      releaseHost()
    })
    return true
  }

  #refuse(link: Link, peerId: string, code: number, reason: string): void {
    this.#stats.rejected++
    link.closeWith(code, reason)
    this.events.emit('consumer:rejected', { peerId, code, reason })
  }

  /** Closes a subscription and takes it out of the fan-out at once. */
  #terminate(sub: Subscription, code: number, reason: string): void {
    if (sub.removed) return
    sub.link.closeWith(code, reason)
    this.#removed(sub, sub.link.closeInfo ?? { code, reason, remote: false })
  }

  #removed(sub: Subscription, close: LinkClose): void {
    if (sub.removed) return
    sub.removed = true
    const i = this.#subs.indexOf(sub)
    if (i >= 0) this.#subs.splice(i, 1)
    sub.queue = []
    sub.head = 0
    sub.record.state = ChannelState.Terminated
    sub.record.lastClose = close
    this.#channelsChanged()
    this.events.emit('consumer:disconnected', { info: sub.record.info(Date.now()), close })
  }

  #channelsChanged(): void {
    if (this.#closed) return
    this.#online = this.#onlineCondition.isMet
    this.#changes.set(this.#changes.value + 1)
    if (this.#waitHead < this.#waiters.length) this.#wake()
  }

  /** Refreshes consumers' entries and closes those that no longer pass `require`. */
  onCatalog(catalog: Catalog): void {
    let changed = false
    for (const sub of [...this.#subs]) {
      const info = catalog.get(sub.record.peerId)
      if (!info) {
        this.#checkTickets(sub)
        continue
      }
      if (info.entry !== sub.record.peer.entry) changed = true
      sub.record.peer = info
      if (this.#require.length > 0 && !passesAll(this.#require, info)) {
        this.#stats.rejected++
        this.events.emit('consumer:rejected', {
          peerId: info.id,
          code: CloseCode.StreamNotAllowed,
          reason: 'require no longer holds',
        })
        this.#terminate(sub, CloseCode.StreamNotAllowed, 'require no longer holds')
      } else this.#checkTickets(sub)
    }
    if (this.#tickets.required) this.#tickets.prune((id) => catalog.has(id))
    if (changed) this.#channelsChanged()
  }

  /** Closes a subscription whose consumer's tickets no longer pass (expired, or a new entry fails). */
  #checkTickets(sub: Subscription): void {
    if (sub.removed || this.#tickets.status(sub.record.peer.entry) !== 'invalid') return
    this.#stats.rejected++
    const reason = 'tickets no longer valid'
    this.events.emit('consumer:rejected', {
      peerId: sub.record.peerId,
      code: CloseCode.StreamNotAllowed,
      reason,
    })
    this.#terminate(sub, CloseCode.StreamNotAllowed, reason)
  }

  /** Flushes what the links take now, then closes every consumer with `code`. */
  close(code: number = CloseCode.GracefulShutdown): void {
    if (this.#closed) return
    for (const sub of this.#subs) this.#flushOne(sub)
    for (const sub of [...this.#subs]) this.#terminate(sub, code, 'producer closed')
    for (const sub of this.#connecting) sub.link.closeWith(code, 'producer closed')
    this.#closed = true
    this.#online = false
    this.#tickets.close()
    clearTimeout(this.#lagTimer)
    this.#rejectWaiters(() => true, new ClosedError('producer is closed'))
    this.#changes.close(new ClosedError('producer is closed'))
    this.events.removeAllListeners()
  }
}

/**
 * The sending end of a stream on this node. Get one with `net.streams.producer(def, options)` (or
 * `produce(def)`, which shares an existing one).
 *
 * `await send(d)` is the normal way to send: it waits while the producer is offline (no consumer, by
 * default) or every consumer's queue is full, and resolves once the datum is queued for every
 * connected consumer. It does not wait for delivery: closing right after may lose what is queued.
 * `trySend(d)` never waits and throws OfflineError / FullError carrying the datum back instead.
 *
 * Handles of one stream id share one fan-out (its consumers, options and stats). The stream id stays
 * in this node's catalog entry until the last handle closes; then consumers are closed with
 * GracefulShutdown and the id is withdrawn.
 */
export class Producer<T> implements AsyncDisposable {
  readonly streamId: StreamId
  readonly #sink: Sink<T>
  #closed = false

  /** @internal Use `net.streams.producer()` or `produce()`. */
  constructor(sink: Sink<T>) {
    this.#sink = sink
    this.streamId = sink.streamId
    sink.acquire()
  }

  /** Awaitable conditions on the consumers (`when.subscribed().minimumOf(2)`, `when.online()`...). */
  get when(): When {
    return this.#sink.when
  }

  /** Whether sending is allowed now (the `onlineWhen` condition holds). */
  get isOnline(): boolean {
    return !this.isClosed && this.#sink.isOnline
  }

  get isClosed(): boolean {
    return this.#closed || this.#sink.closed
  }

  get stats(): ProducerStats {
    return this.#sink.stats
  }

  /** The consumers subscribed (or being admitted) right now. */
  consumers(): ChannelInfo[] {
    return this.#sink.consumers()
  }

  /** Subscribes to producer events; returns the unsubscribe function. */
  on<K extends keyof ProducerEvents>(event: K, listener: (payload: ProducerEvents[K]) => void): () => void {
    return this.#sink.events.on(event, listener)
  }

  /**
   * Queues `datum` for every connected consumer, waiting first until the producer is online and some
   * consumer has room. Sends from one handle are queued in call order. Rejects with ClosedError if the
   * producer closes first, the signal's reason if it aborts, or an encoding error.
   */
  send(datum: T, options?: AbortOptions): Promise<void> {
    if (this.isClosed) return Promise.reject(new ClosedError('producer is closed'))
    return this.#sink.send(this, datum, options)
  }

  /** Queues `datum` now or throws: OfflineError / FullError (each carrying `datum` back), ClosedError. */
  trySend(datum: T): void {
    if (this.isClosed) throw new ClosedError('producer is closed')
    this.#sink.trySend(datum)
  }

  /**
   * Releases this handle: its pending sends reject with ClosedError. The last handle of a stream id
   * closes the fan-out (consumers get GracefulShutdown) and withdraws the id from the catalog entry.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#sink.release(this)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

import type { Catalog, PeerInfo } from '../discovery/catalog.ts'
import type { Discovery } from '../discovery/discovery.ts'
import { type AbortOptions, deadline as deadlineOf } from '../primitives/abort.ts'
import { type Codec, cbor, encodeCanonicalShared } from '../primitives/codec.ts'
import type { StreamId } from '../primitives/digest.ts'
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
import { validatorList } from '../tickets/ticket.ts'
import { CloseCode, type LinkClose } from '../transport/close.ts'
import type { Logger, NetworkContext } from '../transport/context.ts'
import type { Link } from '../transport/link.ts'
import { SubscriptionLimits } from './admission.ts'
import {
  type ChannelInfo,
  ChannelRecord,
  ChannelState,
  type PeerPredicate,
  passesAll,
  predicates,
} from './channel.ts'
import { ChannelConditions, When } from './conditions.ts'
import { LagWatch } from './lag.ts'
import { Probation } from './probation.ts'
import type { ProducerEvents, ProducerOptions, ProducerStats } from './producer.ts'
import { SendQueue } from './send-queue.ts'
import { Subscription } from './subscription.ts'
import { startStreamMessage } from './wire.ts'

/** What a sink needs from the Streams subsystem. */
export interface SinkHost {
  readonly ctx: Pick<NetworkContext, 'peerId' | 'networkId' | 'clock' | 'scope'>
  readonly discovery: Discovery
  readonly log: Logger
  /** The largest encoded datum a batch frame can carry. */
  readonly maxDatumBytes: number
  readonly handshakeTimeoutMs: number
  /** A subscription was refused at admission with `code` (counted in the node's streams stats). */
  refused(code: number): void
  /** The last handle of `sink` closed: unregister and withdraw it. */
  release(sink: Sink<unknown>): Promise<void>
}

const DEFAULT_BUFFER_SIZE = 1024
const DEFAULT_LAG_TIMEOUT_MS = 500
const DEFAULT_SUBSCRIPTIONS_PER_PEER = 8
const DEFAULT_SUBSCRIPTIONS_PER_HOST = 64
const RESOLVED: Promise<void> = Promise.resolve()
const noop = () => {}

/**
 * The fan-out of one stream id on this node, shared by every Producer handle of it. Each datum is
 * encoded once; the same bytes go into every connected subscription's queue, and a macrotask flush
 * packs each queue into batch messages as far as the link's credit allows.
 *
 * Its parts: each Subscription writes its own queue (subscription.ts), a LagWatch finds the
 * consumers that hold the producer back (lag.ts), a SendQueue holds the sends waiting for room
 * (send-queue.ts), and SubscriptionLimits checks subscriptions per peer and host (admission.ts).
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
  readonly #disconnectLagging: boolean
  readonly #limits: SubscriptionLimits
  /** Peers found lagging: no grace, and spaced re-subscriptions. */
  readonly #probation: Probation
  readonly #lag: LagWatch
  readonly #onUndelivered: ((datum: T) => void) | undefined
  readonly #onlineCondition: ChannelConditions
  readonly #changes = new Watch(0)
  readonly #subs: Subscription[] = []
  readonly #connecting = new Set<Subscription>()
  readonly #waiters = new SendQueue()
  #online = false
  #flushScheduled = false
  /** No datum was written since the last flush: the next one may be written at once. */
  #eager = true
  #handles = 0
  #closed = false
  readonly #stats = { datums: 0, bytes: 0, undelivered: 0, dropped: 0, lagging: 0, rejected: 0 }

  constructor(host: SinkHost, streamId: StreamId, codec: Codec<T>, options: ProducerOptions<T>) {
    const { bufferSize, maxConsumers, perPeer, perHost } = checkedSizes(options)
    this.#host = host
    this.streamId = streamId
    this.#codec = codec
    this.#require = predicates(options.require)
    this.#tickets = new TicketGate(validatorList(options.requireTicket), () =>
      this.onCatalog(this.#host.discovery.catalog()),
    )
    this.#maxConsumers = maxConsumers
    this.#bufferSize = bufferSize
    const lagTimeoutMs = options.lagTimeoutMs ?? DEFAULT_LAG_TIMEOUT_MS
    this.#probation = new Probation(lagTimeoutMs)
    this.#lag = this.#newLagWatch(bufferSize, lagTimeoutMs)
    this.#disconnectLagging = options.disconnectLagging ?? true
    this.#limits = new SubscriptionLimits(
      {
        perPeer,
        perHost,
        probation: this.#probation,
        handshakeTimeoutMs: host.handshakeTimeoutMs,
        now: () => host.ctx.clock.now(),
        timers: host.ctx.scope,
      },
      (link, peerId, code, reason) => this.#refuse(link, peerId, code, reason),
    )
    this.#onUndelivered = options.onUndelivered
    const source = { changes: this.#changes, connectedPeers: () => this.#subs.map((s) => s.record.peer) }
    this.when = new When(source, () => this.#online)
    const base = new ChannelConditions(source)
    this.#onlineCondition = options.onlineWhen ? options.onlineWhen(base) : base.minimumOf(1)
    this.#online = this.#onlineCondition.isMet
  }

  /** The lag watch over this sink's subscriptions; a laggard found may make room for waiting sends. */
  #newLagWatch(bufferSize: number, lagTimeoutMs: number): LagWatch {
    const host = this.#host
    return new LagWatch(
      this.#subs,
      {
        bufferSize,
        lagTimeoutMs,
        probation: this.#probation,
        now: () => host.ctx.clock.now(),
        timers: host.ctx.scope,
      },
      {
        lagged: (sub, now, reason) => this.#lagged(sub, now, reason),
        checked: () => {
          if (this.#waiters.pending) this.#wake()
        },
      },
    )
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
    const now = this.#host.ctx.clock.now()
    return [...this.#connecting, ...this.#subs].map((s) => s.record.info(now))
  }

  acquire(): void {
    this.#handles++
  }

  /** Drops one handle's reference; the last one closes the sink. */
  async release(handle: object): Promise<void> {
    this.#waiters.reject((w) => w.handle === handle, new ClosedError('producer is closed'))
    if (--this.#handles > 0 || this.#closed) return
    await this.#host.release(this as Sink<unknown>)
  }

  // ---- sending ---------------------------------------------------------------------------------

  encode(datum: T): Uint8Array {
    let bytes: Uint8Array
    try {
      // The default codec's bytes may share a slab: they only wait (in the subscriptions' queues, at
      // most bufferSize each, or with a send() still waiting) until a batch copies them.
      bytes = this.#codec === cbor ? encodeCanonicalShared(datum) : this.#codec.encode(datum)
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
    if (!this.#waiters.pending && this.#online && this.#lag.hasRoom() && this.#online) {
      this.#publish(bytes, datum)
      return RESOLVED
    }
    return this.#wait(handle, bytes, datum, options?.signal)
  }

  trySend(datum: T): void {
    const bytes = this.encode(datum)
    if (!this.#online) throw new OfflineError(datum, 'producer is offline: its online condition is not met')
    if (this.#waiters.pending || !this.#lag.hasRoom()) {
      throw new FullError(datum, 'a consumer queue is full')
    }
    // Dropping a laggard may have taken the producer offline.
    if (!this.#online) throw new OfflineError(datum, 'producer is offline: its online condition is not met')
    this.#publish(bytes, datum)
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
      if (sub.queued >= cap) this.#stats.dropped++
      else sub.queue.push(bytes)
    }
    if (this.#eager) {
      // The first datum after an idle turn goes out at once (low latency at low rates); the rest of
      // the turn queues up for the macrotask flush, which batches them (throughput in bursts).
      this.#eager = false
      for (let i = 0; i < subs.length; i++) subs[i]!.flush(cap, this.#scheduleFlush)
      if (!this.#flushScheduled) {
        // Post the flush after the links have handed this datum to the transport (their flush is a
        // microtask queued just now): posting a macrotask costs tens of µs in a browser.
        this.#flushScheduled = true
        queueMicrotask(this.#postFlush)
      }
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      macrotask(this.#flush)
    }
  }

  readonly #postFlush = (): void => macrotask(this.#flush)

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
    const promise = this.#waiters.push(handle, bytes, datum, signal)
    // A laggard found now makes room: hand the waiters on at once.
    if (this.#online && this.#lag.watch()) this.#wake()
    return promise
  }

  /** Hands queued sends to the fan-out, in order, while online with capacity. */
  #wake(): void {
    const waiters = this.#waiters
    for (let w = waiters.peek(); w !== undefined; w = waiters.peek()) {
      if (!w.done) {
        if (!this.#online) break
        if (!this.#lag.hasCapacity()) {
          // Dropping a laggard on probation may make room (or re-enter this loop, which is safe).
          if (this.#lag.watch()) continue
          break
        }
        w.done = true
        this.#publish(w.bytes, w.datum)
        w.resolve()
      }
      waiters.advance()
    }
  }

  // ---- flushing --------------------------------------------------------------------------------

  readonly #flush = (): void => {
    this.#flushScheduled = false
    this.#eager = true
    const subs = this.#subs
    for (let i = 0; i < subs.length; i++) subs[i]!.flush(this.#bufferSize, this.#scheduleFlush)
    if (this.#waiters.pending) this.#wake()
  }

  readonly #scheduleFlush = (): void => {
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
    if (!this.#limits.count(link, peer.id)) return
    if (!(await this.#limits.awaitTurn(link, peer.id))) return
    if (this.#subs.length + this.#connecting.size >= this.#maxConsumers) {
      this.#refuse(link, peer.id, CloseCode.StreamNoCapacity, `at most ${this.#maxConsumers} consumers`)
      return
    }
    const record = new ChannelRecord(this.streamId, this.#host.ctx.peerId, peer.id, peer)
    const sub = new Subscription(record, link)
    this.#connecting.add(sub)
    let tickets: TicketDecision | undefined
    try {
      if (this.#require.length > 0 && peer.rtt === undefined) await this.#measureRtt(record)
      if (this.#tickets.required) tickets = await this.#tickets.authorize(record.peer.entry)
    } finally {
      this.#connecting.delete(sub)
    }
    if (!this.#mayStart(sub, tickets)) return
    await this.#start(sub)
  }

  /** Pings a consumer never measured (within the handshake timeout) and takes its refreshed entry. */
  async #measureRtt(record: ChannelRecord): Promise<void> {
    const peer = record.peer
    const deadline = deadlineOf(this.#host.handshakeTimeoutMs, this.#host.ctx.scope)
    await this.#host.discovery.ping(peer.id, { signal: deadline.signal }).catch(noop).finally(deadline.clear)
    record.peer = this.#host.discovery.catalog().get(peer.id) ?? peer
  }

  /**
   * The checks after the RTT probe and the tickets, which took time: the link or the sink may have
   * closed, and capacity, `require` or the tickets may refuse. False when the subscription was ended.
   */
  #mayStart(sub: Subscription, tickets: TicketDecision | undefined): boolean {
    const { link, record } = sub
    const peerId = record.peerId
    if (link.isClosed) return false
    if (this.#closed) {
      link.beginClose(CloseCode.GracefulShutdown, 'producer closed')
      return false
    }
    if (this.#subs.length >= this.#maxConsumers) {
      this.#refuse(link, peerId, CloseCode.StreamNoCapacity, `at most ${this.#maxConsumers} consumers`)
      return false
    }
    if (!passesAll(this.#require, record.peer)) {
      this.#refuse(link, peerId, CloseCode.StreamNotAllowed, 'require failed')
      return false
    }
    if (tickets && !tickets.ok) {
      this.#refuse(link, peerId, CloseCode.StreamNotAllowed, `ticket refused: ${tickets.error.code}`)
      return false
    }
    return true
  }

  /** Sends StartStream and adds the subscription to the fan-out. */
  async #start(sub: Subscription): Promise<void> {
    const { link, record } = sub
    await link.send(startStreamMessage(this.#host.ctx.networkId, this.streamId))
    sub.dataFrom = link.bytesSent
    record.state = ChannelState.Connected
    record.connectedAt = this.#host.ctx.clock.now()
    this.#subs.push(sub)
    link.closed.then((close) => this.#removed(sub, close))
    // Consumers never send after the handshake; a message now is a protocol violation.
    link
      .recvBytes()
      .then(() => this.#terminate(sub, CloseCode.ProtocolViolation, 'consumers do not send data'), noop)
    this.#channelsChanged()
    this.events.emit('consumer:connected', record.info(this.#host.ctx.clock.now()))
  }

  #refuse(link: Link, peerId: string, code: number, reason: string): void {
    this.#stats.rejected++
    this.#host.refused(code)
    link.beginClose(code, reason)
    this.events.emit('consumer:rejected', { peerId, code, reason })
  }

  /** Closes a subscription and takes it out of the fan-out at once. */
  #terminate(sub: Subscription, code: number, reason: string): void {
    if (sub.removed) return
    sub.link.beginClose(code, reason)
    this.#removed(sub, sub.link.closeInfo ?? { code, reason, remote: false })
  }

  #removed(sub: Subscription, close: LinkClose): void {
    if (sub.removed) return
    sub.removed = true
    const i = this.#subs.indexOf(sub)
    if (i >= 0) this.#subs.splice(i, 1)
    sub.queue.clear()
    sub.record.state = ChannelState.Terminated
    sub.record.lastClose = close
    this.#channelsChanged()
    this.events.emit('consumer:disconnected', { info: sub.record.info(this.#host.ctx.clock.now()), close })
  }

  #channelsChanged(): void {
    if (this.#closed) return
    this.#online = this.#onlineCondition.isMet
    this.#changes.set(this.#changes.value + 1)
    if (this.#waiters.pending) this.#wake()
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
    for (const sub of this.#subs) sub.flush(this.#bufferSize, this.#scheduleFlush)
    for (const sub of [...this.#subs]) this.#terminate(sub, code, 'producer closed')
    for (const sub of this.#connecting) sub.link.beginClose(code, 'producer closed')
    this.#closed = true
    this.#online = false
    this.#tickets.close()
    this.#lag.close()
    this.#waiters.reject(() => true, new ClosedError('producer is closed'))
    this.#changes.close(new ClosedError('producer is closed'))
    this.events.removeAllListeners()
  }
}

/** The option sizes a sink needs, defaulted and checked; throws InvalidArgumentError on a bad one. */
function checkedSizes<T>(options: ProducerOptions<T>) {
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
  return { bufferSize, maxConsumers, perPeer, perHost }
}

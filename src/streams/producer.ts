import type { Catalog, PeerInfo } from '../discovery/catalog.ts'
import type { Discovery } from '../discovery/discovery.ts'
import { CloseCode, type LinkClose } from '../network/close.ts'
import type { Logger, NetworkContext } from '../network/context.ts'
import type { Link } from '../network/link.ts'
import type { AbortOptions } from '../primitives/abort.ts'
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
import {
  type ChannelInfo,
  ChannelRecord,
  ChannelState,
  type PeerPredicate,
  passesAll,
  predicates,
} from './channel.ts'
import { ChannelConditions, When } from './conditions.ts'
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
   */
  lagTimeoutMs?: number
  /**
   * What happens to a lagging consumer. True (default): it is closed with TooSlow (10413) and
   * reconnects after its backoff. False: it stays subscribed but no longer holds the producer back;
   * datums that find its queue full are dropped for it and counted (`stats.dropped`) until it drains.
   */
  disconnectLagging?: boolean
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
  /** Consumers refused (capacity, require) or closed because `require` stopped holding. */
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
  readonly #maxConsumers: number
  readonly #bufferSize: number
  readonly #lagTimeoutMs: number
  readonly #disconnectLagging: boolean
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
    this.#host = host
    this.streamId = streamId
    this.#codec = codec
    this.#require = predicates(options.require)
    this.#maxConsumers = maxConsumers
    this.#bufferSize = bufferSize
    this.#lagTimeoutMs = options.lagTimeoutMs ?? DEFAULT_LAG_TIMEOUT_MS
    this.#disconnectLagging = options.disconnectLagging ?? true
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
    if (this.#waitHead === this.#waiters.length && this.#online && this.#hasCapacity()) {
      this.#publish(bytes, datum)
      return RESOLVED
    }
    return this.#wait(handle, bytes, datum, options?.signal)
  }

  trySend(datum: T): void {
    const bytes = this.encode(datum)
    if (!this.#online) throw new OfflineError(datum, 'producer is offline: its online condition is not met')
    if (this.#waitHead !== this.#waiters.length || !this.#hasCapacity()) {
      this.#watchLaggards()
      throw new FullError(datum, 'a consumer queue is full')
    }
    this.#publish(bytes, datum)
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
   * The producer is held back: start the lag clock of every full queue while some other consumer
   * keeps up, and check them when the first clock runs out.
   */
  #watchLaggards(): void {
    const subs = this.#subs
    const cap = this.#bufferSize
    let someoneKeepsUp = false
    for (const s of subs) if (s.queued < cap && !s.lagging) someoneKeepsUp = true
    if (!someoneKeepsUp) return
    const now = Date.now()
    let first: number | undefined
    for (const s of subs) {
      if (s.lagging || s.queued < cap) continue
      s.fullSince ??= now
      if (first === undefined || s.fullSince < first) first = s.fullSince
    }
    if (first === undefined || this.#lagTimer !== undefined) return
    this.#lagTimer = setTimeout(this.#checkLaggards, Math.max(0, first + this.#lagTimeoutMs - now))
  }

  readonly #checkLaggards = (): void => {
    this.#lagTimer = undefined
    if (this.#closed) return
    const now = Date.now()
    for (const sub of [...this.#subs]) {
      if (sub.fullSince === undefined || now - sub.fullSince < this.#lagTimeoutMs) continue
      sub.fullSince = undefined
      this.#stats.lagging++
      if (this.#disconnectLagging) {
        this.#terminate(sub, CloseCode.StreamTooSlow, `queue full for ${this.#lagTimeoutMs} ms`)
      } else {
        sub.lagging = true
      }
    }
    if (this.#waitHead < this.#waiters.length) this.#wake()
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
    if (this.#online) this.#watchLaggards()
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
          this.#watchLaggards()
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
   * Admits a consumer whose handshake named this stream: capacity, then `require` (after an RTT probe
   * when the consumer has never been measured and a predicate may look at it), then StartStream.
   */
  async admit(link: Link, peer: PeerInfo): Promise<void> {
    if (this.#subs.length + this.#connecting.size >= this.#maxConsumers) {
      this.#refuse(link, peer.id, CloseCode.StreamNoCapacity, `at most ${this.#maxConsumers} consumers`)
      return
    }
    const record = new ChannelRecord(this.streamId, this.#host.ctx.peerId, peer.id, peer)
    const sub = new Subscription(record, link)
    this.#connecting.add(sub)
    try {
      if (this.#require.length > 0 && peer.rtt === undefined) {
        await this.#host.discovery
          .ping(peer.id, { signal: AbortSignal.timeout(this.#host.handshakeTimeoutMs) })
          .catch(noop)
        record.peer = this.#host.discovery.catalog().get(peer.id) ?? peer
      }
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
      if (!info) continue
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
      }
    }
    if (changed) this.#channelsChanged()
  }

  /** Flushes what the links take now, then closes every consumer with `code`. */
  close(code: number = CloseCode.GracefulShutdown): void {
    if (this.#closed) return
    for (const sub of this.#subs) this.#flushOne(sub)
    for (const sub of [...this.#subs]) this.#terminate(sub, code, 'producer closed')
    for (const sub of this.#connecting) sub.link.closeWith(code, 'producer closed')
    this.#closed = true
    this.#online = false
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

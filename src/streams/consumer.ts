import type { StandardSchemaV1 } from '@standard-schema/spec'
import type { Catalog, PeerInfo } from '../discovery/catalog.ts'
import type { Discovery } from '../discovery/discovery.ts'
import { compareVersions } from '../discovery/entry.ts'
import type { AbortOptions } from '../primitives/abort.ts'
import { Backoff, type BackoffOptions } from '../primitives/backoff.ts'
import type { Codec } from '../primitives/codec.ts'
import type { DigestLike, StreamId } from '../primitives/digest.ts'
import { ClosedError, DecodeError, InvalidArgumentError } from '../primitives/errors.ts'
import { Emitter } from '../primitives/events.ts'
import type { Scope } from '../primitives/scope.ts'
import { Watch } from '../primitives/watch.ts'
import { TicketGate } from '../tickets/gate.ts'
import { type TicketValidator, validatorList } from '../tickets/ticket.ts'
import type { LinkClose } from '../transport/close.ts'
import type { Logger, NetworkContext } from '../transport/context.ts'
import {
  type ChannelInfo,
  ChannelRecord,
  ChannelState,
  type PeerPredicate,
  passesAll,
  predicates,
} from './channel.ts'
import { ChannelConditions, When } from './conditions.ts'
import { DatumReader } from './datum-reader.ts'
import { Inbox } from './inbox.ts'
import { Receiver, type ReceiverOwner, type Rejection } from './receiver.ts'

/** How a consumer picks producers and reconnects. Every field is optional. */
export interface ConsumerOptions {
  /**
   * Eligibility predicate on a producer's catalog entry; an array is AND-ed. Re-evaluated on every
   * catalog change: producers that start passing are subscribed to, those that stop are dropped.
   * When a predicate exists and a producer's RTT was never measured, it is pinged first (so `rttBelow`
   * sees a measurement).
   */
  require?: PeerPredicate | readonly PeerPredicate[]
  /**
   * Ticket validators producers must satisfy (an array: all of them). Producers without valid tickets
   * are not subscribed to; a subscribed one is dropped at its earliest ticket expiry, or when a new
   * version of its entry no longer passes.
   */
  requireTicket?: TicketValidator | readonly TicketValidator[]
  /** When the consumer counts as online; default `c => c.minimumOf(0)` (online at once). */
  onlineWhen?: (subscribed: ChannelConditions) => ChannelConditions
  /**
   * Reconnect policy after a fault (exponential with jitter, reset by every datum received). Defaults
   * to the node's `streams.backoff`, itself mosaik's: 500 ms ×1.5 ±50 %, at most 60 s apart, giving
   * up after 5 minutes until the producer's entry changes.
   */
  backoff?: BackoffOptions
  /** Overrides the definition's stream id. */
  streamId?: DigestLike
  /**
   * Datums received but not yet read, over all producers (default 1024). When full, the consumer stops
   * reading its links; their credit windows then stop the producers' writers, and a producer whose
   * queue for this consumer overflows closes it with TooSlow (it reconnects after the backoff).
   */
  bufferSize?: number
}

/** Counters of a consumer, over every producer it has read from. */
export interface ConsumerStats {
  /** Datums delivered (decoded and valid). */
  readonly datums: number
  /** Encoded bytes of the delivered datums. */
  readonly bytes: number
  /** Datums dropped because the codec or the schema refused them. */
  readonly invalid: number
  /** Milliseconds since the consumer went from no connected producer to some; undefined while none. */
  readonly uptime: number | undefined
}

/** What happens after a channel to a producer ends. */
export type RetryPolicy = 'backoff' | 'sync' | 'none'

/** The events a Consumer emits, one per producer channel change or dropped datum. */
export interface ConsumerEvents {
  /** A channel to a producer is connected. */
  'producer:connected': ChannelInfo
  /**
   * A channel ended or an attempt failed. `retry` says what comes next: 'backoff' (a fault: reconnect
   * after the backoff), 'sync' (UnknownPeer: sync catalogs, then reconnect at once) or 'none' (refused
   * for good, or dropped locally: retried only when that producer's or this node's entry changes).
   */
  'producer:disconnected': {
    /** The channel as it ended. */
    info: ChannelInfo
    /** How it closed. */
    close: LinkClose
    /** What happens next. */
    retry: RetryPolicy
  }
  /** A datum was dropped because the codec or the schema refused it. */
  invalid: {
    /** The producer that sent it. */
    peerId: string
    /** Why it was refused. */
    error: Error
  }
}

/** What a consumer needs from the Streams subsystem. */
export interface ConsumerHost {
  readonly ctx: Pick<NetworkContext, 'peerId' | 'networkId' | 'clock' | 'openLink'>
  readonly discovery: Discovery
  readonly log: Logger
  /** Owns the receivers' reconnect loops. */
  readonly scope: Scope
  readonly protocol: string
  readonly handshakeTimeoutMs: number
  readonly backoff: BackoffOptions
  release(consumer: Consumer<unknown>): void
}

const DEFAULT_BUFFER_SIZE = 1024
const noop = () => {}

/**
 * The receiving end of a stream on this node: it subscribes to every eligible producer in the catalog
 * and merges their datums (in order per producer). Get one with `net.streams.consumer(def, options)`.
 *
 * Read with `for await (const d of consumer)`, `await consumer.recv()` or `consumer.tryRecv()`. Breaking
 * out of a `for await` loop does not close the consumer: close it (or use `await using`) when done,
 * which also ends every loop and rejects pending `recv()` calls with ClosedError.
 *
 * When to use which: `for await` reads one datum per microtask turn, which is simplest and fast enough
 * for most streams. For the highest rate, wait for one datum with `recv()` and then take what else is
 * buffered with `tryRecv()` until it returns undefined: the datums of a batch are then read in one
 * turn (about a tenth faster for 1 KiB datums over QUIC; see tests/bench/NOTES.md).
 *
 * Delivery is at most once: a datum sent while the channel to a producer is down, or dropped for a
 * lagging consumer, is not replayed.
 *
 * Gotchas: a consumer uses producers on other nodes only (the catalog does not list this node), as in
 * mosaik. With the raw codec, a datum is a view into a received batch: keeping one alive keeps that
 * batch (up to 32 KiB) alive; copy it (`slice()`) to keep it long.
 */
export class Consumer<T> implements AsyncIterable<T>, AsyncDisposable {
  /** The id of the stream this consumer receives. */
  readonly streamId: StreamId
  /** Awaitable conditions on the producers (`when.subscribed()`, `when.online()`...). */
  readonly when: When
  readonly #host: ConsumerHost
  readonly #require: PeerPredicate[]
  readonly #tickets: TicketGate
  readonly #backoff: BackoffOptions
  readonly #onlineCondition: ChannelConditions
  readonly #events = new Emitter<ConsumerEvents>()
  readonly #changes = new Watch(0)
  readonly #receivers = new Map<string, Receiver>()
  readonly #rejected = new Map<string, Rejection>()
  /** Producers pinged once for an RTT sample before their first evaluation. */
  readonly #probed = new Set<string>()
  readonly #inbox: Inbox<T>
  readonly #reader: DatumReader<T>
  readonly #owner: ReceiverOwner
  #online: boolean
  #connectedSince: number | undefined
  #closed = false
  readonly #stats = { datums: 0, bytes: 0, invalid: 0 }

  /** @internal Use `net.streams.consumer()`. */
  constructor(
    host: ConsumerHost,
    streamId: StreamId,
    codec: Codec<T>,
    schema: StandardSchemaV1<unknown, T> | undefined,
    options: ConsumerOptions,
  ) {
    const bufferSize = options.bufferSize ?? DEFAULT_BUFFER_SIZE
    if (!Number.isInteger(bufferSize) || bufferSize < 1) {
      throw new InvalidArgumentError(`bufferSize must be a positive integer, got ${bufferSize}`)
    }
    this.#host = host
    this.streamId = streamId
    this.#require = predicates(options.require)
    this.#tickets = new TicketGate(validatorList(options.requireTicket), () =>
      this.onCatalog(this.#host.discovery.catalog()),
    )
    this.#backoff = { ...host.backoff, ...options.backoff }
    this.#inbox = new Inbox(bufferSize)
    this.#reader = new DatumReader(this.#inbox, codec, schema, {
      accept: (rx, value, size) => this.#accept(rx, value, size),
      invalid: (rx, err) => this.#invalid(rx, err),
    })
    this.#owner = {
      host,
      streamId,
      connected: (rx) => this.#connected(rx),
      read: (rx, link) => this.#reader.read(rx, link),
      disconnected: (rx, close, retry) => this.#disconnected(rx, close, retry),
      refused: (rx, anyNewerVersion) => this.#refused(rx, anyNewerVersion),
    }
    const source = { changes: this.#changes, connectedPeers: () => this.#connectedPeers() }
    this.when = new When(source, () => this.#online)
    const base = new ChannelConditions(source)
    this.#onlineCondition = options.onlineWhen ? options.onlineWhen(base) : base.minimumOf(0)
    this.#online = this.#onlineCondition.isMet
  }

  /** Whether the `onlineWhen` condition holds (by default always, until closed). */
  get isOnline(): boolean {
    return !this.#closed && this.#online
  }

  /** True once `close()` has been called. */
  get isClosed(): boolean {
    return this.#closed
  }

  /** Counters of what the consumer received and dropped so far. */
  get stats(): ConsumerStats {
    return {
      ...this.#stats,
      uptime:
        this.#connectedSince === undefined ? undefined : this.#host.ctx.clock.now() - this.#connectedSince,
    }
  }

  /** Datums received and not yet read. */
  get buffered(): number {
    return this.#inbox.buffered
  }

  /** The producers this consumer is connected to or (re)connecting to. */
  producers(): ChannelInfo[] {
    const now = this.#host.ctx.clock.now()
    return [...this.#receivers.values()].map((rx) => rx.record.info(now))
  }

  /** Subscribes to consumer events; returns the unsubscribe function. */
  on<K extends keyof ConsumerEvents>(event: K, listener: (payload: ConsumerEvents[K]) => void): () => void {
    return this.#events.on(event, listener)
  }

  // ---- reading ---------------------------------------------------------------------------------

  /** Resolves with the next datum; rejects with ClosedError once the consumer is closed. */
  recv(options?: AbortOptions): Promise<T> {
    if (this.#inbox.buffered > 0) return Promise.resolve(this.#inbox.take())
    if (this.#closed) return Promise.reject(new ClosedError('consumer is closed'))
    return this.#inbox.wait(options?.signal)
  }

  /** The next datum if one is buffered, else undefined. Throws ClosedError once closed. */
  tryRecv(): T | undefined {
    if (this.#inbox.buffered > 0) return this.#inbox.take()
    if (this.#closed) throw new ClosedError('consumer is closed')
    return undefined
  }

  /** Datums until the consumer closes. */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: (): Promise<IteratorResult<T>> => {
        if (this.#inbox.buffered > 0) return Promise.resolve({ value: this.#inbox.take(), done: false })
        if (this.#closed) return Promise.resolve({ value: undefined, done: true })
        return this.recv().then(
          (value) => ({ value, done: false }),
          (err) => {
            if (this.#closed && err instanceof ClosedError) return { value: undefined, done: true }
            throw err
          },
        )
      },
      return: () => Promise.resolve({ value: undefined, done: true }),
    }
  }

  // ---- receiving -------------------------------------------------------------------------------

  /** A datum decoded and valid: counted and buffered, unless its channel or the consumer is gone. */
  #accept(rx: Receiver, value: T, size: number): void {
    if (this.#closed || rx.cancelled) return
    rx.record.datums++
    rx.record.bytes += size
    this.#stats.datums++
    this.#stats.bytes += size
    this.#inbox.push(value)
  }

  /** A datum the codec or the schema refused: counted and reported, never delivered. */
  #invalid(rx: Receiver, err: unknown): void {
    this.#stats.invalid++
    const error = err instanceof Error ? err : new DecodeError(String(err))
    this.#host.log('invalid datum from %s: %s', rx.peerId, error.message)
    this.#events.emit('invalid', { peerId: rx.peerId, error })
  }

  // ---- producers -------------------------------------------------------------------------------

  /**
   * Reconciles the receivers with the catalog: subscribes to eligible producers, drops those that left,
   * stopped advertising or stopped passing `require`. A producer that refused us is retried only once
   * its entry or ours changed in content (periodic re-announcements change only the version).
   */
  onCatalog(catalog: Catalog): void {
    if (this.#closed) return
    let connectedEntryChanged = false
    for (const peer of catalog.peers()) {
      const rx = this.#receivers.get(peer.id)
      if (!peer.streams.has(this.streamId)) {
        if (rx) this.#drop(rx, 'producer stopped advertising the stream')
        this.#rejected.delete(peer.id)
      } else if (rx) {
        if (this.#refresh(rx, peer)) connectedEntryChanged = true
      } else {
        this.#subscribeIfEligible(peer, catalog)
      }
    }
    this.#forgetDeparted(catalog)
    if (connectedEntryChanged) this.#channelsChanged()
  }

  /**
   * Takes a subscribed producer's new entry, and drops it when it no longer passes `require` or its
   * tickets. True when the entry of a connected producer changed (conditions may now read otherwise).
   */
  #refresh(rx: Receiver, peer: PeerInfo): boolean {
    const previous = rx.record.peer
    rx.record.peer = peer
    if (!passesAll(this.#require, peer)) {
      this.#drop(rx, 'require no longer holds')
      return false
    }
    if (this.#tickets.status(peer.entry) === 'invalid') {
      this.#drop(rx, 'tickets no longer valid')
      return false
    }
    const connectedEntryChanged = peer.entry !== previous.entry && rx.record.state === ChannelState.Connected
    if (peer.startedAt !== previous.startedAt) this.#restarted(rx, peer)
    return connectedEntryChanged
  }

  /**
   * The producer's entry shows a new run (a restart). A link opened before that run began is to the
   * dead process, whose connection may take the transport's idle timeout to fail: cut it, and skip the
   * rest of any backoff wait.
   */
  #restarted(rx: Receiver, peer: PeerInfo): void {
    const link = rx.link
    if (link && !link.isClosed && (link.connection.timeline.open ?? 0) < peer.startedAt) {
      link.connection.abort(new Error('producer restarted'))
    }
    rx.wake()
  }

  /** Subscribes to a producer advertising the stream once it passes `require` and its tickets. */
  #subscribeIfEligible(peer: PeerInfo, catalog: Catalog): void {
    const approach = this.#approach(peer, catalog)
    if (approach === 'wait') return
    if (this.#probeRttFirst(peer)) return
    if (!passesAll(this.#require, peer)) return
    // A pending check calls onCatalog again when it is done.
    if (this.#tickets.status(peer.entry) !== 'valid') return
    this.#spawn(peer, approach === 'sync')
  }

  /**
   * How to approach a producer not subscribed to: 'wait' while it refused us and neither entry changed
   * since, 'sync' (catalogs first) when only ours did, else 'dial'.
   */
  #approach(peer: PeerInfo, catalog: Catalog): 'wait' | 'sync' | 'dial' {
    const rejection = this.#rejected.get(peer.id)
    if (!rejection) return 'dial'
    const producerChanged = rejection.anyNewerVersion
      ? compareVersions(peer.version, rejection.producer.version) > 0
      : rejection.producer.startedAt !== peer.startedAt || !rejection.producer.sameContent(peer.entry)
    const localChanged = !rejection.local.sameContent(catalog.local.entry)
    if (!producerChanged && !localChanged) return 'wait'
    this.#rejected.delete(peer.id)
    // Our entry changed (say, a new tag): make sure the producer has it before it judges us again.
    return producerChanged ? 'dial' : 'sync'
  }

  /**
   * Pings a producer whose RTT was never measured, once, so a `require` predicate such as `rttBelow`
   * sees a measurement. True when a ping went out: onCatalog runs again once it is done.
   */
  #probeRttFirst(peer: PeerInfo): boolean {
    if (this.#require.length === 0 || peer.rtt !== undefined || this.#probed.has(peer.id)) return false
    this.#probed.add(peer.id)
    this.#host.discovery
      .ping(peer.id)
      .catch(noop)
      .finally(() => this.onCatalog(this.#host.discovery.catalog()))
    return true
  }

  #spawn(peer: PeerInfo, syncFirst: boolean): void {
    const record = new ChannelRecord(this.streamId, peer.id, this.#host.ctx.peerId, peer)
    const rx = new Receiver(record, new Backoff(this.#backoff, () => this.#host.ctx.clock.now()), this.#owner)
    this.#receivers.set(peer.id, rx)
    this.#host.scope.spawn(rx.run(syncFirst))
  }

  /** Drops the receivers of producers gone from the catalog, and forgets what was kept about them. */
  #forgetDeparted(catalog: Catalog): void {
    for (const rx of [...this.#receivers.values()]) {
      if (!catalog.has(rx.peerId)) this.#drop(rx, 'producer left the catalog')
    }
    for (const id of [...this.#rejected.keys()]) if (!catalog.has(id)) this.#rejected.delete(id)
    for (const id of [...this.#probed]) if (!catalog.has(id)) this.#probed.delete(id)
    if (this.#tickets.required) this.#tickets.prune((id) => catalog.has(id))
  }

  /** Stops a receiver for a local reason (not a refusal): it may be recreated by a later catalog change. */
  #drop(rx: Receiver, reason: string): void {
    if (this.#receivers.get(rx.peerId) === rx) this.#receivers.delete(rx.peerId)
    rx.cancel(reason)
  }

  #connected(rx: Receiver): void {
    rx.record.state = ChannelState.Connected
    rx.record.connectedAt = this.#host.ctx.clock.now()
    this.#connectedSince ??= rx.record.connectedAt
    this.#channelsChanged()
    this.#events.emit('producer:connected', rx.record.info(this.#host.ctx.clock.now()))
  }

  #disconnected(rx: Receiver, close: LinkClose, retry: RetryPolicy): void {
    const wasConnected = rx.record.state === ChannelState.Connected
    rx.record.state = retry === 'none' ? ChannelState.Terminated : ChannelState.Connecting
    rx.record.lastClose = close
    if (wasConnected) {
      if (this.#connectedPeers().length === 0) this.#connectedSince = undefined
      this.#channelsChanged()
    }
    if (!this.#closed)
      this.#events.emit('producer:disconnected', {
        info: rx.record.info(this.#host.ctx.clock.now()),
        close,
        retry,
      })
  }

  /** Remembers a refusal so the pair is not retried until an entry changes. */
  #refused(rx: Receiver, anyNewerVersion: boolean): void {
    if (this.#receivers.get(rx.peerId) !== rx) return
    this.#receivers.delete(rx.peerId)
    const catalog = this.#host.discovery.catalog()
    this.#rejected.set(rx.peerId, {
      producer: catalog.get(rx.peerId)?.entry ?? rx.record.peer.entry,
      local: catalog.local.entry,
      anyNewerVersion,
    })
  }

  #connectedPeers(): PeerInfo[] {
    const out: PeerInfo[] = []
    for (const rx of this.#receivers.values()) {
      if (rx.record.state === ChannelState.Connected) out.push(rx.record.peer)
    }
    return out
  }

  #channelsChanged(): void {
    if (this.#closed) return
    this.#online = this.#onlineCondition.isMet
    this.#changes.set(this.#changes.value + 1)
  }

  // ---- closing ---------------------------------------------------------------------------------

  /**
   * Unsubscribes from every producer. Buffered datums are discarded, pending `recv()` calls reject with
   * ClosedError and `for await` loops end.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#tickets.close()
    for (const rx of [...this.#receivers.values()]) this.#drop(rx, 'consumer closed')
    this.#rejected.clear()
    const err = new ClosedError('consumer is closed')
    this.#inbox.close(err)
    this.#online = false
    this.#changes.close(err)
    this.#events.removeAllListeners()
    this.#host.release(this as Consumer<unknown>)
  }

  /** Closes the consumer, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

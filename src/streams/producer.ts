import type { AbortOptions } from '../primitives/abort.ts'
import type { DigestLike, StreamId } from '../primitives/digest.ts'
import { ClosedError } from '../primitives/errors.ts'
import type { TicketValidator } from '../tickets/ticket.ts'
import type { LinkClose } from '../transport/close.ts'
import type { ChannelInfo, PeerPredicate } from './channel.ts'
import type { ChannelConditions, When } from './conditions.ts'
import type { Sink } from './sink.ts'

export { Sink, type SinkHost } from './sink.ts'

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

/** The events a Producer emits, one per consumer channel change. */
export interface ProducerEvents {
  /** A consumer subscribed and its channel is connected. */
  'consumer:connected': ChannelInfo
  /** A consumer's channel ended. */
  'consumer:disconnected': {
    /** The channel as it ended. */
    info: ChannelInfo
    /** How it closed. */
    close: LinkClose
  }
  /** A consumer was refused at admission (NoCapacity, NotAllowed) or closed because `require` failed. */
  'consumer:rejected': {
    /** The consumer's peer id. */
    peerId: string
    /** The close code it was refused with (see CloseCode). */
    code: number
    /** Why, in words. */
    reason: string
  }
}

/**
 * The sending end of a stream on this node. Get one with `net.streams.producer(def, options)` (or
 * `getOrCreateProducer(def)`, which shares an existing one).
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
  /** The id of the stream this producer sends on. */
  readonly streamId: StreamId
  readonly #sink: Sink<T>
  #closed = false

  /** @internal Use `net.streams.producer()` or `getOrCreateProducer()`. */
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

  /** True once `close()` has been called on this handle. */
  get isClosed(): boolean {
    return this.#closed || this.#sink.closed
  }

  /** Counters of the fan-out (shared by every handle of this stream id). */
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

  /** Closes the handle, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

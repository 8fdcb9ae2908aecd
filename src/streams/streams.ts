import type { Discovery } from '../discovery/discovery.ts'
import { compareVersions } from '../discovery/entry.ts'
import { deadline as deadlineOf, linkSignals } from '../primitives/abort.ts'
import type { BackoffOptions } from '../primitives/backoff.ts'
import { toHex } from '../primitives/bytes.ts'
import { Digest, type StreamId } from '../primitives/digest.ts'
import { ClosedError } from '../primitives/errors.ts'
import type { Scope } from '../primitives/scope.ts'
import { CloseCode, closeCodeName } from '../transport/close.ts'
import type { Logger, MosaikLibp2p, NetworkContext } from '../transport/context.ts'
import { InboundLimit } from '../transport/limits.ts'
import { DEFAULT_MAX_FRAME_SIZE, type Link } from '../transport/link.ts'
import { Consumer, type ConsumerHost, type ConsumerOptions } from './consumer.ts'
import type { StreamDef } from './def.ts'
import { StreamAlreadyExistsError } from './errors.ts'
import { Producer, type ProducerOptions, Sink, type SinkHost } from './producer.ts'
import { parseHandshake, STREAMS_PROTOCOL } from './wire.ts'

/** Options of the streams subsystem, node-wide (`Network.create({ streams })`). */
export interface StreamsOptions {
  /** Default reconnect policy of this node's consumers (mosaik's defaults when omitted). */
  backoff?: BackoffOptions
  /**
   * How long a subscription handshake may take, on either side (default 5 s). A producer closes a
   * link whose handshake has not arrived by then with Timeout (408).
   *
   * When to use: raise it for consumers behind slow, lossy paths (a relayed browser on a phone).
   * Gotchas: it also bounds how long a producer holds the link of a lagging peer waiting for its
   * next turn (see `lagTimeoutMs`), and a consumer allows twice this for the whole handshake, since
   * the producer may ping it first.
   */
  handshakeTimeoutMs?: number
}

/**
 * Largest handshake a producer reads, in bytes. A handshake is about 80 bytes; a consumer never sends
 * payload after it, so this bounds all a subscriber may send over its link (larger: FrameTooLarge 413).
 */
export const MAX_HANDSHAKE_BYTES = 1024
/** Handshakes one peer may have in progress with this node at once; more get TooManyStreams (429). */
export const HANDSHAKES_PER_PEER = 8
/** Handshakes all peers together may have in progress with this node at once. */
export const HANDSHAKES_TOTAL = 256
/**
 * Handshakes the peers of one remote host may have in progress with this node at once (loopback is
 * not counted); more get TooManyStreams (429). A quarter of the total: a host may hold 32 connections
 * of minted identities, 8 handshakes each, so without it one host could stall every subscription.
 */
export const HANDSHAKES_PER_HOST = HANDSHAKES_TOTAL / 4

/**
 * What streams use of their node: identity, clock, and links on the streams protocol (Network passes
 * its context).
 */
export interface StreamsComponents
  extends Pick<
    NetworkContext,
    'networkId' | 'peerId' | 'clock' | 'scope' | 'log' | 'protocol' | 'linkOptions' | 'openLink' | 'handle'
  > {
  readonly libp2p: Pick<MosaikLibp2p, 'unhandle'>
}

/** Handshakes this node refused as a producer, by close-code name (UnknownPeer, NoCapacity...). */
export interface StreamsStats {
  /** Refusals by close-code name. */
  readonly refused: Readonly<Record<string, number>>
}

/**
 * Typed pub/sub between the nodes of a network (mosaik's streams), as `net.streams`.
 *
 * A producer advertises its stream id in this node's catalog entry; every consumer of that id on
 * other nodes finds it there, subscribes over its own link, and receives what the producer sends from
 * then on. Producers and consumers re-evaluate their `require` predicates whenever the catalog
 * changes, and consumers reconnect by themselves after faults.
 */
export class Streams {
  readonly #ctx: StreamsComponents
  readonly #discovery: Discovery
  readonly #scope: Scope
  readonly #log: Logger
  readonly #protocol: string
  readonly #handshakeTimeoutMs: number
  readonly #sinks = new Map<string, Sink<unknown>>()
  readonly #consumers = new Set<Consumer<unknown>>()
  readonly #sinkHost: SinkHost
  readonly #consumerHost: ConsumerHost
  readonly #refused: Record<string, number> = {}
  readonly #handshakes = new InboundLimit({
    perPeer: HANDSHAKES_PER_PEER,
    perHost: HANDSHAKES_PER_HOST,
    total: HANDSHAKES_TOTAL,
  })
  #stopped = false

  private constructor(ctx: StreamsComponents, discovery: Discovery, options: StreamsOptions) {
    this.#ctx = ctx
    this.#discovery = discovery
    this.#scope = ctx.scope.child()
    this.#log = ctx.log('streams')
    this.#protocol = ctx.protocol(STREAMS_PROTOCOL)
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? 5000
    this.#sinkHost = {
      ctx,
      discovery,
      log: this.#log,
      // A datum travels in a batch message: its varint length prefix takes at most 5 bytes.
      maxDatumBytes: (ctx.linkOptions.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE) - 5,
      handshakeTimeoutMs: this.#handshakeTimeoutMs,
      // The producers' own refusals (limits, capacity, require) count with the node's.
      refused: (code) => this.#count(code),
      release: (sink) => this.#releaseSink(sink),
    }
    this.#consumerHost = {
      ctx,
      discovery,
      log: this.#log,
      scope: this.#scope,
      protocol: this.#protocol,
      // The producer may ping an unmeasured consumer before admitting it: allow for that round trip.
      handshakeTimeoutMs: 2 * this.#handshakeTimeoutMs,
      backoff: options.backoff ?? {},
      release: (consumer) => this.#consumers.delete(consumer),
    }
  }

  /** Starts the subsystem for a network node; called by Network.create. */
  static async start(
    ctx: StreamsComponents,
    discovery: Discovery,
    options: StreamsOptions = {},
  ): Promise<Streams> {
    const streams = new Streams(ctx, discovery, options)
    // Whatever a subscriber sends beyond its handshake is refused: the link's receive budget is the
    // handshake's. (Credit grants are not payload and do not count.)
    await ctx.handle(streams.#protocol, (link) => streams.#accept(link), {
      link: { maxReceiveBytes: MAX_HANDSHAKE_BYTES },
    })
    streams.#scope.spawn(streams.#watchCatalog())
    return streams
  }

  /** Counters of the handshakes this node refused as a producer. */
  get stats(): StreamsStats {
    return { refused: { ...this.#refused } }
  }

  /**
   * Creates the producer of `def` on this node and advertises its stream id. Throws
   * StreamAlreadyExistsError (code 'ALREADY_EXISTS', carrying a handle on the existing producer) when
   * this node already produces that id: options apply only to the producer that creates the stream.
   */
  producer<T>(def: StreamDef<T>, options: ProducerOptions<T> = {}): Producer<T> {
    this.#checkOpen()
    const streamId = options.streamId === undefined ? def.streamId : Digest.from(options.streamId)
    const key = streamId.toString()
    const existing = this.#sinks.get(key)
    if (existing) throw new StreamAlreadyExistsError(streamId, new Producer(existing as Sink<T>))
    const sink = new Sink<T>(this.#sinkHost, streamId, def.codec, options)
    this.#sinks.set(key, sink as Sink<unknown>)
    this.#advertise(streamId)
    return new Producer(sink)
  }

  /**
   * A handle on this node's producer of `def`, creating it with default options if there is none
   * (where `producer` throws StreamAlreadyExistsError).
   */
  getOrCreateProducer<T>(def: StreamDef<T>): Producer<T> {
    this.#checkOpen()
    const existing = this.#sinks.get(def.streamId.toString())
    return existing ? new Producer(existing as Sink<T>) : this.producer(def)
  }

  /**
   * Creates a consumer of `def`: it subscribes to every eligible producer of the stream in the catalog,
   * now and as they come and go. Several consumers of one stream on one node are independent.
   */
  consumer<T>(def: StreamDef<T>, options: ConsumerOptions = {}): Consumer<T> {
    this.#checkOpen()
    const streamId = options.streamId === undefined ? def.streamId : Digest.from(options.streamId)
    const consumer = new Consumer<T>(this.#consumerHost, streamId, def.codec, def.schema, options)
    this.#consumers.add(consumer as Consumer<unknown>)
    consumer.onCatalog(this.#discovery.catalog())
    return consumer
  }

  /** Closes every producer (consumers get GracefulShutdown) and consumer of this node. */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    for (const sink of this.#sinks.values()) sink.close(CloseCode.GracefulShutdown)
    this.#sinks.clear()
    await Promise.all([...this.#consumers].map((c) => c.close()))
    await this.#ctx.libp2p.unhandle(this.#protocol).catch(() => {})
    await this.#scope.close()
  }

  #checkOpen(): void {
    if (this.#stopped) throw new ClosedError('the network is closed')
  }

  /** Adds or removes the stream id in the local entry, whichever matches the registry when it runs. */
  #advertise(streamId: StreamId): Promise<void> {
    const key = streamId.toString()
    return this.#discovery
      .updateLocal((entry) =>
        this.#sinks.has(key)
          ? { streams: entry.streams.with([streamId]) }
          : { streams: entry.streams.without([streamId]) },
      )
      .catch((err) => this.#log('advertising stream %s failed: %s', streamId.short(), (err as Error).message))
  }

  async #releaseSink(sink: Sink<unknown>): Promise<void> {
    const key = sink.streamId.toString()
    if (this.#sinks.get(key) === sink) this.#sinks.delete(key)
    sink.close(CloseCode.GracefulShutdown)
    // mosaik never withdraws a stream id; here the last producer takes it out of the entry.
    if (!this.#stopped) await this.#advertise(sink.streamId)
  }

  // ---- accepting subscriptions -----------------------------------------------------------------

  /**
   * The producer side of the handshake (the order of checks is documented in wire.ts). The handshake
   * must arrive within the handshake timeout (else Timeout 408) and fit MAX_HANDSHAKE_BYTES (else
   * FrameTooLarge 413), and one peer may have HANDSHAKES_PER_PEER in progress, one remote host
   * HANDSHAKES_PER_HOST (else TooManyStreams).
   */
  async #accept(link: Link): Promise<void> {
    const slot = this.#handshakes.enter(link.remotePeer, link.connection.remoteAddr)
    if (!slot.ok) {
      const from = slot.reached === 'host' ? 'from this host' : 'in progress'
      return this.#refuse(link, CloseCode.TooManyStreams, `too many handshakes ${from}`)
    }
    const release = slot.release
    let message: unknown
    const deadline = deadlineOf(this.#handshakeTimeoutMs, this.#scope)
    const linked = linkSignals(this.#scope.signal, deadline.signal)
    try {
      message = await link.recv({ signal: linked.signal })
    } catch {
      release()
      if (link.closeInfo?.remote) return
      // The link closes an oversized or malformed handshake itself (FrameTooLarge, ProtocolViolation).
      if (!link.isClosed) {
        if (deadline.signal.aborted) link.beginClose(CloseCode.Timeout, 'no handshake in time')
        else link.beginClose(CloseCode.GracefulShutdown, 'node closing')
      }
      this.#count(link.closeInfo?.code ?? CloseCode.Timeout)
      return
    } finally {
      linked.clear()
      deadline.clear()
    }
    release()
    const parsed = parseHandshake(message, this.#ctx.networkId)
    if (!parsed.ok) return this.#refuse(link, parsed.code, parsed.reason)
    const peer = this.#discovery.catalog().get(link.remotePeer)
    if (!peer) return this.#refuse(link, CloseCode.UnknownPeer, 'unknown peer: sync catalogs first')
    const claimed = parsed.handshake.entry
    if (claimed && compareVersions(claimed, peer.entry.version) > 0) {
      return this.#refuse(link, CloseCode.UnknownPeer, 'stale entry of the consumer: sync catalogs first')
    }
    const sink = this.#sinks.get(toHex(parsed.handshake.stream))
    if (!sink) return this.#refuse(link, CloseCode.StreamNotFound, 'this node does not produce that stream')
    await sink.admit(link, peer)
  }

  #refuse(link: Link, code: number, reason: string): void {
    this.#count(code)
    this.#log('refused a subscription from %s: %s', link.remotePeer, reason)
    link.beginClose(code, reason)
  }

  #count(code: number): void {
    const name = closeCodeName(code)
    this.#refused[name] = (this.#refused[name] ?? 0) + 1
  }

  /** Hands every catalog change to the producers (require) and consumers (which producers to use). */
  #watchCatalog(): Promise<void> {
    return this.#discovery.followCatalog(
      (catalog) => {
        for (const sink of this.#sinks.values()) sink.onCatalog(catalog)
        for (const consumer of this.#consumers) consumer.onCatalog(catalog)
      },
      { signal: this.#scope.signal },
    )
  }
}

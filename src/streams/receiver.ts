import type { PeerEntry } from '../discovery/entry.ts'
import { deadline as deadlineOf, delay, linkSignals } from '../primitives/abort.ts'
import type { Backoff } from '../primitives/backoff.ts'
import type { StreamId } from '../primitives/digest.ts'
import { ClosedError } from '../primitives/errors.ts'
import { CloseCode, type LinkClose } from '../transport/close.ts'
import { Link } from '../transport/link.ts'
import type { ChannelRecord } from './channel.ts'
import type { ConsumerHost, RetryPolicy } from './consumer.ts'
import { handshakeMessage, isStartStream } from './wire.ts'

const noop = () => {}

/**
 * Close codes after which retrying the same producer is pointless until something changes: it refused
 * us, it is shutting down, or one of us speaks the protocol wrongly.
 */
const FINAL_CODES: ReadonlySet<number> = new Set([
  CloseCode.Success,
  CloseCode.GracefulShutdown,
  CloseCode.DifferentNetwork,
  CloseCode.ProtocolViolation,
  CloseCode.UnsupportedVersion,
  CloseCode.StreamNotAllowed,
  CloseCode.StreamNotFound,
])

/**
 * A producer not to retry until an entry changes. Refusals (NotAllowed...) wait for a change of
 * content: periodic re-announcements only bump versions. A producer that closed the stream or did not
 * have it (GracefulShutdown, StreamNotFound) still advertised it in the entry we hold, so that entry is
 * stale: any newer version of it is worth a retry.
 */
export interface Rejection {
  producer: PeerEntry
  local: PeerEntry
  anyNewerVersion: boolean
}

const STALE_ENTRY_CODES: ReadonlySet<number> = new Set([
  CloseCode.Success,
  CloseCode.GracefulShutdown,
  CloseCode.StreamNotFound,
])

/** What a receiver's sessions need from their consumer. */
export interface ReceiverOwner {
  readonly host: ConsumerHost
  readonly streamId: StreamId
  /** The handshake succeeded: the channel is up. */
  connected(rx: Receiver): void
  /** Reads batches off the link until it closes or the receiver is cancelled. */
  read(rx: Receiver, link: Link): Promise<void>
  /** A channel ended or an attempt failed; `retry` says what comes next. */
  disconnected(rx: Receiver, close: LinkClose, retry: RetryPolicy): void
  /** The producer refused us for good: remember it so the pair is not retried until an entry changes. */
  refused(rx: Receiver, anyNewerVersion: boolean): void
}

/** The consumer's side of one producer: a reconnecting session loop. */
export class Receiver {
  readonly record: ChannelRecord
  readonly backoff: Backoff
  readonly #owner: ReceiverOwner
  readonly #abort = new AbortController()
  link: Link | undefined
  /** Data arrived since the last fault: the backoff starts over. */
  gotData = false
  #wake: AbortController | undefined

  constructor(record: ChannelRecord, backoff: Backoff, owner: ReceiverOwner) {
    this.record = record
    this.backoff = backoff
    this.#owner = owner
  }

  get peerId(): string {
    return this.record.peerId
  }

  get signal(): AbortSignal {
    return this.#abort.signal
  }

  get cancelled(): boolean {
    return this.#abort.signal.aborted
  }

  cancel(reason: string): void {
    if (this.cancelled) return
    this.#abort.abort(new ClosedError(reason))
    this.link?.beginClose(CloseCode.Success, reason)
  }

  /** Waits `ms` unless woken (the producer restarted) or cancelled. */
  async sleep(ms: number): Promise<void> {
    const wake = new AbortController()
    this.#wake = wake
    const linked = linkSignals(this.signal, wake.signal)
    await delay(ms, linked.signal).catch(noop)
    linked.clear()
    this.#wake = undefined
  }

  /** Cuts a backoff wait short. */
  wake(): void {
    this.#wake?.abort()
  }

  /** Sessions with one producer until cancelled or refused for good. */
  async run(syncFirst: boolean): Promise<void> {
    const owner = this.#owner
    const discovery = owner.host.discovery
    if (syncFirst) await discovery.syncWith(this.peerId, { signal: this.signal }).catch(noop)
    let syncedForUnknown = false
    while (!this.cancelled) {
      const close = await this.#session()
      this.link = undefined
      if (this.cancelled) {
        owner.disconnected(this, close, 'none')
        return
      }
      if (this.gotData) {
        this.gotData = false
        this.backoff.reset()
        syncedForUnknown = false
      }
      let retry: RetryPolicy
      let wait: number | undefined = 0
      if (FINAL_CODES.has(close.code)) retry = 'none'
      else if (close.code === CloseCode.UnknownPeer && !syncedForUnknown) retry = 'sync'
      else {
        wait = this.backoff.next()
        retry = wait === undefined ? 'none' : 'backoff'
      }
      owner.disconnected(this, close, retry)
      if (retry === 'none') {
        owner.refused(this, STALE_ENTRY_CODES.has(close.code))
        return
      }
      if (retry === 'sync') {
        // The producer does not know us yet: hand it our entry through a catalog sync, then retry.
        syncedForUnknown = true
        await discovery.syncWith(this.peerId, { signal: this.signal }).catch(noop)
      } else {
        await this.sleep(wait!)
      }
    }
  }

  /** One connection: dial, handshake, then read until the link closes. Returns how it closed. */
  async #session(): Promise<LinkClose> {
    const owner = this.#owner
    const deadline = deadlineOf(owner.host.handshakeTimeoutMs, owner.host.scope)
    let connected: Link | LinkClose
    const linked = linkSignals(this.signal, deadline.signal)
    try {
      connected = await this.#connect(linked.signal)
    } finally {
      linked.clear()
      deadline.clear()
    }
    if (!(connected instanceof Link)) return connected
    const link = connected
    owner.connected(this)
    await owner.read(this, link)
    if (!link.closeInfo) link.beginClose(CloseCode.Success, 'consumer closed')
    return link.closeInfo ?? { code: CloseCode.UnexpectedClose, reason: 'link ended', remote: false }
  }

  /** Dials and handshakes within `signal`: the link ready to read, or how it closed. */
  async #connect(signal: AbortSignal): Promise<Link | LinkClose> {
    const owner = this.#owner
    const { ctx } = owner.host
    let link: Link
    try {
      link = await ctx.openLink(this.peerId, owner.host.protocol, { signal })
    } catch (err) {
      return {
        code: CloseCode.UnexpectedClose,
        reason: `dial failed: ${(err as Error).message}`,
        remote: false,
      }
    }
    this.link = link
    if (this.cancelled) {
      link.beginClose(CloseCode.Success, 'consumer closed')
      return link.closeInfo!
    }
    try {
      const entry = owner.host.discovery.me().entry.version
      await link.send(handshakeMessage(ctx.networkId, owner.streamId, entry), { signal })
      const start = await link.recv({ signal })
      if (!isStartStream(start, ctx.networkId, owner.streamId)) {
        link.beginClose(CloseCode.ProtocolViolation, 'expected StartStream')
        return link.closeInfo!
      }
    } catch (err) {
      if (link.closeInfo) return link.closeInfo
      link.abort('handshake failed')
      return {
        code: CloseCode.UnexpectedClose,
        reason: `handshake: ${(err as Error).message}`,
        remote: false,
      }
    }
    return link
  }
}

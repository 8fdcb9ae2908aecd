import type { Connection, Stream } from '@libp2p/interface'
import * as varint from 'uint8-varint'
import { Uint8ArrayList } from 'uint8arraylist'
import { type AbortOptions, abortable } from '../primitives/abort.ts'
import { decodeCanonical, encodeCanonicalShared } from '../primitives/codec.ts'
import { FrameTooLargeError } from '../primitives/errors.ts'
import { Fifo } from '../primitives/fifo.ts'
import { systemTimers, type Timers } from '../primitives/time.ts'
import { CloseCode, type LinkClose, LinkClosedError } from './close.ts'
import { FrameDecoder } from './frame-decoder.ts'

/**
 * A Link is a framed, flow-controlled, bidirectional channel over one libp2p stream. Every protocol
 * of the SDK (catalog sync, ping, stream subscriptions, group bonds) speaks through one.
 *
 * Wire format: each frame is `varint(length) ‖ kind ‖ body`, where kind is
 * - 0 MESSAGE: an application payload (canonical CBOR, or raw bytes for stream datums);
 * - 1 CLOSE: `[code, reason]`, the last frame a side sends, so the peer learns why;
 * - 2 CREDIT: `varint(consumed) ‖ varint(growth)`: the sender of the credit has read `consumed` more
 *   payload bytes and widened its window by `growth` (absent = 0); the receiver may send both more.
 *
 * Why credit: libp2p gives no usable receive-side backpressure on every transport (QUIC ignores pause()
 * and aborts a stream once 4 MiB sit unread). Each side may send at most `INITIAL_CREDIT` payload bytes
 * plus what the other side has granted, so a reader that stops reading stops its writer instead of
 * buffering without bound. A frame may overshoot the remaining credit once, so frames larger than the
 * window still pass.
 *
 * Why the window starts small and grows: a link costs its writer a window of data before it can tell
 * a reader that never reads from one that does. The window starts at 64 KiB and grows by what the
 * reader consumes (doubling per window read, like TCP's slow start) up to `MAX_WINDOW`, so a reader
 * that keeps up reaches the full window within a few grants and one that never reads costs 64 KiB.
 * Grants say how much was read apart from how much the window grew, so a writer knows how far its
 * reader got (`remoteConsumed`): that is how a producer tells a consumer that has read its data from
 * one that only read the handshake.
 */
export interface LinkOptions {
  /** Largest payload accepted or sent, in bytes. Default 4 MiB. */
  maxFrameSize?: number
  /** Bytes buffered in the transport before send() waits. Default 1 MiB. */
  writeHighWaterMark?: number
  /** How long close() waits for the remote to finish before resetting the stream. Default 2 s. */
  lingerMs?: number
  /**
   * Most payload bytes the link accepts over its whole life; past it the link closes with
   * FrameTooLarge. Default: no limit. When to use: request/response protocols whose whole exchange
   * has a known bound (catalog sync, ping), so a peer cannot keep one stream busy forever.
   */
  maxReceiveBytes?: number
  /** The timers close() lingers with. Default: the system's. */
  timers?: Timers
}

export const DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024
/** Payload bytes each side may send before the first grant: the receive window a link starts with. */
export const INITIAL_CREDIT = 64 * 1024
/** The receive window a reader that keeps up grows to. */
export const MAX_WINDOW = 1024 * 1024
const DEFAULT_WRITE_HWM = 1024 * 1024

const KIND_MESSAGE = 0
const KIND_CLOSE = 1
const KIND_CREDIT = 2

interface PendingSend {
  payload: Uint8Array
  resolve(): void
  reject(err: Error): void
}

interface PendingRead {
  resolve(payload: Uint8Array): void
  reject(err: Error): void
}

export class Link {
  readonly stream: Stream
  readonly connection: Connection
  /** The remote peer id (base58 string). */
  readonly remotePeer: string

  #maxFrameSize: number
  readonly #writeHwm: number
  readonly #lingerMs: number
  readonly #timers: Timers
  readonly #maxReceiveBytes: number
  /** Largest frame body accepted: the frame size, or less on a link with a small receive budget. */
  #receiveFrameLimit = 0
  readonly #decoder: FrameDecoder
  #bytesReceived = 0

  /** Payload bytes we may still send. */
  #credit = INITIAL_CREDIT
  /** Payload bytes the remote may still send us. */
  #remoteCredit = INITIAL_CREDIT
  /** Payload bytes consumed by our reader and not yet granted back. */
  #consumed = 0
  /** Our receive window: what the remote may have in flight to us. Grows as our reader consumes. */
  #window = INITIAL_CREDIT
  /** Payload bytes sent so far. */
  #bytesSent = 0
  /** Payload bytes the remote says it has read, of those we sent. */
  #remoteConsumed = 0

  readonly #inbox = new Fifo<Uint8Array>()
  readonly #readers = new Fifo<PendingRead>()
  readonly #sendQueue = new Fifo<PendingSend>()
  /** Payload bytes in `#sendQueue`. */
  #queuedBytes = 0

  #outChunks: Uint8Array[] = []
  #outBytes = 0
  #flushScheduled = false

  #close: LinkClose | undefined
  #closing: Promise<void> | undefined
  readonly #closed: Promise<LinkClose>
  readonly #resolveClosed: (c: LinkClose) => void

  constructor(stream: Stream, connection: Connection, options: LinkOptions = {}) {
    this.stream = stream
    this.connection = connection
    this.remotePeer = connection.remotePeer.toString()
    this.#maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    this.#writeHwm = options.writeHighWaterMark ?? DEFAULT_WRITE_HWM
    this.#lingerMs = options.lingerMs ?? 2000
    this.#timers = options.timers ?? systemTimers
    this.#maxReceiveBytes = options.maxReceiveBytes ?? Number.POSITIVE_INFINITY
    this.#decoder = new FrameDecoder(this.#frameLimits())
    const { promise, resolve } = Promise.withResolvers<LinkClose>()
    this.#closed = promise
    this.#resolveClosed = resolve

    stream.addEventListener('message', this.#onData)
    stream.addEventListener('drain', this.#pump)
    stream.addEventListener('idle', this.#pump)
    stream.addEventListener('remoteCloseWrite', this.#onRemoteEnd)
    stream.addEventListener('close', this.#onStreamClose)
  }

  /**
   * Changes the largest payload this link sends and accepts from now on. When to use: a protocol whose
   * handshake is small accepts its links with a small `maxFrameSize`, so a peer that has proven
   * nothing cannot make it buffer a large frame, and raises it once the handshake passed (the peer
   * must wait to hear so before it sends larger frames).
   */
  setMaxFrameSize(bytes: number): void {
    this.#maxFrameSize = bytes
    this.#decoder.setLimits(this.#frameLimits())
  }

  /**
   * The decoder's limits. A frame larger than the whole receive budget can never be accepted: refuse
   * it at its length prefix instead of buffering it (room is left for control frames: credit, a close
   * reason).
   */
  #frameLimits(): { maxDataLength: number; maxBufferSize: number } {
    this.#receiveFrameLimit = Math.min(this.#maxFrameSize, this.#maxReceiveBytes + 1024)
    return { maxDataLength: this.#receiveFrameLimit + 1, maxBufferSize: this.#receiveFrameLimit + 64 * 1024 }
  }

  /** Resolves once the link has closed, from either side, with the code and reason. */
  get closed(): Promise<LinkClose> {
    return this.#closed
  }

  /** How the link closed, or undefined while it is open. */
  get closeInfo(): LinkClose | undefined {
    return this.#close
  }

  get isClosed(): boolean {
    return this.#close !== undefined
  }

  /** Frames waiting for credit or transport capacity. */
  get queuedSends(): number {
    return this.#sendQueue.length
  }

  /** Payload bytes of those frames. */
  get queuedSendBytes(): number {
    return this.#queuedBytes
  }

  /** Received frames not yet read. */
  get queuedReceives(): number {
    return this.#inbox.length
  }

  /** Payload bytes sent so far. */
  get bytesSent(): number {
    return this.#bytesSent
  }

  /**
   * Payload bytes the remote has read, of those this side sent, as its grants report them (it grants
   * in quarters of its window, so this trails what it read by up to a quarter window). A remote that
   * never reads leaves it where it was.
   */
  get remoteConsumed(): number {
    return this.#remoteConsumed
  }

  /** This side's receive window in bytes: INITIAL_CREDIT at first, growing to MAX_WINDOW. */
  get receiveWindow(): number {
    return this.#window
  }

  /** Payload bytes received so far. */
  get bytesReceived(): number {
    return this.#bytesReceived
  }

  // ---- sending ---------------------------------------------------------------------------------

  /** Encodes `value` as canonical CBOR and sends it. */
  send(value: unknown, options?: AbortOptions): Promise<void> {
    // Bytes in a shared slab: handed to the transport now, or copied before they wait for credit.
    return this.#send(encodeCanonicalShared(value), options, true)
  }

  /**
   * Sends one payload. Resolves once the frame is handed to the transport, in order; waits while the
   * remote has granted no credit or the transport buffer is above its high-water mark.
   */
  sendBytes(payload: Uint8Array, options?: AbortOptions): Promise<void> {
    return this.#send(payload, options, false)
  }

  #send(payload: Uint8Array, options: AbortOptions | undefined, shared: boolean): Promise<void> {
    if (this.#close) return Promise.reject(new LinkClosedError(this.#close))
    if (payload.length > this.#maxFrameSize) {
      return Promise.reject(new FrameTooLargeError(payload.length, this.#maxFrameSize))
    }
    if (this.#sendQueue.length === 0 && this.#canWrite()) {
      this.#writeMessage(payload)
      return Promise.resolve()
    }
    // A shared slab must not stay pinned while a slow reader holds back the credit.
    if (shared) payload = payload.slice()
    return abortable<void>(options?.signal, (resolve, reject) => {
      const pending: PendingSend = { payload, resolve, reject }
      this.#sendQueue.push(pending)
      this.#queuedBytes += payload.length
      return () => {
        if (this.#sendQueue.remove(pending)) this.#queuedBytes -= pending.payload.length
      }
    })
  }

  #canWrite(): boolean {
    return this.#credit > 0 && this.stream.writeBufferLength + this.#outBytes < this.#writeHwm
  }

  #writeMessage(payload: Uint8Array): void {
    this.#credit -= payload.length
    this.#bytesSent += payload.length
    this.#writeFrame(KIND_MESSAGE, payload)
  }

  #writeFrame(kind: number, body: Uint8Array): void {
    const header = new Uint8Array(varint.encodingLength(body.length + 1) + 1)
    varint.encode(body.length + 1, header, 0)
    header[header.length - 1] = kind
    this.#outChunks.push(header)
    if (body.length > 0) this.#outChunks.push(body)
    this.#outBytes += header.length + body.length
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      queueMicrotask(this.#flush)
    }
  }

  /** Hands every frame written in this turn to the transport in one send() call. */
  readonly #flush = (): void => {
    this.#flushScheduled = false
    if (this.#outChunks.length === 0) return
    const chunks = this.#outChunks
    this.#outChunks = []
    this.#outBytes = 0
    if (this.stream.writeStatus !== 'writable') return
    try {
      this.stream.send(chunks.length === 1 ? chunks[0]! : new Uint8ArrayList(...chunks))
    } catch (err) {
      this.#finish({ code: CloseCode.UnexpectedClose, reason: (err as Error).message, remote: true })
    }
  }

  readonly #pump = (): void => {
    while (this.#sendQueue.length > 0 && !this.#close && this.#canWrite()) {
      const next = this.#sendQueue.shift()!
      this.#queuedBytes -= next.payload.length
      this.#writeMessage(next.payload)
      next.resolve()
    }
  }

  // ---- receiving -------------------------------------------------------------------------------

  /** Receives the next payload and decodes it as canonical CBOR; a malformed payload closes the link. */
  async recv(options?: AbortOptions): Promise<unknown> {
    const bytes = await this.recvBytes(options)
    try {
      return decodeCanonical(bytes)
    } catch (err) {
      this.beginClose(CloseCode.ProtocolViolation, 'malformed message')
      throw err
    }
  }

  /** Receives the next payload; rejects with LinkClosedError once the link has closed. */
  recvBytes(options?: AbortOptions): Promise<Uint8Array> {
    const next = this.tryRecvBytes()
    if (next) return Promise.resolve(next)
    if (this.#close) return Promise.reject(new LinkClosedError(this.#close))
    return abortable<Uint8Array>(options?.signal, (resolve, reject) => {
      const pending: PendingRead = { resolve, reject }
      this.#readers.push(pending)
      return () => this.#readers.remove(pending)
    })
  }

  /** The next payload if one has arrived, else undefined. */
  tryRecvBytes(): Uint8Array | undefined {
    const payload = this.#inbox.shift()
    if (payload === undefined) return undefined
    this.#consume(payload.length)
    return payload
  }

  /** Payloads until the link closes; ends quietly on a graceful close, throws on an error close. */
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    while (true) {
      try {
        yield await this.recvBytes()
      } catch (err) {
        if (err instanceof LinkClosedError && isCleanClose(err.closeCode)) return
        throw err
      }
    }
  }

  /**
   * Counts what the reader consumed and grants it back in quarters of the window. Each grant also
   * widens the window by what was consumed, up to MAX_WINDOW.
   */
  #consume(bytes: number): void {
    this.#consumed += bytes
    if (this.#close || this.#consumed < this.#window / 4) return
    const consumed = this.#consumed
    const growth = Math.min(consumed, MAX_WINDOW - this.#window)
    this.#window += growth
    this.#consumed = 0
    this.#remoteCredit += consumed + growth
    const body = new Uint8Array(varint.encodingLength(consumed) + varint.encodingLength(growth))
    varint.encode(consumed, body, 0)
    varint.encode(growth, body, varint.encodingLength(consumed))
    this.#writeFrame(KIND_CREDIT, body)
  }

  readonly #onData = (evt: { data: Uint8Array | Uint8ArrayList }): void => {
    if (this.#close) return
    try {
      for (const frame of this.#decoder.decode(evt.data)) {
        this.#onFrame(frame.subarray())
        if (this.#close) return
      }
    } catch (err) {
      // The decoder refuses a length prefix over the limit, and a buffer that outgrows it.
      const name = (err as Error).name
      const tooLarge = name === 'InvalidMessageLengthError' || name === 'InvalidParametersError'
      this.beginClose(
        tooLarge ? CloseCode.FrameTooLarge : CloseCode.ProtocolViolation,
        tooLarge ? `frame over ${this.#receiveFrameLimit} bytes` : `bad framing: ${(err as Error).message}`,
      )
    }
  }

  #onFrame(frame: Uint8Array): void {
    const kind = frame[0]
    const body = frame.subarray(1)
    switch (kind) {
      case KIND_MESSAGE: {
        if (this.#remoteCredit <= 0) {
          this.beginClose(CloseCode.ProtocolViolation, 'sent beyond granted credit')
          return
        }
        this.#remoteCredit -= body.length
        this.#bytesReceived += body.length
        if (this.#bytesReceived > this.#maxReceiveBytes) {
          this.beginClose(CloseCode.FrameTooLarge, `over ${this.#maxReceiveBytes} bytes in total`)
          return
        }
        const reader = this.#readers.shift()
        if (reader) {
          this.#consume(body.length)
          reader.resolve(body)
        } else {
          this.#inbox.push(body)
        }
        return
      }
      case KIND_CLOSE: {
        let code: number = CloseCode.ProtocolViolation
        let reason = 'malformed close frame'
        try {
          const decoded = decodeCanonical(body)
          if (Array.isArray(decoded) && typeof decoded[0] === 'number' && typeof decoded[1] === 'string') {
            code = decoded[0]
            reason = decoded[1]
          }
        } catch {}
        this.#finish({ code, reason, remote: true })
        this.stream.close().catch(() => {})
        return
      }
      case KIND_CREDIT: {
        let consumed: number
        let growth = 0
        try {
          consumed = varint.decode(body)
          const at = varint.encodingLength(consumed)
          if (at < body.length) growth = varint.decode(body, at)
        } catch {
          this.beginClose(CloseCode.ProtocolViolation, 'malformed credit frame')
          return
        }
        // A remote cannot have read more than was sent: what it claims beyond that is not believed.
        this.#remoteConsumed = Math.min(this.#bytesSent, this.#remoteConsumed + consumed)
        this.#credit += consumed + growth
        this.#pump()
        return
      }
      default:
        this.beginClose(CloseCode.ProtocolViolation, `unknown frame kind ${kind}`)
    }
  }

  readonly #onRemoteEnd = (): void => {
    // A peer that ends its side without a CLOSE frame did not shut down cleanly.
    if (!this.#close) this.#finish({ code: CloseCode.UnexpectedClose, reason: 'stream ended', remote: true })
  }

  readonly #onStreamClose = (evt: Event & { error?: Error }): void => {
    if (!this.#close) {
      this.#finish({
        code: CloseCode.UnexpectedClose,
        reason: evt.error?.message ?? 'stream closed',
        remote: true,
      })
    }
    this.#detach()
  }

  // ---- closing ---------------------------------------------------------------------------------

  /**
   * Closes the link, telling the remote why. Resolves once the stream has closed: the close frame is
   * flushed, and the stream is reset if the remote does not finish within the linger time. A second
   * call while a close is under way waits for that one (so a failing handler never resets the stream
   * under its own close frame).
   */
  close(code: number = CloseCode.Success, reason = ''): Promise<void> {
    if (this.#closing) return this.#closing
    if (this.#close) return Promise.resolve()
    this.#closing = this.#closeNow(code, reason)
    return this.#closing
  }

  async #closeNow(code: number, reason: string): Promise<void> {
    this.#finish({ code, reason, remote: false })
    this.#writeFrame(KIND_CLOSE, encodeCanonicalShared([code, reason]))
    this.#flush()
    if (this.stream.status !== 'open') return
    // The remote answers our CLOSE by ending its side; reset the stream if it never does. The same
    // timer gives up on a close() that does not finish.
    const gaveUp = new AbortController()
    const cancelLinger = this.#timers.setTimeout(() => {
      gaveUp.abort(new Error('remote did not finish closing'))
      this.stream.abort(new Error('remote did not finish closing'))
    }, this.#lingerMs)
    this.stream.addEventListener('close', cancelLinger, { once: true })
    try {
      await this.stream.close({ signal: gaveUp.signal })
    } catch {
      cancelLinger()
      this.stream.abort(new Error('close failed'))
    }
  }

  /** Starts `close` and returns at once: no waiting, no failure reported (for event handlers). */
  beginClose(code: number, reason = ''): void {
    this.close(code, reason).catch(() => {})
  }

  /**
   * Resets the stream at once, without a close frame. While a close is under way this does nothing:
   * that close flushes its frame and resets the stream itself if the remote lingers.
   */
  abort(reason = 'aborted'): void {
    if (this.#closing) return
    if (!this.#close) this.#finish({ code: CloseCode.Cancelled, reason, remote: false })
    this.stream.abort(new Error(reason))
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  #finish(close: LinkClose): void {
    if (this.#close) return
    this.#close = close
    const err = new LinkClosedError(close)
    for (const r of this.#readers) r.reject(err)
    this.#readers.clear()
    for (const s of this.#sendQueue) s.reject(err)
    this.#sendQueue.clear()
    this.#queuedBytes = 0
    this.#resolveClosed(close)
  }

  #detach(): void {
    this.stream.removeEventListener('message', this.#onData)
    this.stream.removeEventListener('drain', this.#pump)
    this.stream.removeEventListener('idle', this.#pump)
    this.stream.removeEventListener('remoteCloseWrite', this.#onRemoteEnd)
    this.stream.removeEventListener('close', this.#onStreamClose as (e: Event) => void)
  }
}

/** Close codes that mean "finished on purpose", as opposed to a fault. */
export function isCleanClose(code: number): boolean {
  return code === CloseCode.Success || code === CloseCode.GracefulShutdown
}

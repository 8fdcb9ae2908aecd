import type { StandardSchemaV1 } from '@standard-schema/spec'
import { raceSignal } from '../primitives/abort.ts'
import type { Codec } from '../primitives/codec.ts'
import { DecodeError } from '../primitives/errors.ts'
import { CloseCode } from '../transport/close.ts'
import type { Link } from '../transport/link.ts'
import type { Inbox } from './inbox.ts'
import type { Receiver } from './receiver.ts'
import { unpackBatch } from './wire.ts'

const noop = () => {}

/** Where a DatumReader hands each datum: accepted (decoded and valid) or refused. */
export interface DatumOutlet<T> {
  /** A datum decoded and valid; `size` is its encoded length. */
  accept(rx: Receiver, value: T, size: number): void
  /** A datum the codec or the schema refused. */
  invalid(rx: Receiver, err: unknown): void
}

/**
 * A consumer's reading of its producers' links: batches off each link while the inbox has room, split
 * into datums, decoded and validated in order per producer.
 */
export class DatumReader<T> {
  readonly #inbox: Inbox<T>
  readonly #codec: Codec<T>
  readonly #schema: StandardSchemaV1<unknown, T> | undefined
  readonly #outlet: DatumOutlet<T>

  constructor(
    inbox: Inbox<T>,
    codec: Codec<T>,
    schema: StandardSchemaV1<unknown, T> | undefined,
    outlet: DatumOutlet<T>,
  ) {
    this.#inbox = inbox
    this.#codec = codec
    this.#schema = schema
    this.#outlet = outlet
  }

  /** Reads batches off one link while the buffer has room; the link's credit does the rest. */
  async read(rx: Receiver, link: Link): Promise<void> {
    while (!rx.cancelled) {
      if (this.#inbox.full) {
        // A closed link ends the session even while the buffer is full: the channel state must say
        // so, and the reconnect policy must run, whether or not the application reads.
        if (link.isClosed) return
        await raceSignal(Promise.race([this.#inbox.room(), link.closed]), rx.signal).catch(noop)
        continue
      }
      let batch = link.tryRecvBytes()
      if (batch === undefined) {
        try {
          batch = await link.recvBytes()
        } catch {
          return
        }
      }
      rx.gotData = true
      const result = this.#ingest(rx, batch)
      const ok = result === true || result === false ? result : await result
      if (!ok) {
        link.beginClose(CloseCode.ProtocolViolation, 'malformed datum batch')
        return
      }
    }
  }

  /** Splits a batch and delivers its datums in order; false when the batch framing is broken. */
  #ingest(rx: Receiver, batch: Uint8Array): boolean | Promise<boolean> {
    let tail: Promise<void> | undefined
    const ok = unpackBatch(batch, (bytes) => {
      tail = tail === undefined ? this.#deliver(rx, bytes) : tail.then(() => this.#deliver(rx, bytes))
    })
    return tail === undefined ? ok : tail.then(() => ok)
  }

  /** Decodes and validates one datum; returns a promise only when the schema validates asynchronously. */
  #deliver(rx: Receiver, bytes: Uint8Array): Promise<void> | undefined {
    let value: T
    try {
      value = this.#codec.decode(bytes)
    } catch (err) {
      this.#outlet.invalid(rx, err)
      return undefined
    }
    const schema = this.#schema
    if (schema === undefined) {
      this.#outlet.accept(rx, value, bytes.length)
      return undefined
    }
    let result: StandardSchemaV1.Result<T> | Promise<StandardSchemaV1.Result<T>>
    try {
      result = schema['~standard'].validate(value)
    } catch (err) {
      this.#outlet.invalid(rx, err)
      return undefined
    }
    if (result instanceof Promise) {
      return result.then(
        (r) => this.#validated(rx, r, bytes.length),
        (err) => this.#outlet.invalid(rx, err),
      )
    }
    this.#validated(rx, result, bytes.length)
    return undefined
  }

  #validated(rx: Receiver, result: StandardSchemaV1.Result<T>, size: number): void {
    if (result.issues) {
      const message = result.issues.map((i) => i.message).join('; ')
      this.#outlet.invalid(rx, new DecodeError(`datum fails the schema: ${message}`))
      return
    }
    this.#outlet.accept(rx, result.value, size)
  }
}

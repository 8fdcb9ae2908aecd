import type { StandardSchemaV1 } from '@standard-schema/spec'
import { type Codec, cborOf } from '../primitives/codec.ts'
import { Digest, type DigestLike, type StreamId } from '../primitives/digest.ts'
import { InvalidArgumentError } from '../primitives/errors.ts'

/** What `defineStream` takes besides the name. */
export interface StreamDefOptions<T> {
  /**
   * Validates every datum a consumer receives (any Standard Schema: zod, valibot, arktype...). A datum
   * that fails is dropped and counted in `consumer.stats.invalid`; it is never delivered and never
   * closes the subscription. The schema's output is what the consumer receives.
   */
  schema?: StandardSchemaV1<unknown, T>
  /** How datums become bytes and back; canonical CBOR by default. Both ends must use the same one. */
  codec?: Codec<T>
  /** The stream id; `Digest.from(name)` by default. */
  streamId?: DigestLike
}

/**
 * A stream declared once by name. TypeScript types are erased at run time, so the declaration carries
 * what the type cannot: the stream id every node agrees on, the codec and (optionally) a schema.
 */
export interface StreamDef<T> {
  /** The name the stream was declared with. */
  readonly name: string
  /** The id nodes agree on: Digest.from(name), unless given explicitly. */
  readonly streamId: StreamId
  /** Encodes and decodes the datums (default: canonical CBOR). */
  readonly codec: Codec<T>
  /** Validates decoded datums on the consumer; undefined: no validation. */
  readonly schema: StandardSchemaV1<unknown, T> | undefined
}

/**
 * Declares a stream. Share the definition between the producing and the consuming code:
 *
 * ```ts
 * const Prices = defineStream<Price>('prices', { schema: PriceSchema })
 * const p = net.streams.producer(Prices)
 * const c = other.streams.consumer(Prices)
 * ```
 *
 * Gotcha: the id comes from the name alone (unless `streamId` is given), so two definitions with the
 * same name but different types or codecs name the same stream; the consumer's codec or schema then
 * rejects what does not fit.
 */
export function defineStream<T>(name: string, options: StreamDefOptions<T> = {}): StreamDef<T> {
  if (typeof name !== 'string' || name === '') throw new InvalidArgumentError('a stream needs a name')
  return Object.freeze({
    name,
    streamId: Digest.from(options.streamId ?? name),
    codec: options.codec ?? cborOf<T>(),
    schema: options.schema,
  })
}

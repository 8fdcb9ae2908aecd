/**
 * Values in collections: how they are encoded (codec and schema) and kept (canonical bytes, decoded on
 * first read), and the keys the replicas' maps use.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { type Codec, cborOf } from '../primitives/codec.ts'
import { MosaikError } from '../primitives/errors.ts'

/** How values of one type cross the wire: a codec (canonical CBOR by default) and an optional schema. */
export interface ValueType<T> {
  codec?: Codec<T>
  /** A Standard Schema (zod, valibot, arktype): writers validate every value before proposing it. */
  schema?: StandardSchemaV1<T>
}

/** A value with its canonical bytes: equality of keys and compare-and-swap compare the bytes. */
export interface Encoded<T> {
  readonly value: T
  readonly bytes: Uint8Array
}

/** Encodes and decodes values of one type, validating them against the schema on the way in. */
export class ValueCodec<T> {
  readonly #codec: Codec<T>
  readonly #schema: StandardSchemaV1<T> | undefined

  constructor(type: ValueType<T> = {}) {
    this.#codec = type.codec ?? cborOf<T>()
    this.#schema = type.schema
  }

  /** Validates (when a schema is set) and encodes; throws InvalidValueError carrying the value. */
  async encode(value: T): Promise<Uint8Array> {
    if (this.#schema) {
      const result = await this.#schema['~standard'].validate(value)
      if (result.issues) {
        throw new InvalidValueError(value, result.issues.map((i) => i.message).join('; '))
      }
    }
    return this.#codec.encode(value)
  }

  /** Encodes without the schema: for keys used in lookups. */
  encodeUnchecked(value: T): Uint8Array {
    return this.#codec.encode(value)
  }

  decode(bytes: Uint8Array): T {
    return this.#codec.decode(bytes)
  }
}

/** A value failed the collection's schema; nothing was proposed. */
export class InvalidValueError<T = unknown> extends MosaikError {
  readonly value: T
  constructor(value: T, issues: string) {
    super('INVALID_VALUE', `value rejected by the schema: ${issues}`)
    this.value = value
  }
}

/** Keys of the replicas' maps: canonical bytes as a string (latin1), cheap to hash and compare. */
export function bytesKey(bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i += 8192) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[])
  }
  return out
}

/** A value kept as its canonical bytes and decoded on first read (replicas often hold far more than they read). */
export class Lazy<T> {
  readonly bytes: Uint8Array
  readonly #codec: ValueCodec<T>
  #decoded: { value: T } | undefined

  constructor(bytes: Uint8Array, codec: ValueCodec<T>) {
    this.bytes = bytes
    this.#codec = codec
  }

  get value(): T {
    this.#decoded ??= { value: this.#codec.decode(this.bytes) }
    return this.#decoded.value
  }
}

/**
 * Values in collections: how they are encoded (codec and schema) and kept (canonical bytes, decoded on
 * first read), and the keys the replicas' maps use.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { type Codec, cbor, cborOf } from '../primitives/codec.ts'
import { MosaikError } from '../primitives/errors.ts'

/** How values of one type cross the wire: a codec (canonical CBOR by default) and an optional schema. */
export interface ValueType<T> {
  /** Encodes and decodes the values (default: canonical CBOR). */
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
  /** The default canonical CBOR codec, whose common scalars `decodeKey` reads without it. */
  readonly #canonical: boolean

  constructor(type: ValueType<T> = {}) {
    this.#codec = type.codec ?? cborOf<T>()
    this.#schema = type.schema
    this.#canonical = (this.#codec as Codec<unknown>) === cbor
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

  /**
   * Decodes bytes held as a `bytesKey` string. With canonical CBOR, small integers, ASCII strings,
   * booleans and null are read straight from the string (exactly what the codec would return);
   * anything else goes through the codec.
   */
  decodeKey(key: string): T {
    if (this.#canonical) {
      const v = scalarOf(key)
      if (v !== NOT_SCALAR) return v as T
    }
    return this.#codec.decode(keyBytes(key))
  }
}

const NOT_SCALAR: unique symbol = Symbol('not a scalar')

/**
 * The value of the canonical CBOR in `s` (one char per byte) when it is an integer of up to 32 bits,
 * an ASCII text string of fewer than 256 bytes, a boolean or null, in its shortest form and alone;
 * NOT_SCALAR otherwise (the codec then decides, and rejects what strict decoding rejects).
 */
function scalarOf(s: string): unknown {
  const n = s.length
  if (n === 0) return NOT_SCALAR
  const b = s.charCodeAt(0)
  const major = b >> 5
  const info = b & 0x1f
  if (major === 0 || major === 1) {
    let v: number
    if (info < 24) {
      if (n !== 1) return NOT_SCALAR
      v = info
    } else if (info === 24) {
      if (n !== 2) return NOT_SCALAR
      v = s.charCodeAt(1)
      if (v < 24) return NOT_SCALAR
    } else if (info === 25) {
      if (n !== 3) return NOT_SCALAR
      v = (s.charCodeAt(1) << 8) | s.charCodeAt(2)
      if (v < 0x100) return NOT_SCALAR
    } else if (info === 26) {
      if (n !== 5) return NOT_SCALAR
      v = s.charCodeAt(1) * 0x1000000 + ((s.charCodeAt(2) << 16) | (s.charCodeAt(3) << 8) | s.charCodeAt(4))
      if (v < 0x10000) return NOT_SCALAR
    } else return NOT_SCALAR
    return major === 0 ? v : -1 - v
  }
  if (major === 3) {
    let start: number
    let len: number
    if (info < 24) {
      start = 1
      len = info
    } else if (info === 24) {
      start = 2
      len = s.charCodeAt(1)
      if (len < 24) return NOT_SCALAR
    } else return NOT_SCALAR
    if (n !== start + len) return NOT_SCALAR
    for (let i = start; i < n; i++) if (s.charCodeAt(i) >= 0x80) return NOT_SCALAR
    return s.slice(start)
  }
  if (b === 0xf4) return n === 1 ? false : NOT_SCALAR
  if (b === 0xf5) return n === 1 ? true : NOT_SCALAR
  if (b === 0xf6) return n === 1 ? null : NOT_SCALAR
  return NOT_SCALAR
}

/** A value failed the collection's schema; nothing was proposed. */
export class InvalidValueError<T = unknown> extends MosaikError {
  /** The value the schema refused. */
  readonly value: T
  constructor(value: T, issues: string) {
    super('INVALID_VALUE', `value rejected by the schema: ${issues}`)
    this.value = value
  }
}

/** Keys of the replicas' maps: canonical bytes as a string (latin1), cheap to hash and compare. */
export function bytesKey(bytes: Uint8Array): string {
  return latin1(bytes, 0, bytes.length)
}

/** `bytesKey` of `bytes[start..end)`, without a view. */
export function latin1(bytes: Uint8Array, start: number, end: number): string {
  if (end - start <= SHORT) return shortLatin1(bytes, start, end)
  if (end - start <= 16) {
    let out = ''
    for (let i = start; i < end; i++) out += String.fromCharCode(bytes[i]!)
    return out
  }
  // TextDecoder's 'latin1' is windows-1252: the same except that 27 of the bytes 0x80-0x9f become
  // characters above 0xff. Where none did, it is latin1, built natively (20× faster than
  // `String.fromCharCode.apply` for 17 KB). Binary data (CBOR numbers) usually has some: then each
  // byte widened to a UTF-16 code unit decodes to exactly latin1, still natively (4× faster), and
  // V8 keeps the result one byte per character.
  const range = bytes.subarray(start, end)
  const decoded = WINDOWS_1252.decode(range)
  if (!ABOVE_LATIN1.test(decoded)) return decoded
  const units = new Uint16Array(range.length)
  units.set(range)
  return UTF_16LE.decode(units)
}

/** The longest string V8 builds flat when two are joined; longer joins make a rope. */
const SHORT = 12

const char = String.fromCharCode

/**
 * Up to SHORT bytes (most keys, values and priorities) in one `fromCharCode` call: 4× faster for 10
 * bytes than joining a character at a time, which also made a string per character (a PriorityQueue
 * catch-up spent a quarter of its time collecting them).
 */
function shortLatin1(b: Uint8Array, s: number, e: number): string {
  switch (e - s) {
    case 0:
      return ''
    case 1:
      return char(b[s]!)
    case 2:
      return char(b[s]!, b[s + 1]!)
    case 3:
      return char(b[s]!, b[s + 1]!, b[s + 2]!)
    case 4:
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!)
    case 5:
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!)
    case 6:
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!)
    case 7:
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!)
    case 8:
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!)
    default: {
      // 9 to 12: eight, then the rest (still under SHORT joined, so still flat).
      const head = char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!)
      return head + shortLatin1(b, s + 8, e)
    }
  }
}

const WINDOWS_1252 = new TextDecoder('latin1')
const UTF_16LE = new TextDecoder('utf-16le')
const ABOVE_LATIN1 = /[\u0100-\uffff]/

/** The bytes of a `bytesKey` string. */
export function keyBytes(key: string): Uint8Array {
  const out = new Uint8Array(key.length)
  for (let i = 0; i < key.length; i++) out[i] = key.charCodeAt(i)
  return out
}

/**
 * A value kept as its canonical bytes, held as a `bytesKey` string (one byte per character: far less
 * than a typed array of its own), and decoded on first read (replicas often hold far more than they
 * read).
 */
export class Lazy<T> {
  /** The value's canonical bytes as a `bytesKey` string. */
  readonly text: string
  readonly #codec: ValueCodec<T>
  #value: T | typeof UNDECODED = UNDECODED

  constructor(text: string, codec: ValueCodec<T>) {
    this.text = text
    this.#codec = codec
  }

  /** The value's canonical bytes (a new array each time). */
  get bytes(): Uint8Array {
    return keyBytes(this.text)
  }

  get value(): T {
    if (this.#value === UNDECODED) this.#value = this.#codec.decodeKey(this.text)
    return this.#value
  }
}

const UNDECODED: unique symbol = Symbol('undecoded')

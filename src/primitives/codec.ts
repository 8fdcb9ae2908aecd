import type { DecodeOptions, EncodeOptions } from 'cborg'
import {
  decode as cborDecode,
  encode as cborEncode,
  encodeInto as cborEncodeInto,
  objectToTokens,
  rfc8949EncodeOptions,
  Token,
  Type,
} from 'cborg'
import { bigIntDecoder, bigIntEncoder, bigNegIntDecoder, mapDecoder, setDecoder } from 'cborg/taglib'
import { compareBytes, fromUtf8, utf8 } from './bytes.ts'
import { GIVE_UP, readCanonical } from './cbor-reader.ts'
import { writeCanonical, writeCanonicalShared } from './cbor-writer.ts'
import { DecodeError, MosaikError } from './errors.ts'

/**
 * Turns values of T into bytes and back. Streams and collections take one per type; the default is
 * canonical CBOR.
 *
 * Gotcha: equality of collection keys and compare-and-swap compare *encoded bytes*, so a codec must be
 * deterministic: the same value must always give the same bytes.
 */
export interface Codec<T> {
  /** Turns a value into bytes. */
  encode(value: T): Uint8Array
  /** Turns bytes back into a value; throws DecodeError on bytes it cannot decode. */
  decode(bytes: Uint8Array): T
}

const TAG_SET = 258
const TAG_MAP = 259

/**
 * The canonical bytes of a set element or map key, to sort by, written apart from the encoding under
 * way. Why apart: cborg writes arrays straight into one shared buffer and resets it on every `encode`,
 * so a nested `encode` from these type encoders wiped the array holding the Map or Set (`[1, Map]`
 * came out as the Map alone).
 */
function sortBytes(value: unknown, options: EncodeOptions): Uint8Array {
  const plain = writeCanonical(value)
  if (plain !== undefined) return plain
  for (let size = 1024; ; size *= 4) {
    const into = new Uint8Array(size)
    try {
      return into.subarray(0, cborEncodeInto(value, into, options).written)
    } catch (err) {
      // cborg's words for a destination too small; anything else is the value's own error.
      if (!/too small/.test((err as Error).message) || size >= DETACHED_LIMIT) throw err
    }
  }
}

/** Largest map key or set element sortBytes encodes (the largest frame a node accepts). */
const DETACHED_LIMIT = 64 * 1024 * 1024

/** Sets have no order of their own: write them as tag 258 over elements sorted by encoded bytes. */
function canonicalSetEncoder(set: Set<unknown>, _typ: string, options: EncodeOptions): unknown {
  const sorted = [...set]
    .map((value) => ({ value, bytes: sortBytes(value, options) }))
    .sort((a, b) => compareBytes(a.bytes, b.bytes))
  return [
    new Token(Type.tag, TAG_SET),
    new Token(Type.array, sorted.length),
    sorted.map((e) => objectToTokens(e.value, options)),
  ]
}

/** Maps may have any keys: write them as tag 259 over entries sorted by the encoded key bytes. */
function canonicalMapEncoder(map: Map<unknown, unknown>, _typ: string, options: EncodeOptions): unknown {
  const sorted = [...map]
    .map(([key, value]) => ({ key, value, bytes: sortBytes(key, options) }))
    .sort((a, b) => compareBytes(a.bytes, b.bytes))
  return [
    new Token(Type.tag, TAG_MAP),
    new Token(Type.map, sorted.length),
    sorted.map((e) => [objectToTokens(e.key, options), objectToTokens(e.value, options)]),
  ]
}

type TypeEncoder = NonNullable<EncodeOptions['typeEncoders']>[string]

const encodeOptions: EncodeOptions = {
  ...rfc8949EncodeOptions,
  ignoreUndefinedProperties: true,
  typeEncoders: {
    Map: canonicalMapEncoder as TypeEncoder,
    Set: canonicalSetEncoder as TypeEncoder,
    bigint: bigIntEncoder,
  },
}

type TagDecoder = NonNullable<DecodeOptions['tags']>[number]

/**
 * Bignums (tags 2 and 3) only for values past 64 bits and without a leading zero byte: a smaller value
 * has a shorter form (the encoder writes it as a plain integer), and accepting both would let two
 * encodings read as one value, or as 0n where 0 was meant.
 */
function strictBignum(decoder: TagDecoder): TagDecoder {
  return (decode) => {
    const bytes: unknown = decode()
    if (!(bytes instanceof Uint8Array) || bytes.length <= 8 || bytes[0] === 0) {
      throw new Error('non-canonical bignum')
    }
    return decoder((() => bytes) as typeof decode)
  }
}

const decodeOptions: DecodeOptions = {
  strict: true,
  allowIndefinite: false,
  rejectDuplicateMapKeys: true,
  tags: {
    2: strictBignum(bigIntDecoder),
    3: strictBignum(bigNegIntDecoder),
    [TAG_SET]: setDecoder,
    [TAG_MAP]: mapDecoder,
  },
}

/**
 * Canonical CBOR (RFC 8949 deterministic encoding), with Map, Set and bigint. Plain values (safe
 * integers, strings, bytes, booleans, null, arrays, plain objects) take a direct writer; anything else
 * goes through cborg, which gives the same bytes for the plain ones.
 */
export function encodeCanonical(value: unknown): Uint8Array {
  return writeCanonical(value) ?? encodeCanonicalSlow(value)
}

/**
 * encodeCanonical for bytes that are sent soon and then dropped: small results may be views into a
 * shared buffer (see writeCanonicalShared), so do not keep them; copy them first.
 */
export function encodeCanonicalShared(value: unknown): Uint8Array {
  return writeCanonicalShared(value) ?? encodeCanonicalSlow(value)
}

/**
 * The cborg path of encodeCanonical, for every value. Exported for tests that check the direct writer
 * against it; not part of the public API.
 */
export function encodeCanonicalSlow(value: unknown): Uint8Array {
  try {
    return cborEncode(value, encodeOptions)
  } catch (err) {
    throw new MosaikError('ENCODE', `value cannot be encoded: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Strict decoding: rejects indefinite lengths, non-minimal integers, duplicate keys and trailing bytes.
 * Plain values take a direct reader; anything else (and anything malformed) goes through cborg, which
 * gives the same values for the plain ones.
 */
export function decodeCanonical(bytes: Uint8Array): unknown {
  const plain = readCanonical(bytes)
  return plain !== GIVE_UP ? plain : decodeCanonicalSlow(bytes)
}

/**
 * The cborg path of decodeCanonical, for every input. Exported for tests that check the direct reader
 * against it; not part of the public API.
 */
export function decodeCanonicalSlow(bytes: Uint8Array): unknown {
  try {
    return cborDecode(bytes, decodeOptions)
  } catch (err) {
    throw new DecodeError(`malformed CBOR: ${(err as Error).message}`, { cause: err })
  }
}

/** The default codec: canonical CBOR for JSON-like values, Uint8Array, bigint, Map and Set. */
export const cbor: Codec<unknown> = { encode: encodeCanonical, decode: decodeCanonical }

/** The canonical CBOR codec typed for T (the default codec of streams and collections). */
export function cborOf<T>(): Codec<T> {
  return cbor as Codec<T>
}

/** Built-in codecs for `defineStream` and collections. */
export const codecs = {
  /** Canonical CBOR (the default); use `cborOf<T>()` for a typed one. */
  cbor,
  /** Bytes as they are. */
  raw: {
    /** Returns the bytes unchanged. */
    encode: (b: Uint8Array) => b,
    /** Returns the bytes unchanged. */
    decode: (b: Uint8Array) => b,
  } satisfies Codec<Uint8Array>,
  /** UTF-8 strings. */
  utf8: {
    /** Encodes the string as UTF-8. */
    encode: (s: string) => utf8(s),
    /** Decodes UTF-8; throws DecodeError on invalid UTF-8. */
    decode: (b: Uint8Array) => decodeWith(fromUtf8, b),
  } satisfies Codec<string>,
  /**
   * JSON text. Objects whose keys were inserted in different orders encode differently: avoid it for
   * collection keys and compare-and-swap values.
   */
  json: {
    /** JSON.stringify, as UTF-8. */
    encode: (v: unknown) => utf8(JSON.stringify(v)),
    /** JSON.parse of the UTF-8 text; throws DecodeError on malformed input. */
    decode: (b: Uint8Array) => decodeWith((bytes) => JSON.parse(fromUtf8(bytes)), b),
  } satisfies Codec<unknown>,
} as const

/** Runs a decoder that throws platform errors (TypeError, SyntaxError), turning them into DecodeError. */
function decodeWith<T>(decode: (bytes: Uint8Array) => T, bytes: Uint8Array): T {
  try {
    return decode(bytes)
  } catch (err) {
    throw new DecodeError(`malformed input: ${(err as Error).message}`, { cause: err })
  }
}

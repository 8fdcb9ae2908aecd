/**
 * A small strict CBOR reader for the plain values the hot paths decode (bond frames, Raft messages,
 * collection commands): integers in the safe range, floats, strings, byte strings, booleans, null,
 * arrays and maps with text keys. The mirror of cbor-writer.ts.
 *
 * Why: cborg decodes through a token per item and a second pass that builds values from the tokens; on
 * a group's commit path that was most of the CBOR cost. This reader builds the values in one pass.
 *
 * Its contract is cborg's, with the options in codec.ts: for any input it either returns exactly what
 * cborg returns (same values, same prototypes, byte strings copied out of the input) or gives up
 * (`GIVE_UP`), and the caller asks cborg. It gives up on everything outside the subset (tags,
 * undefined, indefinite lengths, integers past 2^53, `__proto__` keys, deep nesting) and on every
 * malformation (truncation, non-minimal heads, duplicate or non-text keys, trailing bytes), so values
 * and error messages for all of those stay cborg's.
 */

/** Returned when the input is outside the subset or malformed: decode it with cborg. */
export const GIVE_UP: unique symbol = Symbol('cbor-reader: give up')

const MAJOR_UINT = 0
const MAJOR_NEGINT = 1
const MAJOR_BYTES = 2
const MAJOR_STRING = 3
const MAJOR_ARRAY = 4
const MAJOR_MAP = 5
const MAJOR_SIMPLE = 7
const FALSE = 0xf4
const TRUE = 0xf5
const NULL = 0xf6
const FLOAT16 = 0xf9
const FLOAT32 = 0xfa
const FLOAT64 = 0xfb

/** Past this depth the reader gives up (cborg then decodes the deep value, or fails, itself). */
const MAX_DEPTH = 64

/** Like cborg: short ASCII strings by a loop, the rest by a default TextDecoder (U+FFFD, BOM dropped). */
const ASCII_LOOP_BELOW = 32
const textDecoder = new TextDecoder()

/** Thrown inside the reader to unwind to `readCanonical`; never escapes it. */
const giveUp = new Error('give up')

let data: Uint8Array = new Uint8Array(0)
let pos = 0

/**
 * Reads a head's argument (a length or an integer) for the head at `pos` with minor `minor`, moving
 * `pos` past the head. Gives up on indefinite lengths, reserved minors, truncation, non-minimal
 * forms (cborg's strict mode rejects them) and values past 2^53 - 1 (cborg returns bigints there).
 */
function argument(minor: number): number {
  if (minor < 24) {
    pos += 1
    return minor
  }
  const at = pos + 1
  if (minor === 24) {
    if (at + 1 > data.length) throw giveUp
    const n = data[at]!
    if (n < 24) throw giveUp
    pos = at + 1
    return n
  }
  if (minor === 25) {
    if (at + 2 > data.length) throw giveUp
    const n = (data[at]! << 8) | data[at + 1]!
    if (n < 0x100) throw giveUp
    pos = at + 2
    return n
  }
  if (minor === 26) {
    if (at + 4 > data.length) throw giveUp
    const n = data[at]! * 0x1000000 + ((data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!)
    if (n < 0x10000) throw giveUp
    pos = at + 4
    return n
  }
  if (minor === 27) {
    if (at + 8 > data.length) throw giveUp
    const hi = data[at]! * 0x1000000 + ((data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!)
    const lo = data[at + 4]! * 0x1000000 + ((data[at + 5]! << 16) | (data[at + 6]! << 8) | data[at + 7]!)
    // below 2^32 is non-minimal; at or past 2^53 cborg gives a bigint
    if (hi === 0 || hi >= 0x200000) throw giveUp
    pos = at + 8
    return hi * 0x100000000 + lo
  }
  throw giveUp
}

function readString(length: number): string {
  const start = pos
  const end = start + length
  if (end > data.length) throw giveUp
  pos = end
  if (length < ASCII_LOOP_BELOW) {
    let s = ''
    for (let i = start; i < end; i++) {
      const c = data[i]!
      if (c >= 0x80) return textDecoder.decode(data.subarray(start, end))
      s += String.fromCharCode(c)
    }
    return s
  }
  return textDecoder.decode(data.subarray(start, end))
}

function readValue(depth: number): unknown {
  if (pos >= data.length) throw giveUp
  const initial = data[pos]!
  const major = initial >>> 5
  const minor = initial & 0x1f
  switch (major) {
    case MAJOR_UINT:
      return argument(minor)
    case MAJOR_NEGINT: {
      const n = argument(minor)
      // -2^53 is past the safe range: cborg gives a bigint
      if (n === Number.MAX_SAFE_INTEGER) throw giveUp
      return -1 - n
    }
    case MAJOR_BYTES: {
      const length = argument(minor)
      const end = pos + length
      if (end > data.length) throw giveUp
      // a copy the caller owns, as cborg gives
      const out = data.slice(pos, end)
      pos = end
      return out
    }
    case MAJOR_STRING:
      return readString(argument(minor))
    case MAJOR_ARRAY: {
      if (depth >= MAX_DEPTH) throw giveUp
      const length = argument(minor)
      // every item takes a byte at least: a longer claim is truncated input, not an allocation
      if (length > data.length - pos) throw giveUp
      const out: unknown[] = new Array(length)
      for (let i = 0; i < length; i++) out[i] = readValue(depth + 1)
      return out
    }
    case MAJOR_MAP: {
      if (depth >= MAX_DEPTH) throw giveUp
      const length = argument(minor)
      if (2 * length > data.length - pos) throw giveUp
      const out: Record<string, unknown> = {}
      for (let i = 0; i < length; i++) {
        if (pos >= data.length) throw giveUp
        const head = data[pos]!
        if (head >>> 5 !== MAJOR_STRING) throw giveUp
        const key = readString(argument(head & 0x1f))
        // cborg defines `__proto__` as an own property; duplicates are its error to report
        if (key === '__proto__' || Object.hasOwn(out, key)) throw giveUp
        out[key] = readValue(depth + 1)
      }
      return out
    }
    case MAJOR_SIMPLE:
      if (initial === FALSE || initial === TRUE || initial === NULL) {
        pos += 1
        return initial === NULL ? null : initial === TRUE
      }
      return readFloat(initial)
    default:
      // tags
      throw giveUp
  }
}

/** Floats of every width, as cborg reads them (it takes any width, and NaN and infinities). */
function readFloat(initial: number): number {
  const size = initial === FLOAT16 ? 2 : initial === FLOAT32 ? 4 : initial === FLOAT64 ? 8 : 0
  // undefined, simple values, break
  if (size === 0) throw giveUp
  const at = pos + 1
  if (at + size > data.length) throw giveUp
  pos = at + size
  if (size === 2) return half((data[at]! << 8) | data[at + 1]!)
  const view = new DataView(data.buffer, data.byteOffset + at, size)
  return size === 4 ? view.getFloat32(0) : view.getFloat64(0)
}

/** An IEEE 754 half-precision float, decoded as cborg decodes it. */
function half(bits: number): number {
  const exp = (bits >> 10) & 0x1f
  const mant = bits & 0x3ff
  let value: number
  if (exp === 0) value = mant * 2 ** -24
  else if (exp !== 31) value = (mant + 1024) * 2 ** (exp - 25)
  else value = mant === 0 ? Number.POSITIVE_INFINITY : Number.NaN
  return bits & 0x8000 ? -value : value
}

/**
 * Decodes `bytes` if they hold exactly one value of the subset, canonically encoded; otherwise
 * `GIVE_UP` (the caller decodes with cborg, which returns the value or reports the error).
 */
export function readCanonical(bytes: Uint8Array): unknown {
  try {
    data = plainView(bytes)
    pos = 0
    const value = readValue(0)
    return pos === data.length ? value : GIVE_UP
  } catch {
    // giveUp, or the stack ran out in an already deep call: cborg decides
    return GIVE_UP
  } finally {
    data = EMPTY
  }
}

const EMPTY: Uint8Array = new Uint8Array(0)

const NodeBuffer = (globalThis as { Buffer?: { isBuffer(value: unknown): boolean } }).Buffer

/**
 * The bytes as a plain Uint8Array, as cborg reads them: slicing a Buffer gives a view, not a copy, so a
 * Buffer is read through a plain view of its memory. Any other subclass is left to cborg.
 */
function plainView(bytes: Uint8Array): Uint8Array {
  if (bytes.constructor === Uint8Array) return bytes
  if (NodeBuffer?.isBuffer(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
  throw giveUp
}

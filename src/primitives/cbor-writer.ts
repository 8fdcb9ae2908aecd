/**
 * A small canonical CBOR writer for the plain values that the hot paths encode (Raft messages, log
 * entries, hard states): safe integers, strings, Uint8Array, booleans, null, arrays and plain objects
 * with string keys. Its output is byte-for-byte what cborg writes with the options in codec.ts; for any
 * other value it gives up (returns undefined) and the caller takes the cborg path, so behaviour and
 * errors stay cborg's.
 *
 * It writes into one growable buffer reused across calls and returns an exact-size copy, or, for
 * bytes about to be sent, a view into a shared slab (`writeCanonicalShared`).
 */

const MAJOR_UINT = 0x00
const MAJOR_NEGINT = 0x20
const MAJOR_BYTES = 0x40
const MAJOR_STRING = 0x60
const MAJOR_ARRAY = 0x80
const MAJOR_MAP = 0xa0
const FALSE = 0xf4
const TRUE = 0xf5
const NULL = 0xf6

/** Past this depth the writer gives up (cborg then reports cycles, or encodes the deep value itself). */
const MAX_DEPTH = 64

const utf8Encoder = new TextEncoder()

const INITIAL_SIZE = 1024
/** A buffer grown past this for one large value is dropped afterwards rather than kept for good. */
const KEEP_AT_MOST = 1 << 20

let buf = new Uint8Array(INITIAL_SIZE)
let pos = 0
/** Set while a write runs: a getter that encodes re-entrantly must not share the buffer. */
let busy = false

/** Makes room for n more bytes. */
function ensure(n: number): void {
  const need = pos + n
  if (need <= buf.length) return
  let size = buf.length * 2
  while (size < need) size *= 2
  const next = new Uint8Array(size)
  next.set(buf.subarray(0, pos))
  buf = next
}

/** Size of the head for an argument (length or integer value). */
function headSize(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9
}

/** Writes a head with the minimal argument size; n is a non-negative safe integer. */
function writeHead(major: number, n: number): void {
  ensure(9)
  writeHeadAt(pos, major, n)
  pos += headSize(n)
}

/** Writes a head at an offset without moving pos; the caller made room for it. */
function writeHeadAt(at: number, major: number, n: number): void {
  const b = buf
  if (n < 24) {
    b[at] = major | n
  } else if (n < 0x100) {
    b[at] = major | 24
    b[at + 1] = n
  } else if (n < 0x10000) {
    b[at] = major | 25
    b[at + 1] = n >>> 8
    b[at + 2] = n & 0xff
  } else if (n < 0x100000000) {
    b[at] = major | 26
    b[at + 1] = n >>> 24
    b[at + 2] = (n >>> 16) & 0xff
    b[at + 3] = (n >>> 8) & 0xff
    b[at + 4] = n & 0xff
  } else {
    const hi = Math.floor(n / 0x100000000)
    const lo = n >>> 0
    b[at] = major | 27
    b[at + 1] = hi >>> 24
    b[at + 2] = (hi >>> 16) & 0xff
    b[at + 3] = (hi >>> 8) & 0xff
    b[at + 4] = hi & 0xff
    b[at + 5] = lo >>> 24
    b[at + 6] = (lo >>> 16) & 0xff
    b[at + 7] = (lo >>> 8) & 0xff
    b[at + 8] = lo & 0xff
  }
}

/**
 * Writes a text string. ASCII goes byte by byte; anything else through TextEncoder.encodeInto, which
 * like cborg turns lone surrogates into U+FFFD.
 */
function writeString(s: string): void {
  const len = s.length
  ensure(9 + 3 * len)
  const start = pos
  const h = headSize(len)
  const b = buf
  let p = start + h
  let i = 0
  for (; i < len; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x80) break
    b[p++] = c
  }
  if (i === len) {
    writeHeadAt(start, MAJOR_STRING, len)
    pos = p
    return
  }
  // Not ASCII: UTF-8 takes between len and 3 * len bytes; leave room for the longest head, then move
  // the bytes down if the real head is shorter.
  const maxHead = headSize(3 * len)
  const written = utf8Encoder.encodeInto(s, b.subarray(start + maxHead)).written
  const realHead = headSize(written)
  if (realHead !== maxHead) b.copyWithin(start + realHead, start + maxHead, start + maxHead + written)
  writeHeadAt(start, MAJOR_STRING, written)
  pos = start + realHead + written
}

/** Keys whose UTF-8 forms are all ASCII: one char per byte, so JS string order is byte order. */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false
  return true
}

/**
 * Orders text keys as RFC 8949 deterministic encoding does (bytewise order of the encoded keys): a
 * shorter key first, then bytewise order of the UTF-8. Insertion sort: objects here have a few keys.
 */
function sortAsciiKeys(keys: string[]): void {
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!
    let j = i - 1
    while (j >= 0 && asciiKeyAfter(keys[j]!, k)) {
      keys[j + 1] = keys[j]!
      j--
    }
    keys[j + 1] = k
  }
}

function asciiKeyAfter(a: string, b: string): boolean {
  return a.length !== b.length ? a.length > b.length : a > b
}

function compareUtf8Keys(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!
    if (d !== 0) return d
  }
  return 0
}

/** Sorts keys that are not all ASCII by their UTF-8 bytes (rare: allocates the byte forms). */
function sortUtf8Keys(keys: string[]): void {
  const withBytes = keys.map((k) => ({ k, b: utf8Encoder.encode(k) }))
  withBytes.sort((x, y) => compareUtf8Keys(x.b, y.b))
  for (let i = 0; i < keys.length; i++) keys[i] = withBytes[i]!.k
}

/** Writes one value; false when it is outside the subset (the partial output is then discarded). */
function writeValue(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'number':
      if (!Number.isSafeInteger(v)) return false
      if (v >= 0) {
        // -0 is an integer too; cborg writes it as 0, but let cborg decide
        if (v === 0 && 1 / v < 0) return false
        writeHead(MAJOR_UINT, v)
      } else {
        writeHead(MAJOR_NEGINT, -1 - v)
      }
      return true
    case 'string':
      writeString(v)
      return true
    case 'boolean':
      ensure(1)
      buf[pos++] = v ? TRUE : FALSE
      return true
    case 'object':
      if (v === null) {
        ensure(1)
        buf[pos++] = NULL
        return true
      }
      if (depth >= MAX_DEPTH) return false
      if (v instanceof Uint8Array) {
        // cborg writes any Uint8Array, Buffer included, as a byte string
        const n = v.length
        writeHead(MAJOR_BYTES, n)
        ensure(n)
        buf.set(v, pos)
        pos += n
        return true
      }
      if (Array.isArray(v)) return writeArray(v, depth + 1)
      return writeObject(v, depth + 1)
    default:
      // undefined (outside an object), bigint, symbol, function
      return false
  }
}

function writeArray(a: unknown[], depth: number): boolean {
  if (Object.getPrototypeOf(a) !== Array.prototype) return false
  const n = a.length
  writeHead(MAJOR_ARRAY, n)
  for (let i = 0; i < n; i++) {
    const e = a[i]
    // cborg writes undefined (and holes) in arrays as simple value 23: leave that to it
    if (e === undefined) return false
    if (!writeValue(e, depth)) return false
  }
  return true
}

function writeObject(o: object, depth: number): boolean {
  const proto = Object.getPrototypeOf(o)
  // cborg decides "plain object" from the constructor or Object.prototype.toString; accept only the
  // cases where both agree, so a Symbol.toStringTag of 'Map' or a class instance goes to cborg.
  if (proto === Object.prototype) {
    if ((o as { constructor?: unknown }).constructor !== Object) return false
  } else if (proto !== null || Symbol.toStringTag in o) {
    return false
  }
  const keys = Object.keys(o)
  const n = keys.length
  let ascii = true
  for (let i = 0; i < n && ascii; i++) ascii = isAscii(keys[i]!)
  if (ascii) sortAsciiKeys(keys)
  else sortUtf8Keys(keys)
  // Room for the head of n entries; undefined values are skipped, so the count may end up smaller.
  ensure(9)
  const start = pos
  const h = headSize(n)
  pos += h
  let count = 0
  const record = o as Record<string, unknown>
  for (let i = 0; i < n; i++) {
    const key = keys[i]!
    const value = record[key]
    if (value === undefined) continue
    writeString(key)
    if (!writeValue(value, depth)) return false
    count++
  }
  const realHead = headSize(count)
  if (realHead !== h) {
    buf.copyWithin(start + realHead, start + h, pos)
    pos -= h - realHead
  }
  writeHeadAt(start, MAJOR_MAP, count)
  return true
}

/**
 * Canonical CBOR of a value in the supported subset, as a fresh Uint8Array the caller owns; undefined
 * when the value (or anything in it) is outside the subset.
 */
export function writeCanonical(value: unknown): Uint8Array | undefined {
  return write(value, ownCopy)
}

/**
 * Like writeCanonical, but small results are views into a shared slab rather than buffers of their
 * own: for bytes that are sent (or copied) soon and then dropped.
 *
 * Why: a Uint8Array over 64 bytes gets its memory outside V8's heap, and allocating it cost about
 * 290 ns where a view into an existing buffer costs 40 ns. The slice that closed every encode was the
 * hottest line of the SDK's own code in a group committing one write at a time (4 % of all CPU).
 *
 * Gotcha: a view keeps its whole slab (SLAB_SIZE) alive. Do not keep the bytes: copy them first.
 */
export function writeCanonicalShared(value: unknown): Uint8Array | undefined {
  return write(value, sharedCopy)
}

/** Results up to this size share slabs; larger ones get a buffer of their own. */
const SHARED_AT_MOST = 4096
const SLAB_SIZE = 64 * 1024
let slab = new ArrayBuffer(SLAB_SIZE)
let slabUsed = 0

function ownCopy(n: number): Uint8Array {
  return buf.slice(0, n)
}

function sharedCopy(n: number): Uint8Array {
  if (n > SHARED_AT_MOST) return buf.slice(0, n)
  if (slabUsed + n > SLAB_SIZE) {
    // The old slab lives on for as long as views into it do.
    slab = new ArrayBuffer(SLAB_SIZE)
    slabUsed = 0
  }
  const out = new Uint8Array(slab, slabUsed, n)
  out.set(buf.subarray(0, n))
  // 8-byte aligned, as a fresh buffer is: a consumer may take a wider typed view of it.
  slabUsed += (n + 7) & ~7
  return out
}

function write(value: unknown, result: (n: number) => Uint8Array): Uint8Array | undefined {
  if (busy || value === undefined) return undefined
  busy = true
  pos = 0
  try {
    return writeValue(value, 0) ? result(pos) : undefined
  } catch {
    // a throwing getter: cborg calls it again and reports the error as it always did
    return undefined
  } finally {
    busy = false
    if (buf.length > KEEP_AT_MOST) buf = new Uint8Array(INITIAL_SIZE)
  }
}

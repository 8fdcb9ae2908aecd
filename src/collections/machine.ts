/**
 * The state machine every collection builds on, and the compact snapshot format its replicas share.
 */
import * as varint from 'uint8-varint'
import { type ApplyContext, CommandRefusal, type StateMachine } from '../groups/state-machine.ts'
import { type Codec, decodeCanonical, encodeCanonical } from '../primitives/codec.ts'
import { Digest, type StoreId } from '../primitives/digest.ts'
import { DecodeError } from '../primitives/errors.ts'
import { holdShape } from '../primitives/shapes.ts'
import { latin1 } from './values.ts'

/**
 * The state machine behind a collection. Commands are canonical-CBOR arrays whose user values are
 * already encoded bytes, so every replica sees the same bytes and compares them, not re-encodings.
 */
export abstract class CollectionMachine<Command extends readonly unknown[]>
  implements StateMachine<Command, null, null>
{
  readonly signature: Digest
  /** Grows with every applied command or restore, so handles can tell when to emit `updated`. */
  revision = 0

  /** `parameters` are parts of the machine's behaviour that replicas must share (e.g. a capacity). */
  constructor(kind: string, storeId: StoreId, ...parameters: Uint8Array[]) {
    let signature = Digest.from(`mosaik_collections_${kind}`).derive(storeId)
    for (const p of parameters) signature = signature.derive(p)
    this.signature = signature
  }

  /**
   * Applies one command of a shape the codec accepted. It throws only before it changes anything (a
   * priority that does not decode, say): the command is then refused and the batch goes on.
   */
  abstract applyCommand(command: Command, ctx: ApplyContext): unknown

  apply(command: Command, ctx: ApplyContext): unknown {
    this.revision++
    return this.applyCommand(command, ctx)
  }

  applyBatch(commands: readonly Command[], ctxs: readonly ApplyContext[]): unknown[] {
    this.revision++
    return commands.map((c, i) => {
      try {
        return this.applyCommand(c, ctxs[i]!)
      } catch (err) {
        return new CommandRefusal((err as Error).message)
      }
    })
  }

  query(): null {
    return null
  }

  /**
   * The state as items of a fixed number of byte strings each, in the machine's deterministic order,
   * packed as `packItems` packs them (`[format][arity][varint length, bytes]…`): far cheaper to write
   * and read than CBOR for 100k items, and the same bytes on every replica at the same version.
   */
  abstract snapshot(): Uint8Array

  restore(snapshot: Uint8Array): void {
    this.restoreSnapshot(snapshot)
    this.revision++
  }

  /**
   * Replaces the state with a snapshot's (empty bytes: the empty state); throws DecodeError, changing
   * nothing, on bytes `unpackItems` would reject.
   */
  protected abstract restoreSnapshot(snapshot: Uint8Array): void
}

export const SNAPSHOT_FORMAT = 1

/** Packs items of `arity` byte strings each. */
export function packItems(arity: number, items: readonly (readonly Uint8Array[])[]): Uint8Array {
  let size = 2
  for (const item of items) for (const b of item) size += varintLength(b.length) + b.length
  const out = new Uint8Array(size)
  out[0] = SNAPSHOT_FORMAT
  out[1] = arity
  let at = 2
  for (const item of items) {
    for (const b of item) {
      at = writeVarint(out, at, b.length)
      out.set(b, at)
      at += b.length
    }
  }
  return out
}

export function unpackItems(arity: number, bytes: Uint8Array): Uint8Array[][] {
  const items: Uint8Array[][] = []
  let item: Uint8Array[] = []
  scanItems(arity, bytes, (start, end) => {
    item.push(bytes.subarray(start, end))
    if (item.length === arity) {
      items.push(item)
      item = []
    }
  })
  return items
}

/**
 * Reads the header of each item of a packed snapshot: calls `item(start, end)` for each byte string
 * in order, and returns how many there are (without `item`, it only checks and counts). Throws
 * DecodeError on a snapshot `unpackItems` would reject.
 */
export function scanItems(
  arity: number,
  bytes: Uint8Array,
  item?: (start: number, end: number) => void,
): number {
  if (bytes[0] !== SNAPSHOT_FORMAT || bytes[1] !== arity)
    throw new DecodeError('unknown collection snapshot format')
  let at = 2
  let count = 0
  while (at < bytes.length) {
    let n = bytes[at]!
    if (n < 0x80) {
      // Most lengths fit one byte: read here, without the general decoder's call.
      at++
    } else {
      try {
        // Both throw RangeError: on a varint cut short, or one past 2^53 (its length cannot be encoded).
        n = varint.decode(bytes, at)
        at += varint.encodingLength(n)
      } catch {
        throw new DecodeError('malformed collection snapshot')
      }
      // Packing writes the shortest form; a longer one (a continuation bit left set) is refused.
      if (bytes[at - 1]! >= 0x80) throw new DecodeError('malformed collection snapshot')
    }
    if (at + n > bytes.length) throw new DecodeError('truncated collection snapshot')
    item?.(at, at + n)
    at += n
    count++
  }
  if (count % arity !== 0) throw new DecodeError('truncated collection snapshot')
  return count
}

/** Writes `n` as a varint at `at` of `out`; returns the position after it. */
export function writeVarint(out: Uint8Array, at: number, n: number): number {
  if (n < 0x80) {
    out[at] = n
    return at + 1
  }
  varint.encode(n, out, at)
  return at + varint.encodingLength(n)
}

/**
 * Packs items whose byte strings a replica holds as `bytesKey` strings, the same bytes `packItems`
 * writes: `each` gives every string in order, and is called twice (to size, then to write).
 */
export function packStrings(arity: number, each: (field: (s: string) => void) => void): Uint8Array {
  let size = 2
  each((s) => {
    size += varintLength(s.length) + s.length
  })
  const out = new Uint8Array(size)
  out[0] = SNAPSHOT_FORMAT
  out[1] = arity
  let at = 2
  each((s) => {
    at = writeVarint(out, at, s.length)
    for (let i = 0; i < s.length; i++) out[at++] = s.charCodeAt(i)
  })
  return out
}

/**
 * The byte strings of a packed snapshot as `bytesKey` strings, in order; refuses what `scanItems`
 * refuses.
 */
export function unpackStrings(arity: number, bytes: Uint8Array): string[] {
  const fields: string[] = []
  if (bytes.length > 0) scanItems(arity, bytes, (start, end) => void fields.push(latin1(bytes, start, end)))
  return fields
}

/** Bytes of the varint of `n`. */
export function varintLength(n: number): number {
  return n < 0x80 ? 1 : varint.encodingLength(n)
}

/** Thrown by CommandReader on bytes outside the shapes it reads: the full decoder then decides. */
const UNUSUAL: unique symbol = Symbol('unusual command')

/**
 * Reads canonical CBOR commands of known shapes without a general decoder: byte strings come out as
 * views of the command's bytes (or only their offsets), not copies. Only shortest-form definite
 * lengths are read; anything else (another shape, a longer form, trailing bytes) makes
 * `decodeCommand` fall back to the strict decoder, so a command decodes to what that decoder returns,
 * or fails as it does.
 */
export class CommandReader {
  readonly bytes: Uint8Array
  at = 0

  constructor(bytes: Uint8Array) {
    this.bytes = bytes
  }

  /** The argument of a header of `major` type in its shortest form. */
  head(major: number): number {
    const x = this.bytes
    const b = x[this.at++]
    if (b === undefined || b >> 5 !== major) throw UNUSUAL
    const info = b & 0x1f
    if (info < 24) return info
    let v: number
    if (info === 24) {
      v = x[this.at] ?? 0
      this.at += 1
      if (v < 24) throw UNUSUAL
    } else if (info === 25) {
      v = ((x[this.at] ?? 0) << 8) | (x[this.at + 1] ?? 0)
      this.at += 2
      if (v < 0x100) throw UNUSUAL
    } else if (info === 26) {
      const a = this.at
      v = (x[a] ?? 0) * 0x1000000 + (((x[a + 1] ?? 0) << 16) | ((x[a + 2] ?? 0) << 8) | (x[a + 3] ?? 0))
      this.at += 4
      if (v < 0x10000) throw UNUSUAL
    } else throw UNUSUAL
    if (this.at > x.length) throw UNUSUAL
    return v
  }

  /** An array header with exactly `n` items. */
  array(n: number): void {
    if (this.head(4) !== n) throw UNUSUAL
  }

  /** A byte string, as a view of the command's bytes. */
  byteString(): Uint8Array {
    const start = this.byteStringStart()
    return this.bytes.subarray(start, this.at)
  }

  /** A byte string: returns where its bytes start (they end at `at`). */
  byteStringStart(): number {
    const n = this.head(2)
    const start = this.at
    this.at += n
    if (this.at > this.bytes.length) throw UNUSUAL
    return start
  }

  byteStringOrNull(): Uint8Array | null {
    if (this.bytes[this.at] === 0xf6) {
      this.at++
      return null
    }
    return this.byteString()
  }

  /** A short ASCII text (a command's name). */
  name(): string {
    const n = this.head(3)
    if (n > 23 || this.at + n > this.bytes.length) throw UNUSUAL
    let out = ''
    for (let i = 0; i < n; i++) {
      const c = this.bytes[this.at++]!
      if (c >= 0x80) throw UNUSUAL
      out += String.fromCharCode(c)
    }
    return out
  }

  /** Everything in a command is read, or it is not one. */
  unusual(): never {
    throw UNUSUAL
  }
}

// Every reader is dropped after its command: hold one, or a full collection deoptimizes the readers.
holdShape(new CommandReader(new Uint8Array(0)))

/**
 * The byte strings of a list in a command, as ranges of the command's bytes: `[start, end]` of each
 * byte string, `arity` of them per item. Replicas apply them without a view or a copy per string.
 */
export interface ByteRanges {
  readonly bytes: Uint8Array
  readonly ranges: Int32Array
}

/**
 * Reads a list of items as ranges: an item of arity 1 is a byte string, a larger one an array of
 * `arity` byte strings.
 */
export function readRanges(r: CommandReader, arity: number): ByteRanges {
  const count = r.head(4)
  // An item takes a byte per byte string at least, and a header when it is an array: a larger count
  // is a lie the strict decoder rejects.
  if (count * (arity === 1 ? 1 : arity + 1) > r.bytes.length - r.at) r.unusual()
  const ranges = new Int32Array(count * arity * 2)
  for (let j = 0; j < ranges.length; ) {
    if (arity > 1) r.array(arity)
    for (let f = 0; f < arity; f++, j += 2) {
      ranges[j] = r.byteStringStart()
      ranges[j + 1] = r.at
    }
  }
  return { bytes: r.bytes, ranges }
}

/** The items of ranges as copies of their byte strings: a list of byte strings for arity 1, else of arrays. */
export function itemsOfRanges({ bytes, ranges }: ByteRanges, arity: number): (Uint8Array | Uint8Array[])[] {
  const items: (Uint8Array | Uint8Array[])[] = []
  for (let j = 0; j < ranges.length; j += arity * 2) {
    const item: Uint8Array[] = []
    for (let f = 0; f < arity * 2; f += 2) item.push(bytes.slice(ranges[j + f], ranges[j + f + 1]))
    items.push(arity === 1 ? item[0]! : item)
  }
  return items
}

/** A check of one argument of a decoded command. */
export type ArgShape = (v: unknown) => boolean

export const bytesArg: ArgShape = (v) => v instanceof Uint8Array
export const bytesOrNullArg: ArgShape = (v) => v === null || v instanceof Uint8Array
/** Any number: the command itself decides what an index out of range (or not whole) means. */
export const numberArg: ArgShape = (v) => typeof v === 'number' || typeof v === 'bigint'
export const listOf =
  (item: ArgShape): ArgShape =>
  (v) =>
    Array.isArray(v) && v.every(item)
/** An item of `arity` byte strings: one byte string for 1, else an array of them. */
export const itemArg = (arity: number): ArgShape =>
  arity === 1 ? bytesArg : (v) => Array.isArray(v) && v.length === arity && v.every(bytesArg)

/**
 * The commands a collection applies, by name: the shape of each one's arguments. A decoded command of
 * another name or shape is refused before it reaches `applyCommand`, which can then trust its types.
 */
export type CommandShapes = Readonly<Record<string, readonly ArgShape[]>>

/** Reads no command itself: every command goes to the strict decoder (and the shape check). */
const strictOnly = (r: CommandReader): never => r.unusual()

/**
 * A collection's command codec: canonical CBOR out, with an `extend` that holds ranges (as read from
 * the log) written as its items of `extendArity` byte strings; in, `read` through `decodeCommand`.
 */
export function commandCodec<C extends readonly unknown[]>(
  extendArity: number,
  shapes: CommandShapes,
  read: (r: CommandReader) => C = strictOnly,
): Codec<C> {
  return {
    encode: (c) =>
      c[0] === 'extend' && !Array.isArray(c[1])
        ? encodeCanonical(['extend', itemsOfRanges(c[1] as ByteRanges, extendArity)])
        : encodeCanonical(c),
    decode: (bytes) => decodeCommand(bytes, read, shapes),
  }
}

/**
 * Decodes a command with `read`, or with the strict CBOR decoder when `read` finds it unusual; throws
 * DecodeError when what that decoder returns is not one of `shapes` (any member may propose any bytes).
 */
export function decodeCommand<C>(bytes: Uint8Array, read: (r: CommandReader) => C, shapes: CommandShapes): C {
  const r = new CommandReader(bytes)
  try {
    const command = read(r)
    if (r.at === bytes.length) return command
  } catch (err) {
    if (err !== UNUSUAL) throw err
  }
  const command = decodeCanonical(bytes)
  if (!hasShape(command, shapes)) throw new DecodeError('not a command of this collection')
  return command as C
}

function hasShape(command: unknown, shapes: CommandShapes): boolean {
  if (!Array.isArray(command) || typeof command[0] !== 'string' || !Object.hasOwn(shapes, command[0])) {
    return false
  }
  const args = shapes[command[0]]!
  return command.length === args.length + 1 && args.every((ok, i) => ok(command[i + 1]))
}

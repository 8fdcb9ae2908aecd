/**
 * The state machine every collection builds on, and the compact snapshot format its replicas share.
 */
import type { ApplyContext, StateMachine } from '../groups/state-machine.ts'
import { Digest, type StoreId } from '../primitives/digest.ts'
import { DecodeError } from '../primitives/errors.ts'

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

  abstract applyCommand(command: Command, ctx: ApplyContext): unknown

  apply(command: Command, ctx: ApplyContext): unknown {
    this.revision++
    return this.applyCommand(command, ctx)
  }

  applyBatch(commands: readonly Command[], ctxs: readonly ApplyContext[]): unknown[] {
    this.revision++
    return commands.map((c, i) => this.applyCommand(c, ctxs[i]!))
  }

  query(): null {
    return null
  }

  /**
   * The state as items of `arity` byte strings each, in the machine's deterministic order, packed as
   * `[format][arity][varint length, bytes]…`: far cheaper to write and read than CBOR for 100k items,
   * and the same bytes on every replica at the same version.
   */
  snapshot(): Uint8Array {
    return packItems(this.arity, this.snapshotItems())
  }

  restore(snapshot: Uint8Array): void {
    this.restoreItems(snapshot.length === 0 ? [] : unpackItems(this.arity, snapshot))
    this.revision++
  }

  /** How many byte strings make one item of this machine's snapshot. */
  protected abstract readonly arity: number
  protected abstract snapshotItems(): Uint8Array[][]
  protected abstract restoreItems(items: Uint8Array[][]): void
}

const SNAPSHOT_FORMAT = 1

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
      let n = b.length
      while (n >= 0x80) {
        out[at++] = (n & 0x7f) | 0x80
        n >>>= 7
      }
      out[at++] = n
      out.set(b, at)
      at += b.length
    }
  }
  return out
}

export function unpackItems(arity: number, bytes: Uint8Array): Uint8Array[][] {
  if (bytes[0] !== SNAPSHOT_FORMAT || bytes[1] !== arity)
    throw new DecodeError('unknown collection snapshot format')
  const items: Uint8Array[][] = []
  let at = 2
  let item: Uint8Array[] = []
  while (at < bytes.length) {
    let n = 0
    let shift = 0
    let b: number
    do {
      if (at >= bytes.length || shift > 28) throw new DecodeError('malformed collection snapshot')
      b = bytes[at++]!
      n |= (b & 0x7f) << shift
      shift += 7
    } while (b & 0x80)
    if (at + n > bytes.length) throw new DecodeError('truncated collection snapshot')
    item.push(bytes.subarray(at, at + n))
    at += n
    if (item.length === arity) {
      items.push(item)
      item = []
    }
  }
  if (item.length !== 0) throw new DecodeError('truncated collection snapshot')
  return items
}

function varintLength(n: number): number {
  let len = 1
  while (n >= 0x80) {
    n >>>= 7
    len++
  }
  return len
}

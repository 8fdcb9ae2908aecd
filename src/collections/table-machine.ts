import type { ApplyContext } from '../groups/state-machine.ts'
import type { StoreId } from '../primitives/digest.ts'
import { ByteTable } from './byte-table.ts'
import { type ByteRanges, CollectionMachine } from './machine.ts'

/**
 * A collection machine whose state is one ByteTable (a Map's entries, a Set's members): its snapshot
 * is the table's bytes, and a restore reads them in place.
 */
export abstract class TableMachine<Command extends readonly unknown[]> extends CollectionMachine<Command> {
  /**
   * The entries. A restore or a clear replaces it and closes the old one (iterators over it stop); a
   * compaction replaces it and leaves the old one as it was (iterators over it go on).
   */
  table: ByteTable
  /** 2: keys and values (a Map); 1: keys alone (a Set). */
  protected readonly arity: 1 | 2

  constructor(kind: string, storeId: StoreId, arity: 1 | 2) {
    super(kind, storeId)
    this.arity = arity
    this.table = new ByteTable(arity)
  }

  /**
   * Grows the table once for every `extend` of the run, then applies it. A replica catching up replays
   * its log in runs of many commands (a hundred extends of 1 000 entries for a 100k-entry Map), and
   * growing for each one copied the arena and rehashed the slots a dozen times over.
   */
  override applyBatch(commands: readonly Command[], ctxs: readonly ApplyContext[]): unknown[] {
    let entries = 0
    let bytes = 0
    for (const c of commands) {
      if (c[0] !== 'extend' || Array.isArray(c[1])) continue
      const r = c[1] as ByteRanges
      entries += this.entriesIn(r)
      bytes += r.bytes.length
    }
    if (entries > 0) this.table.reserve(entries, bytes)
    return super.applyBatch(commands, ctxs)
  }

  /** Entries an extend's ranges hold: two offsets for each key, two more for each value (a Map's). */
  protected entriesIn(r: ByteRanges): number {
    return r.ranges.length / (2 * this.arity)
  }

  /** Removes entry `i`; the table is compacted once removed entries are most of it. */
  protected removeAt(i: number): void {
    this.table.delete(i)
    this.table = this.table.compacted()
  }

  /** Empties the table: iterators over the old one stop. */
  protected clearTable(): void {
    this.table.close()
    this.table = new ByteTable(this.arity)
  }

  /** The table's bytes are the snapshot: the same as `packItems` of the items. */
  override snapshot(): Uint8Array {
    return this.table.snapshot()
  }

  protected override restoreSnapshot(snapshot: Uint8Array): void {
    const table = ByteTable.fromSnapshot(snapshot, this.arity)
    this.table.close()
    this.table = table
  }
}

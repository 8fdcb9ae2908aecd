import type { StoreId } from '../primitives/digest.ts'
import { ByteTable } from './byte-table.ts'
import { CollectionMachine } from './machine.ts'

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

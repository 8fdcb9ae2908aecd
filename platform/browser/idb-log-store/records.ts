/**
 * What IdbLogStore keeps in IndexedDB, and how a store is rebuilt from it on open (see
 * ../idb-log-store.ts for the layout and the guarantees).
 */

import type { StoredSnapshot } from '../../../src/groups/storage/log-image.ts'
import type { HardState, SnapshotMeta } from '../../../src/groups/storage/log-store.ts'
import {
  CorruptLogError,
  checkHardState,
  checkSnapshotMeta,
  initialHardState,
} from '../../../src/groups/storage/log-store.ts'
import { LogView } from '../../../src/groups/storage/log-view.ts'
import { decodeCanonical, encodeCanonical } from '../../../src/primitives/codec.ts'

export type { StoredSnapshot }

/** The object store every database holds. */
export const STORE = 'log'
/** Keys of the records that are not entries (entries have number keys, which sort before strings). */
export const META = 'meta'
export const SNAP = 'snap'
const FORMAT = 1

export interface MetaRecord {
  v: 1
  /** Canonical CBOR of the hard state. */
  hs: Uint8Array
  /** The compaction point and its term (null: unknown). */
  offset: number
  offsetTerm: number | null
  last: number
  /** Canonical CBOR of the snapshot's metadata, if there is a snapshot. */
  snap?: Uint8Array
  /** Whether `snap` (the record) holds the snapshot's payload. */
  snapData?: boolean
}

export interface EntryRecord {
  t: number
  /** The canonical CBOR of the entry (its term is repeated in `t` so that opening need not decode it). */
  b: Uint8Array
}

/** One change the flusher makes in a write transaction. */
export type Action =
  | { put: IDBValidKey; value: unknown }
  | { delete: IDBValidKey }
  /** Deletes the entries with index ≥ `deleteFrom`. */
  | { deleteFrom: number }
  /** Deletes the entries with index ≤ `deleteUpTo`. */
  | { deleteUpTo: number }
  | { clear: true }

export interface StoredState {
  view: LogView<Uint8Array>
  hardState: Uint8Array
  snapshot?: StoredSnapshot
}

/**
 * A Uint8Array that owns its whole buffer. IndexedDB stores a typed array by cloning its entire
 * ArrayBuffer, so a view into a larger buffer would store (and keep in memory) all of it.
 */
export function exact(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice()
}

/**
 * Rebuilds the store's state from what one readonly transaction read. No `meta` and nothing else: an
 * empty store (new, or its database deleted with the site's data). Anything this store could not have
 * written (entries without `meta`, a gap, a format from a later version) is refused with CorruptLogError.
 */
export function readStored(
  name: string,
  stored: { meta: unknown; snap: unknown; keys: IDBValidKey[]; values: unknown[] },
): StoredState {
  const corrupt = (what: string) => new CorruptLogError(`IndexedDB log store ${name}: ${what}`)
  const { meta, snap, keys, values } = stored
  if (meta === undefined) {
    if (keys.length > 0 || snap !== undefined) throw corrupt('entries or a snapshot without a meta record')
    return { view: new LogView<Uint8Array>(), hardState: encodeCanonical(initialHardState()) }
  }
  const m = meta as Partial<MetaRecord>
  if (m === null || typeof m !== 'object') throw corrupt('the meta record is not an object')
  if (m.v !== FORMAT) throw corrupt(`unknown format ${String(m.v)} (written by another version?)`)
  if (
    !isIndex(m.offset) ||
    !isIndex(m.last) ||
    m.last < m.offset ||
    (m.offsetTerm !== null && !isIndex(m.offsetTerm)) ||
    !(m.hs instanceof Uint8Array)
  ) {
    throw corrupt('the meta record is malformed')
  }
  let hardState: HardState
  try {
    hardState = decodeCanonical(m.hs) as HardState
    checkHardState(hardState)
  } catch (err) {
    throw new CorruptLogError(`IndexedDB log store ${name}: the stored hard state is malformed`, {
      cause: err,
    })
  }
  let snapshot: StoredSnapshot | undefined
  if (m.snap !== undefined) {
    try {
      snapshot = { meta: decodeCanonical(m.snap) as SnapshotMeta }
      checkSnapshotMeta(snapshot.meta)
    } catch (err) {
      throw new CorruptLogError(`IndexedDB log store ${name}: the stored snapshot metadata is malformed`, {
        cause: err,
      })
    }
    if (m.snapData) {
      if (!(snap instanceof Uint8Array)) throw corrupt('the snapshot payload is missing')
      snapshot.data = snap
    }
  }
  if (keys.length !== m.last - m.offset || keys.length !== values.length) {
    throw corrupt(`meta says entries ${m.offset + 1}..${m.last}, the database holds ${keys.length}`)
  }
  const view = new LogView<Uint8Array>()
  view.resetTo(m.offset, m.offsetTerm ?? undefined)
  for (let i = 0; i < keys.length; i++) {
    const index = m.offset + 1 + i
    const v = values[i] as Partial<EntryRecord> | null
    if (keys[i] !== index) throw corrupt(`entry ${index} is missing (found key ${String(keys[i])})`)
    if (v === null || typeof v !== 'object' || !isIndex(v.t) || !(v.b instanceof Uint8Array)) {
      throw corrupt(`entry ${index} is malformed`)
    }
    view.push(v.t, v.b)
  }
  return snapshot === undefined ? { view, hardState: m.hs } : { view, hardState: m.hs, snapshot }
}

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

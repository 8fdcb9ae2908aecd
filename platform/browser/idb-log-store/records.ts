/**
 * What IdbLogStore keeps in IndexedDB, and how a store is rebuilt from it on open (see
 * ../idb-log-store.ts for the layout and the guarantees).
 */

import type { StoredSnapshot } from '../../../src/groups/storage/log-image.ts'
import type { HardState, LogEntry, SnapshotMeta } from '../../../src/groups/storage/log-store.ts'
import {
  CorruptLogError,
  checkHardState,
  checkSnapshotMeta,
  initialHardState,
} from '../../../src/groups/storage/log-store.ts'
import { LogView } from '../../../src/groups/storage/log-view.ts'
import { decodeCanonical, encodeCanonical } from '../../../src/primitives/codec.ts'
import { describeValue } from '../../../src/primitives/errors.ts'

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
  const { meta, snap, keys, values } = stored
  if (meta === undefined) return emptyState(name, keys, snap)
  const m = checkedMeta(name, meta)
  checkStoredHardState(name, m.hs)
  const snapshot = readSnapshot(name, m, snap)
  const view = readEntries(name, m, keys, values)
  return snapshot === undefined ? { view, hardState: m.hs } : { view, hardState: m.hs, snapshot }
}

function corrupt(name: string, what: string, options?: ErrorOptions): CorruptLogError {
  return new CorruptLogError(`IndexedDB log store ${name}: ${what}`, options)
}

/** A store without `meta` must hold nothing else: `meta` is written with (or before) all the rest. */
function emptyState(name: string, keys: IDBValidKey[], snap: unknown): StoredState {
  if (keys.length > 0 || snap !== undefined)
    throw corrupt(name, 'entries or a snapshot without a meta record')
  return { view: new LogView<Uint8Array>(), hardState: encodeCanonical(initialHardState()) }
}

/** The meta record, checked to be one this version writes, with consistent bounds. */
function checkedMeta(name: string, meta: unknown): MetaRecord {
  const m = meta as Partial<MetaRecord>
  if (m === null || typeof m !== 'object') throw corrupt(name, 'the meta record is not an object')
  if (m.v === undefined) throw corrupt(name, 'the meta record has no format version')
  if (m.v !== FORMAT)
    throw corrupt(name, `unknown format ${describeValue(m.v)} (written by another version?)`)
  if (
    !isIndex(m.offset) ||
    !isIndex(m.last) ||
    m.last < m.offset ||
    (m.offsetTerm !== null && !isIndex(m.offsetTerm)) ||
    !(m.hs instanceof Uint8Array)
  ) {
    throw corrupt(name, 'the meta record is malformed')
  }
  return m as MetaRecord
}

/** The hard state is kept encoded (the store hands out the bytes), but must decode to a valid one. */
function checkStoredHardState(name: string, hs: Uint8Array): void {
  try {
    checkHardState(decodeCanonical(hs) as HardState)
  } catch (err) {
    throw corrupt(name, 'the stored hard state is malformed', { cause: err })
  }
}

/** The snapshot `meta` names, if any; its payload comes from the `snap` record when `meta` says so. */
function readSnapshot(name: string, m: MetaRecord, snap: unknown): StoredSnapshot | undefined {
  // `snap` is put or deleted in the transaction that writes the `meta` naming it: a payload `meta`
  // does not name lost its metadata, and opening without it would drop the state it holds.
  if (snap !== undefined && (m.snap === undefined || !m.snapData))
    throw corrupt(name, 'the meta record does not name the snapshot payload stored')
  if (m.snap === undefined) return undefined
  let snapshot: StoredSnapshot
  try {
    snapshot = { meta: decodeCanonical(m.snap) as SnapshotMeta }
    checkSnapshotMeta(snapshot.meta)
  } catch (err) {
    throw corrupt(name, 'the stored snapshot metadata is malformed', { cause: err })
  }
  if (m.snapData) {
    if (!(snap instanceof Uint8Array)) throw corrupt(name, 'the snapshot payload is missing')
    snapshot.data = snap
  }
  return snapshot
}

/** The entries after the compaction point: exactly those `meta` counts, under consecutive keys. */
function readEntries(
  name: string,
  m: MetaRecord,
  keys: IDBValidKey[],
  values: unknown[],
): LogView<Uint8Array> {
  if (keys.length !== m.last - m.offset || keys.length !== values.length) {
    throw corrupt(name, `meta says entries ${m.offset + 1}..${m.last}, the database holds ${keys.length}`)
  }
  const view = new LogView<Uint8Array>()
  view.resetTo(m.offset, m.offsetTerm ?? undefined)
  for (let i = 0; i < keys.length; i++) {
    const index = m.offset + 1 + i
    const v = values[i] as Partial<EntryRecord> | null
    if (keys[i] !== index) throw corrupt(name, `entry ${index} is missing (found key ${String(keys[i])})`)
    if (v === null || typeof v !== 'object' || !isIndex(v.t) || !(v.b instanceof Uint8Array)) {
      throw corrupt(name, `entry ${index} is malformed`)
    }
    view.push(v.t, v.b)
  }
  return view
}

/**
 * Runs a read of the log (entries are decoded only when read, not on open), naming the database in a
 * CorruptLogError, and refuses entries whose bytes disagree with the term stored beside them, which
 * `term()` answers from: Raft would match logs on one term and replicate another.
 */
export function checkedRead<T>(
  name: string,
  view: LogView<Uint8Array>,
  read: () => T,
  entriesOf: (out: T) => readonly LogEntry[],
): T {
  let out: T
  try {
    out = read()
  } catch (err) {
    if (err instanceof CorruptLogError) throw corrupt(name, err.message, { cause: err })
    throw err
  }
  for (const e of entriesOf(out)) {
    const t = view.term(e.index)
    if (e.term !== t) throw corrupt(name, `entry ${e.index} holds term ${e.term}, its record says ${t}`)
  }
  return out
}

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

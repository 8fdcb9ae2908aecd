import { promisifyRequest } from 'idb-keyval'
import { LogImage } from '../../src/groups/storage/log-image.ts'
import type {
  HardState,
  LoadedLog,
  LogEntry,
  LogStore,
  ReadOptions,
  SnapshotMeta,
  WriteBatch,
} from '../../src/groups/storage/log-store.ts'
import { StorageError } from '../../src/groups/storage/log-store.ts'
import type { DataDirLock } from '../../src/network/platform.ts'
import { encodeCanonical } from '../../src/primitives/codec.ts'
import { ClosedError, InvalidArgumentError } from '../../src/primitives/errors.ts'
import {
  type Action,
  checkedRead,
  exact,
  META,
  type MetaRecord,
  readStored,
  SNAP,
  STORE,
  type StoredState,
} from './idb-log-store/records.ts'
import { lockByName } from './web-lock.ts'

/** Options of IdbLogStore.open. */
export interface IdbLogStoreOptions {
  /**
   * The `durability` hint of every write transaction (default `'strict'`). `'strict'`: the browser
   * reports a transaction complete only once its changes are on persistent storage (flushed), so a
   * resolved write survives the tab, the browser and the machine crashing. `'relaxed'`: complete as soon
   * as the changes are handed to the operating system: a resolved write survives the tab or the browser
   * crashing, not the operating system crashing or the machine losing power before its write-back. That
   * is faster, and enough for a read replica (it re-syncs what it loses), but not for a voter (it could
   * come back having forgotten a vote). The hint is Baseline since 2024; a browser that does not know it
   * ignores it and uses its own default, which may be relaxed.
   */
  durability?: 'strict' | 'relaxed'
}

/**
 * The durable log store for browsers: one IndexedDB database per store (named by the caller, usually
 * `<dataDir>/<store name>`) holding one object store `log`:
 * - `meta` (string key): `{ v: 1, hs, offset, offsetTerm, last, snap?, snapData? }`: the hard state (as
 *   canonical CBOR, so unknown fields survive), the compaction point and its term, the last index, and
 *   the snapshot's metadata (CBOR) with whether its payload is stored;
 * - `snap` (string key): the snapshot payload;
 * - `1, 2, …` (number keys): the log entries as `{ t: term, b: canonical CBOR of the entry }`.
 *
 * When to use: the browser platform opens one per group when the Network has a `dataDir`, so a reloaded
 * dashboard shows its collections' last state at once and then catches up. Tests run it in Node over
 * `fake-indexeddb`.
 *
 * Durability and atomicity. Every mutation applies to the in-memory view at once (in call order, as
 * the LogStore contract requires) and queues its IndexedDB changes; a flusher writes everything queued
 * in one readwrite transaction with `durability: 'strict'` (see IdbLogStoreOptions) and resolves those
 * calls in order when the transaction completes. A transaction is atomic, and every transaction writes
 * `meta` last, so after a crash the database holds the state after some resolved-or-later call, never a
 * snapshot without its log truncation, a log without its snapshot, or an older hard state than a
 * resolved write's (hard state never rolls back). A failed transaction (quota exceeded, the database
 * closed under it) poisons the store: that call and every later one reject with `StorageError`.
 *
 * Gotchas:
 * - The log's entries and the snapshot payload are also kept in memory (reads never touch IndexedDB):
 *   memory grows with the uncompacted log, which `snapshotEvery` bounds.
 * - "Clear site data", or the browser evicting a best-effort origin, deletes the database whole. While a
 *   store is open the browser closes its connection: the store fails with `StorageError` (it cannot know
 *   what survived) and the page must reload. On the next open the database is gone, so the store is empty
 *   and the replica re-syncs from its peers, as a new member would. The browser platform asks for
 *   persistent storage (`navigator.storage.persist()`) to make eviction unlikely.
 * - A database that exists but was not written by this store (no `log` object store, unknown format,
 *   entries that do not match `meta`, a snapshot payload `meta` does not name) is refused with
 *   StorageError / CorruptLogError, never overwritten. Entries are decoded when read, not on open: one
 *   whose bytes are damaged (or disagree with the term stored beside them) fails that read with
 *   CorruptLogError.
 * - One store per database: a second `open` of the same name, in this tab or another one of the origin,
 *   gets DataDirLockedError (Web Locks; see web-lock.ts).
 */
export class IdbLogStore implements LogStore {
  readonly durable = true
  /** The IndexedDB database this store lives in. */
  readonly name: string
  readonly #durability: 'strict' | 'relaxed'
  readonly #db: IDBDatabase
  readonly #lock: DataDirLock

  /** The whole log in memory: reads come from here, and every change lands here before it is written. */
  readonly #image: LogImage

  #queue: Job[] = []
  #flushing: Promise<void> | undefined
  #failed: StorageError | undefined
  #closed = false
  #closing: Promise<void> | undefined

  private constructor(
    name: string,
    db: IDBDatabase,
    lock: DataDirLock,
    durability: 'strict' | 'relaxed',
    state: StoredState,
  ) {
    this.name = name
    this.#db = db
    this.#lock = lock
    this.#durability = durability
    this.#image = new LogImage(exact, state)
    // The browser closes the connection when the site's data is cleared; another connection asks us to
    // close before it deletes or upgrades the database. Either way what is stored is no longer ours.
    db.addEventListener('close', () => this.#fail('the browser closed the database (site data cleared?)'))
    db.addEventListener('versionchange', () => {
      this.#fail('another connection is deleting or upgrading the database')
      db.close()
    })
  }

  /** Opens (creating it if needed) the store in the IndexedDB database `name`. */
  static async open(name: string, options: IdbLogStoreOptions = {}): Promise<IdbLogStore> {
    const durability = options.durability ?? 'strict'
    if (durability !== 'strict' && durability !== 'relaxed') {
      throw new InvalidArgumentError(`durability must be 'strict' or 'relaxed', got ${String(durability)}`)
    }
    if (typeof indexedDB === 'undefined') throw new StorageError('IndexedDB is not available here')
    const lock = await lockByName(`mosaik:log-store:${name}`, name, 'log store database')
    let db: IDBDatabase | undefined
    try {
      db = await openDatabase(name)
      const store = db.transaction(STORE, 'readonly').objectStore(STORE)
      const range = IDBKeyRange.bound(Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY)
      const [meta, snap, keys, values] = await Promise.all([
        promisifyRequest(store.get(META)),
        promisifyRequest(store.get(SNAP)),
        promisifyRequest(store.getAllKeys(range)),
        promisifyRequest(store.getAll(range)),
      ])
      const state = readStored(name, { meta, snap, keys, values })
      return new IdbLogStore(name, db, lock, durability, state)
    } catch (err) {
      db?.close()
      await lock.release()
      if (err instanceof StorageError) throw err
      throw new StorageError(`cannot open the log store ${name}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Deletes the database `name` (the store must be closed): for tests and "forget this replica". */
  static async destroy(name: string): Promise<void> {
    await promisifyRequest(indexedDB.deleteDatabase(name) as unknown as IDBRequest<undefined>)
  }

  // -------------------------------------------------------------------------------------------------
  // Reads: from memory

  async load(): Promise<LoadedLog> {
    this.#checkUsable()
    return checkedRead(
      this.name,
      this.#image.view,
      () => this.#image.load(),
      (l) => l.entries,
    )
  }

  firstIndex(): number {
    return this.#image.view.firstIndex()
  }

  lastIndex(): number {
    return this.#image.view.lastIndex()
  }

  term(index: number): number | undefined {
    return this.#image.view.term(index)
  }

  async entries(from: number, to: number, options?: ReadOptions): Promise<LogEntry[]> {
    this.#checkUsable()
    return checkedRead(
      this.name,
      this.#image.view,
      () => this.#image.read(from, to, options?.maxBytes),
      (e) => e,
    )
  }

  hardState(): HardState {
    return this.#image.hardState()
  }

  snapshot(): SnapshotMeta | undefined {
    return this.#image.snapshotMeta()
  }

  async readSnapshot(): Promise<
    | {
        /** What the snapshot covers. */
        meta: SnapshotMeta
        /** The state machine's snapshot bytes. */
        data?: Uint8Array
      }
    | undefined
  > {
    this.#checkUsable()
    return this.#image.readSnapshot()
  }

  // -------------------------------------------------------------------------------------------------
  // Mutations: applied to the image now, written by the flusher

  async write(batch: WriteBatch): Promise<void> {
    this.#checkUsable()
    const { truncated, encoded } = this.#image.write(batch)
    const actions: Action[] = []
    if (truncated) actions.push({ deleteFrom: batch.truncateFrom! })
    for (let i = 0; i < encoded.length; i++) {
      const e = batch.entries![i]!
      actions.push({ put: e.index, value: { t: e.term, b: encoded[i]! } })
    }
    return this.#enqueue(actions)
  }

  append(entries: readonly LogEntry[]): Promise<void> {
    return this.write({ entries })
  }

  truncateFrom(index: number): Promise<void> {
    return this.write({ truncateFrom: index })
  }

  saveHardState(state: HardState): Promise<void> {
    return this.write({ hardState: state })
  }

  async saveSnapshot(meta: SnapshotMeta, data?: Uint8Array): Promise<void> {
    this.#checkUsable()
    const stored = this.#image.saveSnapshot(meta, data)
    return this.#enqueue([stored.data === undefined ? { delete: SNAP } : { put: SNAP, value: stored.data }])
  }

  async installSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void> {
    this.#checkUsable()
    const stored = this.#image.installSnapshot(meta, data)
    // One transaction: the snapshot, the emptied log and the raised commit land together or not at all.
    return this.#enqueue([{ deleteFrom: 0 }, { put: SNAP, value: stored.data }])
  }

  async compact(upToIndex: number): Promise<void> {
    this.#checkUsable()
    return this.#enqueue(this.#image.compact(upToIndex) ? [{ deleteUpTo: upToIndex }] : [])
  }

  async reset(): Promise<void> {
    this.#checkUsable()
    this.#image.reset()
    return this.#enqueue([{ clear: true }])
  }

  /** Waits for pending writes, then closes the database and releases the lock. Idempotent. */
  close(): Promise<void> {
    this.#closed = true
    this.#closing ??= (async () => {
      try {
        await this.#flushing
      } finally {
        this.#db.close()
        await this.#lock.release()
      }
    })()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  // -------------------------------------------------------------------------------------------------
  // The flusher

  #enqueue(actions: Action[]): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    this.#queue.push({ actions, meta: this.#meta(), resolve, reject })
    this.#flushing ??= this.#flush()
    return promise
  }

  /** What `meta` must say once every mutation so far is stored. */
  #meta(): MetaRecord {
    const m: MetaRecord = {
      v: 1,
      hs: this.#image.hardStateBytes,
      offset: this.#image.view.offset,
      offsetTerm: this.#image.view.offsetTerm ?? null,
      last: this.#image.view.lastIndex(),
    }
    const s = this.#image.snapshot
    if (s !== undefined) {
      m.snap = exact(encodeCanonical(s.meta))
      m.snapData = s.data !== undefined
    }
    return m
  }

  /** Writes queued jobs, a transaction at a time (everything queued meanwhile goes in the next one). */
  async #flush(): Promise<void> {
    // Let calls issued in the same turn join the first transaction.
    await Promise.resolve()
    while (this.#queue.length > 0) {
      const jobs = this.#queue
      this.#queue = []
      if (this.#failed) {
        for (const j of jobs) j.reject(this.#failed)
        continue
      }
      try {
        await this.#commit(jobs)
        for (const j of jobs) j.resolve()
      } catch (err) {
        this.#fail(`cannot write to IndexedDB: ${(err as Error)?.message ?? String(err)}`, err)
        for (const j of jobs) j.reject(this.#failed!)
      }
    }
    this.#flushing = undefined
  }

  #commit(jobs: Job[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let tx: IDBTransaction
      try {
        tx = this.#db.transaction(STORE, 'readwrite', { durability: this.#durability })
      } catch (err) {
        reject(err)
        return
      }
      tx.oncomplete = () => resolve()
      tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'))
      try {
        const store = tx.objectStore(STORE)
        for (const job of jobs) for (const a of job.actions) apply(store, a)
        store.put(jobs.at(-1)!.meta, META)
      } catch (err) {
        reject(err)
        try {
          tx.abort()
        } catch {}
      }
    })
  }

  #fail(message: string, cause?: unknown): void {
    if (this.#failed || this.#closed) return
    this.#failed = new StorageError(`log store ${this.name}: ${message}`, { cause })
  }

  #checkUsable(): void {
    if (this.#closed) throw new ClosedError('log store is closed')
    if (this.#failed) throw this.#failed
  }
}

interface Job {
  actions: Action[]
  meta: MetaRecord
  resolve: () => void
  reject: (err: Error) => void
}

/**
 * Opens the database, creating its object store on first use (the schema of idb-keyval's `createStore`,
 * so `idb-keyval` calls can read it). The connection is opened here rather than through `createStore`,
 * which keeps its connection to itself: the store needs it to pass `durability`, to close it on
 * `close()` and after a failed open (an open connection blocks `deleteDatabase` forever), and to hear
 * `close` and `versionchange`.
 */
async function openDatabase(name: string): Promise<IDBDatabase> {
  const request = indexedDB.open(name)
  request.onupgradeneeded = () => request.result.createObjectStore(STORE)
  const db = await promisifyRequest(request)
  if (!db.objectStoreNames.contains(STORE)) {
    db.close()
    throw new StorageError(`the IndexedDB database ${name} exists but is not a log store (no '${STORE}')`)
  }
  return db
}

function apply(store: IDBObjectStore, a: Action): void {
  if ('put' in a) store.put(a.value, a.put)
  else if ('delete' in a) store.delete(a.delete)
  else if ('deleteFrom' in a) store.delete(IDBKeyRange.bound(a.deleteFrom, Number.POSITIVE_INFINITY))
  else if ('deleteUpTo' in a) store.delete(IDBKeyRange.bound(Number.NEGATIVE_INFINITY, a.deleteUpTo))
  else store.clear()
}

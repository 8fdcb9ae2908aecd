/**
 * The browser's IndexedDB log store, run in Node over fake-indexeddb: the shared LogStore compliance
 * suite, then what only this store does (an emptied database, a database deleted under an open store,
 * atomic transactions, refusals, Web Locks).
 */
import 'fake-indexeddb/auto'
import { promisifyRequest } from 'idb-keyval'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { IdbLogStore } from '../../../platform/browser/idb-log-store.ts'
import { databaseName, lockBrowserDataDir, openBrowserLogStore } from '../../../platform/browser/storage.ts'
import { lockByName } from '../../../platform/browser/web-lock.ts'
import {
  ClosedError,
  CorruptLogError,
  DataDirLockedError,
  InvalidArgumentError,
  type LogStore,
  StorageError,
} from '../../../platform/node/index.ts'
import { secs, within } from '../../support/time.ts'
import { indices, meta, random, range, runLogStoreCompliance } from './log-store-compliance.ts'

let counter = 0
const freshName = () => `mosaik-test-${process.pid}-${++counter}`

runLogStoreCompliance('IdbLogStore', async () => {
  const name = freshName()
  return { open: () => IdbLogStore.open(name), cleanup: () => IdbLogStore.destroy(name) }
})

describe('IdbLogStore', () => {
  let name: string
  const stores: LogStore[] = []

  async function open(options?: { durability?: 'strict' | 'relaxed' }): Promise<IdbLogStore> {
    const s = await IdbLogStore.open(name, options)
    stores.push(s)
    return s
  }

  /** Runs `fn` on the raw object store, as something other than the store would, then closes. */
  async function raw<T>(fn: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await promisifyRequest(indexedDB.open(name))
    try {
      return await promisifyRequest(fn(db.transaction('log', 'readwrite').objectStore('log')))
    } finally {
      db.close()
    }
  }

  beforeEach(() => {
    name = freshName()
  })

  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close()
    await IdbLogStore.destroy(name)
  })

  it('an emptied database (site data cleared) opens as an empty store', async () => {
    const s = await open()
    await s.write({ hardState: { term: 3, vote: 'a', commit: 5 }, entries: range(1, 8, 3) })
    await s.saveSnapshot(meta(4, 3), random(100))
    await s.compact(4)
    await s.close()
    await IdbLogStore.destroy(name)
    const again = await open()
    expect(await again.load()).toEqual({ hardState: { term: 0, vote: null, commit: 0 }, entries: [] })
    expect([again.firstIndex(), again.lastIndex()]).toEqual([1, 0])
    await again.append(range(1, 2, 1))
    expect(indices(await again.entries(1, 10))).toEqual([1, 2])
  })

  it('a database deleted under an open store fails it, and the next open is empty', async () => {
    const s = await open()
    await s.append(range(1, 5, 1))
    // Another connection deletes the database: the store closes its connection and stops writing.
    await within(secs(5), IdbLogStore.destroy(name), 'deleteDatabase')
    await expect(s.append(range(6, 6, 1))).rejects.toBeInstanceOf(StorageError)
    await expect(s.entries(1, 5)).rejects.toBeInstanceOf(StorageError)
    await s.close()
    const again = await open()
    expect(again.lastIndex()).toBe(0)
    expect((await again.load()).entries).toEqual([])
  })

  it('a failed transaction writes nothing of it: snapshot and log truncation stay together', async () => {
    const s = await open()
    await s.write({ hardState: { term: 2, vote: 'b', commit: 6 }, entries: range(1, 10, 2) })
    await s.saveSnapshot(meta(3, 2), random(10))
    await s.compact(3)
    // The install's transaction fails half-way (after deleting the log, while storing the snapshot).
    const put = IDBObjectStore.prototype.put
    IDBObjectStore.prototype.put = function (this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
      if (key === 'snap') throw new DOMException('quota exceeded', 'QuotaExceededError')
      return put.call(this, value, key)
    }
    try {
      await expect(s.installSnapshot(meta(20, 4), random(1000))).rejects.toBeInstanceOf(StorageError)
    } finally {
      IDBObjectStore.prototype.put = put
    }
    // Poisoned: it no longer knows what is stored.
    await expect(s.append(range(21, 21, 4))).rejects.toBeInstanceOf(StorageError)
    await s.close()
    const again = await open()
    expect(again.firstIndex()).toBe(4)
    expect(again.lastIndex()).toBe(10)
    expect(again.snapshot()).toEqual(meta(3, 2))
    expect(again.hardState()).toEqual({ term: 2, vote: 'b', commit: 6 })
    expect(await again.entries(1, 100)).toEqual(range(4, 10, 2))
  })

  it('writes issued in one turn share a transaction and resolve in order', async () => {
    const s = await open({ durability: 'relaxed' })
    let transactions = 0
    const transaction = IDBDatabase.prototype.transaction
    IDBDatabase.prototype.transaction = function (
      this: IDBDatabase,
      ...args: Parameters<typeof transaction>
    ) {
      if (args[1] === 'readwrite') {
        transactions++
        expect(args[2]).toEqual({ durability: 'relaxed' })
      }
      return transaction.apply(this, args)
    }
    try {
      const order: number[] = []
      await Promise.all(range(1, 50, 1).map((e) => s.append([e]).then(() => void order.push(e.index))))
      expect(order).toEqual(indices(range(1, 50, 1)))
    } finally {
      IDBDatabase.prototype.transaction = transaction
    }
    expect(transactions).toBe(1)
    await s.close()
    expect((await open()).lastIndex()).toBe(50)
  })

  it('refuses what it did not write, and never overwrites it', async () => {
    const s = await open()
    await s.append(range(1, 5, 1))
    await s.close()
    // an entry missing in the middle
    await raw((store) => store.delete(3))
    await expect(IdbLogStore.open(name)).rejects.toBeInstanceOf(CorruptLogError)
    // entries without the meta record
    await raw((store) => store.delete('meta'))
    await expect(IdbLogStore.open(name)).rejects.toBeInstanceOf(CorruptLogError)
    // a later format
    await raw((store) => store.put({ v: 2 }, 'meta'))
    await expect(IdbLogStore.open(name)).rejects.toThrow(/unknown format 2/)
    expect(await raw((store) => store.count())).toBe(5)
    // a failed open leaves the name free
    await raw((store) => store.clear())
    await (await open()).close()
  })

  /** Every record of the database, key and value: a refused open or read must leave them as they were. */
  async function dump(): Promise<[IDBValidKey, unknown][]> {
    const keys = await raw((store) => store.getAllKeys())
    const values = await raw((store) => store.getAll())
    return keys.map((k, i) => [k, values[i]])
  }

  /** Opening is refused with CorruptLogError naming the database and `problem`, and changes nothing. */
  async function expectRefused(problem: RegExp): Promise<void> {
    const before = await dump()
    const err = await IdbLogStore.open(name).then(
      async (s) => {
        await s.close()
        return undefined
      },
      (e: unknown) => e,
    )
    expect(err, 'the store opened').toBeInstanceOf(CorruptLogError)
    expect((err as CorruptLogError).code).toBe('CORRUPT_LOG')
    expect((err as Error).message).toContain(name)
    expect((err as Error).message).toMatch(problem)
    expect(await dump()).toEqual(before)
  }

  /** Entries 1..5 of term 2, a vote and a snapshot at 2 with its payload: the acknowledged state. */
  async function written(): Promise<{ meta: Record<string, unknown>; entry3: { t: number; b: Uint8Array } }> {
    const s = await open()
    await s.write({ hardState: { term: 2, vote: 'b', commit: 4 }, entries: range(1, 5, 2) })
    await s.saveSnapshot(meta(2, 2), random(50))
    await s.close()
    stores.splice(stores.indexOf(s), 1)
    return {
      meta: (await raw((store) => store.get('meta'))) as Record<string, unknown>,
      entry3: (await raw((store) => store.get(3))) as { t: number; b: Uint8Array },
    }
  }

  async function expectIntact(): Promise<void> {
    const s = await open()
    expect(await s.entries(1, 10)).toEqual(range(1, 5, 2))
    expect(s.hardState()).toEqual({ term: 2, vote: 'b', commit: 4 })
    expect(s.snapshot()).toEqual(meta(2, 2))
    await s.close()
  }

  it('refuses a malformed meta record at open with CorruptLogError, and changes nothing', async () => {
    const { meta: good } = await written()
    const hs = good.hs as Uint8Array
    const cases: [unknown, RegExp][] = [
      ['meta', /the meta record is not an object/],
      [null, /the meta record is not an object/],
      [{ ...good, v: undefined }, /the meta record has no format version/],
      [{ ...good, v: '1' }, /unknown format "1"/],
      [{ ...good, v: 2, hs: 'a later layout' }, /unknown format 2 \(written by another version\?\)/],
      [{ ...good, offset: '0' }, /the meta record is malformed/],
      [{ ...good, last: -1 }, /the meta record is malformed/],
      [{ ...good, offsetTerm: undefined }, /the meta record is malformed/],
      [{ ...good, hs: Array.from(hs) }, /the meta record is malformed/],
      [{ ...good, hs: hs.slice(0, hs.length - 3) }, /the stored hard state is malformed/],
      [{ ...good, snap: new Uint8Array([0xa1, 0x61]) }, /the stored snapshot metadata is malformed/],
      [{ ...good, snap: 'snapshot' }, /the stored snapshot metadata is malformed/],
    ]
    for (const [value, problem] of cases) {
      await raw((store) => store.put(value, 'meta'))
      await expectRefused(problem)
    }
    await raw((store) => store.put(good, 'meta'))
    await expectIntact()
  })

  it('refuses malformed entry records at open, and changes nothing', async () => {
    const { entry3 } = await written()
    const cases: [IDBValidKey, unknown, RegExp][] = [
      [3, null, /entry 3 is malformed/],
      [3, 'entry', /entry 3 is malformed/],
      [3, { ...entry3, t: '2' }, /entry 3 is malformed/],
      [3, { ...entry3, t: -1 }, /entry 3 is malformed/],
      [3, { t: 2 }, /entry 3 is malformed/],
      [3, { t: 2, b: Array.from(entry3.b) }, /entry 3 is malformed/],
      [6, entry3, /meta says entries 1\.\.5, the database holds 6/],
    ]
    for (const [key, value, problem] of cases) {
      await raw((store) => store.put(value, key))
      await expectRefused(problem)
      if (key === 3) await raw((store) => store.put(entry3, 3))
      else await raw((store) => store.delete(key))
    }
    await expectIntact()
  })

  it('an entry whose bytes are damaged opens, but reading it is refused, naming the database', async () => {
    const { entry3 } = await written()
    const entry2 = (await raw((store) => store.get(2))) as { t: number; b: Uint8Array }
    const cases: [unknown, RegExp][] = [
      [{ ...entry3, b: entry3.b.slice(0, entry3.b.length - 2) }, /stored log entry 3 does not decode/],
      [{ ...entry3, b: entry2.b }, /stored log entry 3 carries index 2/],
      [{ ...entry3, t: 9 }, /entry 3 holds term 2, its record says 9/],
    ]
    for (const [value, problem] of cases) {
      await raw((store) => store.put(value, 3))
      const s = await open()
      for (const read of [() => s.entries(1, 5), () => s.entries(3, 3), () => s.load()]) {
        const err = await read().catch((e: unknown) => e)
        expect(err).toBeInstanceOf(CorruptLogError)
        expect((err as Error).message).toContain(`IndexedDB log store ${name}:`)
        expect((err as Error).message).toMatch(problem)
      }
      // the entries around it still read, and nothing was written
      expect(await s.entries(1, 2)).toEqual(range(1, 2, 2))
      expect(await s.entries(4, 5)).toEqual(range(4, 5, 2))
      await s.close()
      expect(await raw((store) => store.get(3))).toEqual(value)
    }
    await raw((store) => store.put(entry3, 3))
    await expectIntact()
  })

  it('refuses a snapshot payload without its metadata, and metadata without its payload', async () => {
    const { meta: good } = await written()
    const payload = await raw((store) => store.get('snap'))
    const { snap: _, snapData: __, ...noSnapshot } = good
    for (const value of [noSnapshot, { ...good, snapData: false }]) {
      await raw((store) => store.put(value, 'meta'))
      await expectRefused(/the meta record does not name the snapshot payload stored/)
    }
    await raw((store) => store.put(good, 'meta'))
    await raw((store) => store.delete('snap'))
    await expectRefused(/the snapshot payload is missing/)
    await raw((store) => store.put(payload, 'snap'))
    await expectIntact()
  })

  it('refuses a database of the same name without its object store', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = indexedDB.open(name)
      req.onupgradeneeded = () => req.result.createObjectStore('other')
      req.onsuccess = () => {
        req.result.close()
        resolve()
      }
      req.onerror = () => reject(req.error)
    })
    const err = await IdbLogStore.open(name).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StorageError)
    expect((err as StorageError).code).toBe('STORAGE')
  })

  it('one store per database: a second open is refused until the first closes', async () => {
    const s = await open()
    const err = await IdbLogStore.open(name).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DataDirLockedError)
    expect((err as DataDirLockedError).code).toBe('DATA_DIR_LOCKED')
    await s.close()
    await expect(s.append(range(1, 1, 1))).rejects.toBeInstanceOf(ClosedError)
    const again = await open()
    expect(again.lastIndex()).toBe(0)
  })

  it('rejects an unknown durability', async () => {
    await expect(IdbLogStore.open(name, { durability: 'lax' as 'strict' })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    )
  })
})

describe('browser dataDir', () => {
  it('a Web Lock keeps a second tab off a dataDir', async () => {
    const dataDir = `dir-${freshName()}`
    const lock = await lockBrowserDataDir(dataDir)
    // the same realm (a second Network in this tab)
    await expect(lockBrowserDataDir(dataDir)).rejects.toBeInstanceOf(DataDirLockedError)
    await lock.release()
    await lock.release() // idempotent
    // another tab holds the Web Lock
    const { promise: held, resolve: granted } = Promise.withResolvers<void>()
    const { promise: done, resolve: letGo } = Promise.withResolvers<void>()
    const other = navigator.locks.request(`mosaik:data-dir:${dataDir}`, async () => {
      granted()
      await done
    })
    await held
    const err = await lockBrowserDataDir(dataDir).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DataDirLockedError)
    expect((err as Error).message).toMatch(/another tab/)
    letGo()
    await other
    await (await lockBrowserDataDir(dataDir)).release()
  })

  it('lockByName releases on release() only', async () => {
    const lock = await lockByName('mosaik:test:x', 'x', 'thing')
    await expect(lockByName('mosaik:test:x', 'x', 'thing')).rejects.toBeInstanceOf(DataDirLockedError)
    await lock.release()
    await (await lockByName('mosaik:test:x', 'x', 'thing')).release()
  })

  it('openLogStore opens <dataDir>/<name> and keeps what it wrote', async () => {
    const dataDir = `dir-${freshName()}`
    const s = await openBrowserLogStore(dataDir, 'group-1')
    await s.append(range(1, 3, 1))
    await s.close()
    const again = await openBrowserLogStore(dataDir, 'group-1')
    expect(again.lastIndex()).toBe(3)
    await again.close()
    await IdbLogStore.destroy(databaseName(dataDir, 'group-1'))
  })
})

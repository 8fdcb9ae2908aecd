/**
 * What the browser platform does with a Network's `dataDir`: it names IndexedDB databases (one per
 * group log, `<dataDir>/<name>`), and a Web Lock named after it keeps a second tab off it.
 */
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { createStore, get, update } from 'idb-keyval'
import type { LogStore } from '../../src/groups/storage/log-store.ts'
import type { DataDirLock } from '../../src/network/platform.ts'
import { IdbLogStore } from './idb-log-store.ts'
import { lockByName } from './web-lock.ts'

/** The IndexedDB database of the log store `name` under `dataDir`. */
export function databaseName(dataDir: string, name: string): string {
  return `${dataDir}/${name}`
}

/** Platform.openLogStore: an IdbLogStore, after asking (once) for persistent storage. */
export function openBrowserLogStore(dataDir: string, name: string): Promise<LogStore> {
  void requestPersistentStorage()
  return IdbLogStore.open(databaseName(dataDir, name))
}

/**
 * Platform.lockDataDir: a Web Lock on `dataDir`, so a second tab (or a second Network in this one) on
 * the same `dataDir` gets DataDirLockedError instead of writing the same databases.
 */
export function lockBrowserDataDir(dataDir: string): Promise<DataDirLock> {
  return lockByName(`mosaik:data-dir:${dataDir}`, dataDir, 'data directory')
}

let persistence: Promise<boolean> | undefined

/**
 * Asks the browser, once per page, to make this origin's storage persistent (`navigator.storage
 * .persist()`), so it is not evicted under storage pressure. Resolves with whether it is; never throws.
 *
 * When to use: the platform calls it when it opens the first log store; call it earlier (e.g. from a
 * click handler) where the browser grants it only after a user gesture.
 *
 * Gotchas: best effort. Chromium grants or refuses silently (by site engagement), Firefox may show a
 * permission prompt, Safari may ignore it. A refusal changes nothing but the odds of eviction: an
 * evicted replica comes back empty and re-syncs.
 */
export function requestPersistentStorage(): Promise<boolean> {
  persistence ??= (async () => {
    const storage = (globalThis as { navigator?: { storage?: Partial<StorageManager> } }).navigator?.storage
    try {
      if (await storage?.persisted?.()) return true
      return (await storage?.persist?.()) ?? false
    } catch {
      return false
    }
  })()
  return persistence
}

/**
 * Platform.loadIdentity: the node's private key, kept in IndexedDB (database `<dataDir>/identity`) and
 * created on first use, so a page that reloads with the same `dataDir` keeps its peer id.
 *
 * Gotchas: any script of the origin can read IndexedDB, so the key is as safe as the page itself: a
 * browser identity is not a credential for anything beyond this peer id.
 */
export async function loadBrowserIdentity(dataDir: string): Promise<PrivateKey> {
  const store = createStore(databaseName(dataDir, 'identity'), 'keys')
  const held = await get<Uint8Array>('private-key', store)
  if (held) return privateKeyFromProtobuf(held)
  const key = await generateKeyPair('Ed25519')
  // Two tabs racing to create it: the first write wins and both use what is stored.
  await update<Uint8Array>('private-key', (current) => current ?? privateKeyToProtobuf(key), store)
  return privateKeyFromProtobuf((await get<Uint8Array>('private-key', store))!)
}

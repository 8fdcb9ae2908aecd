/**
 * One writer per data directory in a browser: a Web Lock (`navigator.locks`) named after the directory,
 * taken with `ifAvailable`, so a second tab (or worker) of the same origin opening the same `dataDir`
 * is refused at once with DataDirLockedError instead of queueing behind the first. The browser releases
 * the lock when the tab that holds it closes, reloads or crashes, so nothing is left to clean up.
 *
 * When to use: `lockDataDir` of the browser platform and `IdbLogStore.open` call it; applications
 * do not need it directly.
 *
 * Gotchas:
 * - Web Locks need a secure context (https or localhost). Where `navigator.locks` is missing, the lock
 *   only covers this JavaScript realm (two Networks in one tab), not two tabs: say so to users who serve
 *   a dashboard over plain http.
 * - The lock is per origin: two origins (or a private window) have separate IndexedDB databases anyway.
 */
import type { DataDirLock } from '../../src/network/platform.ts'
import { DataDirLockedError } from '../../src/primitives/errors.ts'

const HELD = Symbol.for('mosaik.webLocks')
/** Names held in this realm, shared by every copy of this module (a bundle and its source). */
const registry = globalThis as { [HELD]?: Set<string> }
registry[HELD] ??= new Set<string>()
const held = registry[HELD]

interface LockManagerLike {
  request(
    name: string,
    options: { ifAvailable: boolean },
    callback: (lock: unknown) => Promise<void> | undefined,
  ): Promise<unknown>
}

function lockManager(): LockManagerLike | undefined {
  const nav = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator
  return nav?.locks && typeof nav.locks.request === 'function' ? nav.locks : undefined
}

/**
 * Takes the lock `name` (guarding `dir`, described as `what` in errors) until `release()`, or throws
 * DataDirLockedError while another tab, worker or handle in this realm holds it.
 */
export async function lockByName(name: string, dir: string, what: string): Promise<DataDirLock> {
  if (held.has(name)) {
    throw new DataDirLockedError(
      dir,
      0,
      'this tab',
      `the ${what} ${dir} is already open in this tab (close the Network or store using it first)`,
    )
  }
  held.add(name)
  try {
    const locks = lockManager()
    const release = locks ? await acquire(locks, name) : async () => {}
    if (release === undefined) {
      throw new DataDirLockedError(
        dir,
        0,
        'another tab',
        `the ${what} ${dir} is in use by another tab or worker of this origin; close it, or give this ` +
          'one another dataDir',
      )
    }
    let released: Promise<void> | undefined
    return {
      release() {
        released ??= (async () => {
          try {
            await release()
          } finally {
            held.delete(name)
          }
        })()
        return released
      },
    }
  } catch (err) {
    held.delete(name)
    throw err
  }
}

/** Resolves with a release function once the lock is held, or with undefined if another holder has it. */
function acquire(locks: LockManagerLike, name: string): Promise<(() => Promise<void>) | undefined> {
  return new Promise((resolve, reject) => {
    let granted = false
    const done = locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (lock === null || lock === undefined) {
          resolve(undefined)
          return undefined
        }
        granted = true
        // The lock is held until this promise settles.
        return new Promise<void>((unlock) => {
          resolve(async () => {
            unlock()
            await done.catch(() => {})
          })
        })
      })
      .catch((err: unknown) => {
        if (!granted) reject(err)
      })
  })
}

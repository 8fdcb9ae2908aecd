/**
 * Snapshot persistence of FileLogStore: the snapshot file is written beside the log, not in its queue,
 * one write after another; compactions, installs and resets wait for the writes issued before them.
 */
import type { StorageError } from '../../../src/groups/storage/log-store.ts'
import { replaceFile, SNAPSHOT_FILE, SNAPSHOT_TMP } from './format.ts'

/** Replaces the snapshot file of the store in `dir` atomically with `record`. */
export function writeSnapshotFile(dir: string, record: Uint8Array, fsync: boolean): Promise<void> {
  return replaceFile(dir, SNAPSHOT_FILE, SNAPSHOT_TMP, record, fsync)
}

/** Snapshot files are written off the hot path; compactions and resets wait for them. */
export class SnapshotWrites {
  /** Settles once the snapshot files issued so far are written (installs and resets join it too). */
  chain: Promise<void> = Promise.resolve()
  /** Snapshot files issued and not written yet. */
  pending = 0
  /** Snapshots whose promise has not settled yet, and the settling of the last one. */
  unresolved = 0
  resolved: Promise<void> = Promise.resolve()

  /**
   * Runs `writeFile` after the snapshot files issued before it. The promise returned resolves once it
   * is written and `earlier` (the log writes issued before it) resolved; a failure goes through `fail`.
   */
  write(
    writeFile: () => Promise<void>,
    earlier: Promise<void>,
    fail: (err: unknown) => StorageError,
  ): Promise<void> {
    this.pending++
    const written = this.chain
      .then(writeFile)
      .catch((err: unknown) => {
        throw fail(err)
      })
      .finally(() => {
        this.pending--
      })
    this.chain = written.catch(() => {})
    const resolved = Promise.all([written, earlier]).then(() => {})
    this.unresolved++
    const settled = resolved
      .catch(() => {})
      .finally(() => {
        this.unresolved--
      })
    this.resolved = settled
    return resolved
  }
}

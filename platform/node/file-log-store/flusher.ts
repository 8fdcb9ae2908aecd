/**
 * The flusher of FileLogStore: the only code that writes segments, one group of queued jobs at a time.
 * Writes are group-committed: while one group is being written and fsynced, later jobs queue, and the
 * next flush writes all of them with one `write` and one fdatasync (none when every record of the group
 * only raises the commit index). Resets and installs are written alone. The store decides where every
 * record goes (see `Job`) before it is queued.
 */
import type { FileHandle } from 'node:fs/promises'
import { open, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { StorageError } from '../../../src/groups/storage/log-store.ts'
import { concatBytes } from '../../../src/primitives/bytes.ts'
import {
  type EntryLoc,
  fsyncDir,
  RESET_MARKER,
  type Segment,
  SNAPSHOT_FILE,
  SNAPSHOT_TMP,
  writeAll,
  writeManifest,
} from './format.ts'
import { type EntryCache, releaseReader } from './reads.ts'
import { writeSnapshotFile } from './snapshots.ts'

export interface Job {
  kind: 'append' | 'barrier' | 'reset' | 'install'
  seg: Segment
  pos: number
  /** The header of `seg`, when this job starts it (at position 0, before `record`). */
  header?: Uint8Array
  record?: Uint8Array
  locs?: EntryLoc[]
  /** Wait for this before writing (a compaction waits for its snapshot). */
  before?: Promise<unknown>
  /** Resolve only after this (the promises of the snapshots issued before the job). */
  waitSnap?: Promise<void>
  /** Run once durable, before resolving. */
  after?: () => Promise<void>
  /** reset, install: the segments to delete. */
  old?: Segment[]
  /**
   * False for a record that needs no fdatasync of its own (a hard state that only raises commit): it
   * is written with its group, and the next synced write makes it durable with everything before.
   */
  sync?: boolean
  done: PromiseWithResolvers<void>
}

/** What the flusher shares with its store: after any I/O error the store writes nothing more. */
export interface FlusherHost {
  /** The failure of the store, if it failed. */
  failed(): StorageError | undefined
  /** Records the failure (the first one stays) and returns it. */
  fail(err: unknown): StorageError
}

export class Flusher {
  readonly #dir: string
  readonly #fsync: boolean
  readonly #cache: EntryCache
  readonly #host: FlusherHost

  #queue: Job[] = []
  #flushing = false
  #writeSeg: Segment | undefined
  #writeHandle: FileHandle | undefined
  /** Set while a resolution waits for a snapshot: later jobs resolve after it, keeping call order. */
  #gate: Promise<void> | undefined
  /** Records were written without an fdatasync since the last one (hard states that only raise commit). */
  #unsynced = false

  /** `seg` is the last segment of the log, open for writing with `handle`. */
  constructor(
    dir: string,
    fsync: boolean,
    seg: Segment,
    handle: FileHandle | undefined,
    cache: EntryCache,
    host: FlusherHost,
  ) {
    this.#dir = dir
    this.#fsync = fsync
    this.#writeSeg = seg
    this.#writeHandle = handle
    this.#cache = cache
    this.#host = host
  }

  /** The segment open for writing, if any. */
  get writeSeg(): Segment | undefined {
    return this.#writeSeg
  }

  /** True when no job is queued or being written. */
  get idle(): boolean {
    return this.#queue.length === 0 && !this.#flushing
  }

  /** True when written records wait for an fdatasync: a barrier must make them durable. */
  get unsynced(): boolean {
    return this.#unsynced
  }

  /** Queues `job`; the promise is its `done`. */
  enqueue(job: Job): Promise<void> {
    this.#queue.push(job)
    if (!this.#flushing) {
      this.#flushing = true
      void this.#flush()
    }
    return job.done.promise
  }

  /** Closes the segment open for writing (the store is closing). */
  async close(): Promise<void> {
    const handle = this.#writeHandle
    this.#writeHandle = undefined
    this.#writeSeg = undefined
    if (handle !== undefined) await handle.close()
  }

  async #flush(): Promise<void> {
    let group: Job[] = []
    try {
      // let the writes issued in the same turn join the first group
      await Promise.resolve()
      while (this.#queue.length > 0) {
        const head = this.#queue[0]!
        if (head.before !== undefined) {
          await head.before
          head.before = undefined
        }
        // a snapshot written beside the log failed: nothing more may reach the disk (a compaction
        // waiting for it would otherwise drop entries no snapshot covers)
        const failed = this.#host.failed()
        if (failed !== undefined) throw failed
        if (head.kind === 'reset' || head.kind === 'install') {
          group = this.#queue.splice(0, 1)
          if (head.kind === 'reset') await this.#doReset(head)
          else await this.#doInstall(head)
          this.#settle(head)
          group = []
          continue
        }
        group = this.#takeGroup()
        await this.#writeGroup(group)
        for (const job of group) {
          if (job.locs !== undefined) for (const loc of job.locs) loc.written = true
        }
        for (const job of group) {
          if (job.after !== undefined) await job.after()
          this.#settle(job)
        }
        group = []
        this.#cache.evict()
      }
    } catch (err) {
      const failure = this.#host.fail(err)
      for (const job of group) job.done.reject(failure)
      for (const job of this.#queue.splice(0)) job.done.reject(failure)
    } finally {
      this.#flushing = false
    }
  }

  /**
   * Takes the jobs at the head of the queue that can share one write and one fdatasync: up to a reset
   * or an install (written alone), or a job that must wait for something first.
   */
  #takeGroup(): Job[] {
    let n = 1
    while (
      n < this.#queue.length &&
      this.#queue[n]!.kind !== 'reset' &&
      this.#queue[n]!.kind !== 'install' &&
      this.#queue[n]!.before === undefined
    )
      n++
    return this.#queue.splice(0, n)
  }

  /** Resolves a durable job, after any snapshot it must follow and after the jobs before it. */
  #settle(job: Job): void {
    const gate =
      job.waitSnap !== undefined && this.#gate !== undefined
        ? Promise.all([job.waitSnap, this.#gate]).then(() => {})
        : (job.waitSnap ?? this.#gate)
    if (gate === undefined) {
      job.done.resolve()
      return
    }
    const settled = gate.then(() => {
      const failed = this.#host.failed()
      if (failed !== undefined) job.done.reject(failed)
      else job.done.resolve()
    })
    this.#gate = settled
    void settled.then(() => {
      if (this.#gate === settled) this.#gate = undefined
    })
  }

  /** Writes a group of jobs: one write per segment touched, then one fdatasync. */
  async #writeGroup(group: Job[]): Promise<void> {
    let wrote = false
    let created: Segment | undefined
    let i = 0
    while (i < group.length) {
      const seg = group[i]!.seg
      const parts: Uint8Array[] = []
      let start = -1
      let end = -1
      let j = i
      for (; j < group.length && group[j]!.seg === seg; j++) {
        const job = group[j]!
        if (job.header !== undefined) {
          parts.push(job.header)
          start = 0
          end = job.header.length
        }
        if (job.record !== undefined) {
          if (start < 0) start = end = job.pos
          if (job.pos !== end) throw new StorageError(`internal: record at ${job.pos} does not follow ${end}`)
          parts.push(job.record)
          end += job.record.length
        }
      }
      if (group[i]!.header !== undefined) {
        await this.#startSegment(seg)
        created = seg
      }
      if (parts.length > 0) {
        if (this.#writeSeg !== seg || this.#writeHandle === undefined) {
          throw new StorageError(`internal: segment ${seg.seq} is not open for writing`)
        }
        await writeAll(this.#writeHandle, parts.length === 1 ? parts[0]! : concatBytes(...parts), start)
        wrote = true
      }
      i = j
    }
    const mustSync = created !== undefined || group.some((job) => job.sync !== false)
    if (this.#fsync && mustSync && (wrote || this.#unsynced) && this.#writeHandle !== undefined) {
      // also makes durable what earlier groups wrote without an fdatasync
      await this.#writeHandle.datasync()
      this.#unsynced = false
      if (created !== undefined) await fsyncDir(this.#dir)
    } else if (this.#fsync && wrote) {
      this.#unsynced = true
    }
    // once its header is durable (rare: a segment holds 64 MiB by default)
    if (created !== undefined) await writeManifest(this.#dir, { top: created.seq }, this.#fsync)
  }

  /** Closes the current segment (durably) and creates `seg`. */
  async #startSegment(seg: Segment): Promise<void> {
    const prev = this.#writeHandle
    this.#writeHandle = undefined
    this.#writeSeg = undefined
    if (prev !== undefined) {
      try {
        if (this.#fsync) await prev.datasync()
      } finally {
        // closed even when the sync failed: the store fails, and nothing else holds the handle
        await prev.close()
      }
    }
    this.#writeHandle = await open(seg.path, 'wx')
    this.#writeSeg = seg
  }

  async #doReset(job: Job): Promise<void> {
    const marker = join(this.#dir, RESET_MARKER)
    await (await open(marker, 'w')).close()
    if (this.#fsync) await fsyncDir(this.#dir)
    const handle = this.#writeHandle
    this.#writeHandle = undefined
    this.#writeSeg = undefined
    if (handle !== undefined) await handle.close()
    for (const seg of job.old ?? []) {
      seg.deleted = true
      releaseReader(seg)
      await rm(seg.path, { force: true })
    }
    await rm(join(this.#dir, SNAPSHOT_FILE), { force: true })
    await rm(join(this.#dir, SNAPSHOT_TMP), { force: true })
    await this.#startSegment(job.seg)
    await writeAll(this.#writeHandle!, job.header!, 0)
    if (this.#fsync) {
      await this.#writeHandle!.datasync()
      await fsyncDir(this.#dir)
    }
    await writeManifest(this.#dir, { top: job.seg.seq }, this.#fsync)
    await rm(marker, { force: true })
    if (this.#fsync) await fsyncDir(this.#dir)
  }

  /**
   * Installs a snapshot (every job before it is durable): the snapshot file that names `job.seg` as the
   * first segment of the new log is renamed into place (the commit point), then that segment is created
   * and the segments of the old log are deleted.
   */
  async #doInstall(job: Job): Promise<void> {
    // a snapshot written before it may have failed: then nothing more may reach the disk
    const failed = this.#host.failed()
    if (failed !== undefined) throw failed
    await writeSnapshotFile(this.#dir, job.record!, this.#fsync)
    await this.#startSegment(job.seg)
    await writeAll(this.#writeHandle!, job.header!, 0)
    if (this.#fsync) {
      await this.#writeHandle!.datasync()
      await fsyncDir(this.#dir)
    }
    await writeManifest(this.#dir, { top: job.seg.seq }, this.#fsync)
    for (const seg of job.old ?? []) {
      seg.deleted = true
      releaseReader(seg)
      await rm(seg.path, { force: true })
    }
    if (this.#fsync) await fsyncDir(this.#dir)
  }
}

import {
  ClosedError,
  type HardState,
  type LoadedLog,
  type LogEntry,
  type LogStore,
  MemoryLogStore,
  type SnapshotMeta,
  StorageError,
} from '../../../platform/node/index.ts'
import type { WriteBatch } from '../../../src/groups/storage/log-store.ts'
import type { Prng, Simulation } from '../sim-network.ts'

type DiskOp = (store: MemoryLogStore) => Promise<void>

/** A member's disk: the mutations that became durable, in order; it outlives the member's processes. */
export class SimDisk {
  readonly #durable: DiskOp[] = []

  persist(op: DiskOp): void {
    this.#durable.push(op)
  }

  /** What a process starting now finds: every durable mutation replayed on an empty store. */
  async image(): Promise<MemoryLogStore> {
    const store = new MemoryLogStore()
    for (const op of this.#durable) await op(store).catch(() => {})
    return store
  }
}

/**
 * One incarnation's handle on its member's disk (see SimDisk). As in
 * FileLogStore, a mutation applies at once to what this incarnation reads, and becomes durable later,
 * in call order, after a simulated fsync: its promise resolves only then. A crash keeps a random prefix
 * of the mutations still in flight (written, its caller not told yet) and loses the rest, so a worker
 * that sent what it had not persisted loses it here as it would on a machine. Once the process
 * crashed the handle refuses everything; closing it leaves the disk to the next incarnation.
 */
export class DiskHandle implements LogStore {
  readonly durable = true
  readonly #disk: SimDisk
  readonly #sim: Simulation
  readonly #prng: Prng
  /** What this incarnation reads: the disk as loaded, with every mutation since applied at call time. */
  #view: MemoryLogStore | undefined
  /** Mutations applied to the view and not yet to the disk, oldest first. */
  readonly #inFlight: { apply: DiskOp; durable: () => void; failed: (err: Error) => void }[] = []
  #open = true
  /** Set once the disk hangs (see hangAt): no write becomes durable any more, and none is told it did. */
  #hung = false
  /** Set once the disk failed a write (see failWrites): every mutation since is refused with it. */
  #failed: StorageError | undefined
  /** Mutations that failed because the disk had failed: in flight when it did, or refused since. */
  failedWrites = 0

  readonly #fsyncMs: readonly [number, number]

  constructor(disk: SimDisk, sim: Simulation, prng: Prng, fsyncMs: readonly [number, number] = [0.5, 10]) {
    this.#disk = disk
    this.#sim = sim
    this.#prng = prng
    this.#fsyncMs = fsyncMs
  }

  /** The process crashed: a prefix of the mutations in flight reached the disk, the rest did not. */
  kill(): void {
    if (!this.#open) return
    this.#open = false
    for (const op of this.#inFlight) {
      if (!this.#prng.chance(0.5)) break
      this.#disk.persist(op.apply)
    }
    this.#inFlight.length = 0
  }

  /** Set by `hangAt` until it picks a write: which write makes the disk hang. */
  #hangAt: ((batch: WriteBatch) => boolean) | undefined

  /**
   * The disk hangs at the first write `batch` selects: that write, every one in flight and every one
   * after it waits forever, as behind an fsync that never returns. What this incarnation already reads
   * stays readable.
   */
  hangAt(select: (batch: WriteBatch) => boolean): void {
    this.#hangAt = select
  }

  /**
   * The disk fails (full, or an fsync error), as FileLogStore meets it: the mutations in flight reach
   * it or not (a random prefix) and fail with StorageError, and so does every later one, though reads
   * go on from what this incarnation holds. A restart reads what reached the disk.
   */
  failWrites(): void {
    if (!this.#open || this.#failed) return
    this.#failed = new StorageError('the simulated disk failed a write')
    let kept = true
    for (const op of this.#inFlight.splice(0)) {
      kept &&= this.#prng.chance(0.5)
      if (kept) this.#disk.persist(op.apply)
      this.failedWrites++
      op.failed(this.#failed)
    }
  }

  #v(): MemoryLogStore {
    if (!this.#open) throw new ClosedError('the process crashed')
    if (!this.#view) throw new Error('the store is read before it was loaded')
    return this.#view
  }

  /** Applies a mutation to the view now and to the disk after the mutations before it. */
  #mutate(apply: DiskOp): Promise<void> {
    if (this.#failed && this.#open) {
      this.failedWrites++
      return Promise.reject(this.#failed)
    }
    const atView = apply(this.#v())
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    this.#inFlight.push({ apply, durable: resolve, failed: reject })
    if (this.#inFlight.length === 1) this.#flushSoon()
    return atView.then(() => promise)
  }

  /** One fsync: it makes durable what was written when it began (a group commit, as FileLogStore's). */
  #flushSoon(): void {
    const count = this.#inFlight.length
    this.#sim.after(this.#prng.between(this.#fsyncMs[0], this.#fsyncMs[1]), () => {
      if (!this.#open || this.#hung) return
      for (const op of this.#inFlight.splice(0, count)) {
        this.#disk.persist(op.apply)
        op.durable()
      }
      if (this.#inFlight.length > 0) this.#flushSoon()
    })
  }

  async load(): Promise<LoadedLog> {
    if (!this.#open) throw new ClosedError('the process crashed')
    this.#view = await this.#disk.image()
    return this.#view.load()
  }
  firstIndex(): number {
    return this.#v().firstIndex()
  }
  lastIndex(): number {
    return this.#v().lastIndex()
  }
  term(index: number) {
    return this.#v().term(index)
  }
  entries(...args: Parameters<LogStore['entries']>) {
    return this.#v().entries(...args)
  }
  hardState() {
    return this.#v().hardState()
  }
  snapshot() {
    return this.#v().snapshot()
  }
  readSnapshot() {
    return this.#v().readSnapshot()
  }
  // Arguments are copied at call time: the disk applies them later, whatever the caller does with them.
  write(batch: WriteBatch) {
    if (this.#hangAt?.(batch)) {
      this.#hung = true
      this.#hangAt = undefined
    }
    const copy = structuredClone(batch)
    return this.#mutate((store) => store.write(copy))
  }
  append(entries: readonly LogEntry[]) {
    const copy = structuredClone(entries)
    return this.#mutate((store) => store.append(copy))
  }
  truncateFrom(index: number) {
    return this.#mutate((store) => store.truncateFrom(index))
  }
  saveHardState(state: HardState) {
    const copy = structuredClone(state)
    return this.#mutate((store) => store.saveHardState(copy))
  }
  saveSnapshot(meta: SnapshotMeta, data?: Uint8Array) {
    const copy = structuredClone({ meta, data })
    return this.#mutate((store) => store.saveSnapshot(copy.meta, copy.data))
  }
  installSnapshot(meta: SnapshotMeta, data: Uint8Array) {
    const copy = structuredClone({ meta, data })
    return this.#mutate((store) => store.installSnapshot(copy.meta, copy.data))
  }
  compact(index: number) {
    return this.#mutate((store) => store.compact(index))
  }
  reset() {
    return this.#mutate((store) => store.reset())
  }
  /** A clean close: what is in flight reaches the disk, as a process that exits normally would. */
  async close(): Promise<void> {
    if (!this.#open) return
    this.#open = false
    for (const op of this.#inFlight.splice(0)) {
      this.#disk.persist(op.apply)
      op.durable()
    }
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

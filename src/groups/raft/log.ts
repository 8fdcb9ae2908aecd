import { InvalidArgumentError } from '../../primitives/errors.ts'
import { Fifo } from '../../primitives/fifo.ts'
import { RaftContractError } from './errors.ts'
import type { Entry, MembershipConfig, PersistedState, SnapshotMeta } from './types.ts'

/** A voter set and where it was appended (the snapshot index for the one a snapshot carries). */
export interface ConfigRecord {
  index: number
  voters: readonly string[]
  clusterId: string
}

/** Committed entries handed out per Ready at most, so a long replay is applied in slices. */
const MAX_COMMITTED_PER_READY = 8192

const NO_CONFIG: ConfigRecord = { index: 0, voters: [], clusterId: '' }

/**
 * The Raft log as the core sees it: everything after the latest snapshot, kept in memory, plus the
 * bookkeeping of what has been handed to the worker for persisting and for applying.
 *
 * Terms never decrease along a log, so term searches are binary. Compaction drops a prefix of the
 * entries' FIFO queue (amortised O(1) per entry). Configuration entries are indexed on the side, so the voter set in
 * force (the latest one in the log, committed or not) is known without scanning.
 */
export class RaftLog {
  #snapshotIndex = 0
  #snapshotTerm = 0
  /** The front entry has index #snapshotIndex + 1. */
  readonly #entries = new Fifo<Entry>()
  #committed = 0
  /** The next committed index to hand out for applying. */
  #applyFrom = 1
  /** The last index the worker has applied (acknowledged through `advance`). */
  #applied = 0
  /** The first index not yet handed out for persisting. */
  #persistFrom = 1
  /** Persisted entries from here on must be dropped (a leader overwrote them). */
  #truncateFrom: number | undefined
  #configs: ConfigRecord[] = [NO_CONFIG]
  /** Committed entries up to here were searched for a command (committed entries never change). */
  #commandSearchedTo = 0
  #committedCommand = false

  constructor(persisted?: PersistedState) {
    if (persisted === undefined) return
    const { snapshot, entries } = persisted
    if (snapshot !== undefined) {
      this.#snapshotIndex = snapshot.index
      this.#snapshotTerm = snapshot.term
      this.#configs = [
        { index: snapshot.index, voters: [...snapshot.config.voters], clusterId: snapshot.clusterId ?? '' },
      ]
    }
    for (const entry of entries) {
      if (entry.index <= this.#snapshotIndex) continue // kept behind the snapshot by the store
      if (entry.index !== this.lastIndex() + 1) {
        throw new InvalidArgumentError(`persisted entries must be contiguous after ${this.#snapshotIndex}`)
      }
      this.#push(entry)
    }
    const last = this.lastIndex()
    this.#committed = Math.min(Math.max(persisted.hardState.commit, this.#snapshotIndex), last)
    this.#applied = Math.min(Math.max(persisted.applied ?? 0, this.#snapshotIndex), this.#committed)
    this.#applyFrom = this.#applied + 1
    this.#persistFrom = last + 1
  }

  get snapshotIndex(): number {
    return this.#snapshotIndex
  }

  get snapshotTerm(): number {
    return this.#snapshotTerm
  }

  get committed(): number {
    return this.#committed
  }

  get applied(): number {
    return this.#applied
  }

  firstIndex(): number {
    return this.#snapshotIndex + 1
  }

  lastIndex(): number {
    return this.#snapshotIndex + this.#entries.length
  }

  lastTerm(): number {
    return this.#entries.last()?.term ?? this.#snapshotTerm
  }

  /** Undefined for compacted indices and past the end. */
  term(index: number): number | undefined {
    if (index === this.#snapshotIndex) return this.#snapshotTerm
    if (index < this.#snapshotIndex) return undefined
    return this.#entries.at(index - this.#snapshotIndex - 1)?.term
  }

  entry(index: number): Entry | undefined {
    if (index <= this.#snapshotIndex) return undefined
    return this.#entries.at(index - this.#snapshotIndex - 1)
  }

  /** The entries `from ..= to`, at most `max` of them; `from` must not be compacted. */
  slice(
    from: number,
    to: number,
    max = Number.POSITIVE_INFINITY,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Entry[] {
    const last = Math.min(to, this.lastIndex(), from + max - 1)
    if (from > last) return []
    const start = from - this.#snapshotIndex - 1
    let end = start + last - from + 1
    if (maxBytes < Number.POSITIVE_INFINITY) {
      // Always the first entry, then as many more as fit in `maxBytes` of commands.
      let bytes = commandBytes(this.#entries.at(start)!)
      for (let i = start + 1; i < end; i++) {
        bytes += commandBytes(this.#entries.at(i)!)
        if (bytes > maxBytes) {
          end = i
          break
        }
      }
    }
    return this.#entries.slice(start, end)
  }

  /** The voter set in force: the latest in the log. */
  config(): ConfigRecord {
    return this.#configs[this.#configs.length - 1]!
  }

  /** The voter set in force at `index` (which must not be before the snapshot). */
  configAt(index: number): ConfigRecord {
    for (let i = this.#configs.length - 1; i > 0; i--) {
      if (this.#configs[i]!.index <= index) return this.#configs[i]!
    }
    return this.#configs[0]!
  }

  /** Compares a candidate's last entry with ours: 1 if the candidate's log is ahead, -1 if behind. */
  compare(lastTerm: number, lastIndex: number): -1 | 0 | 1 {
    const ourTerm = this.lastTerm()
    if (lastTerm !== ourTerm) return lastTerm > ourTerm ? 1 : -1
    const ourIndex = this.lastIndex()
    if (lastIndex !== ourIndex) return lastIndex > ourIndex ? 1 : -1
    return 0
  }

  /** Appends entries after the last one (the leader's own proposals). */
  append(entries: readonly Entry[]): void {
    for (const entry of entries) this.#push(entry)
  }

  /**
   * The follower side of AppendEntries: if our log holds (prevIndex, prevTerm), keeps the entries we
   * already have, truncates at the first conflicting one and appends the rest. Returns the index of
   * the last entry now known to match the leader's log, or -1 when prev does not match.
   */
  maybeAppend(prevIndex: number, prevTerm: number, entries: readonly Entry[]): number {
    if (this.term(prevIndex) !== prevTerm) return -1
    const lastNew = prevIndex + entries.length
    for (let k = 0; k < entries.length; k++) {
      const entry = entries[k]!
      if (entry.index <= this.#snapshotIndex) continue
      const ours = this.term(entry.index)
      if (ours === entry.term) continue
      if (ours !== undefined) {
        if (entry.index <= this.#committed) {
          throw new RaftContractError(`entry ${entry.index} conflicts with the committed log`)
        }
        this.#truncate(entry.index)
      }
      for (let j = k; j < entries.length; j++) this.#push(entries[j]!)
      break
    }
    return lastNew
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term` (etcd's findConflictByTerm): where a leader
   * and a follower whose logs disagree can next probe. Answers the snapshot index below the log.
   */
  findConflictByTerm(index: number, term: number): number {
    let hi = Math.min(index, this.lastIndex())
    if (hi <= this.#snapshotIndex) return hi
    if (this.term(hi)! <= term) return hi
    let lo = this.#snapshotIndex // invariant: the answer is in [lo, hi)
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2)
      if (this.term(mid)! <= term) lo = mid
      else hi = mid
    }
    return lo
  }

  commitTo(index: number): boolean {
    if (index <= this.#committed) return false
    if (index > this.lastIndex()) throw new RaftContractError(`cannot commit ${index} past the log end`)
    this.#committed = index
    return true
  }

  /**
   * Whether the committed log holds a user command: conservatively true once a snapshot replaced part
   * of the log (what it covered is unknown here).
   */
  hasCommittedCommand(): boolean {
    if (this.#committedCommand || this.#snapshotIndex > 0) return true
    for (let i = Math.max(this.#commandSearchedTo, this.firstIndex() - 1) + 1; i <= this.#committed; i++) {
      if (this.entry(i)?.kind === 'command') {
        this.#committedCommand = true
        return true
      }
    }
    this.#commandSearchedTo = this.#committed
    return false
  }

  // -------------------------------------------------------------------------------------------------
  // Handing work to the worker

  hasUnpersisted(): boolean {
    return this.#truncateFrom !== undefined || this.#persistFrom <= this.lastIndex()
  }

  /** The entries (and truncation) the worker must persist next; marks them handed out. */
  takeUnpersisted(): { truncateFrom: number | undefined; entries: Entry[] } {
    const truncateFrom = this.#truncateFrom
    const entries = this.slice(this.#persistFrom, this.lastIndex())
    this.#truncateFrom = undefined
    this.#persistFrom = this.lastIndex() + 1
    return { truncateFrom, entries }
  }

  hasUnapplied(): boolean {
    return this.#applyFrom <= this.#committed
  }

  /** The committed entries to apply next, in order; marks them handed out. */
  takeUnapplied(): Entry[] {
    const entries = this.slice(this.#applyFrom, this.#committed, MAX_COMMITTED_PER_READY)
    this.#applyFrom += entries.length
    return entries
  }

  /** The worker applied everything up to `index`. */
  appliedTo(index: number): void {
    if (index > this.#applied) this.#applied = index
  }

  /** Everything persisted up to here (handed out and not truncated since). */
  persistedUpTo(): number {
    return this.#persistFrom - 1
  }

  // -------------------------------------------------------------------------------------------------
  // Snapshots

  /** Drops the entries ≤ `upTo`, which must be applied; returns the metadata describing that point. */
  compact(upTo: number): SnapshotMeta {
    if (upTo > this.#applied) {
      throw new RaftContractError(`cannot compact ${upTo}: applied is ${this.#applied}`)
    }
    if (upTo <= this.#snapshotIndex) return this.snapshotMetaAt(this.#snapshotIndex)
    const meta = this.snapshotMetaAt(upTo)
    this.#entries.drop(upTo - this.#snapshotIndex)
    this.#snapshotIndex = upTo
    this.#snapshotTerm = meta.term
    let base = 0
    while (base + 1 < this.#configs.length && this.#configs[base + 1]!.index <= upTo) base++
    if (base > 0) this.#configs.splice(0, base)
    return meta
  }

  /** Describes the log at `index` (snapshot index or later, not past the end). */
  snapshotMetaAt(index: number): SnapshotMeta {
    const term = this.term(index)
    if (term === undefined) throw new RaftContractError(`no entry at ${index} to describe`)
    const config = this.configAt(index)
    const membership: MembershipConfig = { voters: [...config.voters] }
    return { index, term, config: membership, clusterId: config.clusterId }
  }

  /**
   * Rebases the log on a snapshot the worker installed. A suffix that continues the snapshot is kept;
   * everything is handed out again for persisting on top of the reset store.
   */
  restore(meta: SnapshotMeta, clusterId: string): void {
    const keep = meta.index < this.lastIndex() && this.term(meta.index) === meta.term
    const suffix = keep ? this.slice(meta.index + 1, this.lastIndex()) : []
    const suffixConfigs = keep ? this.#configs.filter((c) => c.index > meta.index) : []
    this.#entries.clear()
    for (const entry of suffix) this.#entries.push(entry)
    this.#snapshotIndex = meta.index
    this.#snapshotTerm = meta.term
    this.#configs = [
      { index: meta.index, voters: [...meta.config.voters], clusterId: meta.clusterId ?? clusterId },
      ...suffixConfigs,
    ]
    this.#committed = Math.max(this.#committed, meta.index)
    this.#applied = meta.index
    this.#applyFrom = meta.index + 1
    this.#persistFrom = meta.index + 1
    this.#truncateFrom = undefined
  }

  // -------------------------------------------------------------------------------------------------

  #push(entry: Entry): void {
    this.#entries.push(entry)
    if (entry.kind === 'config') {
      this.#configs.push({ index: entry.index, voters: entry.config.voters, clusterId: entry.clusterId })
    }
  }

  /** Drops the entries ≥ `index` (which must be after the snapshot). */
  #truncate(index: number): void {
    this.#entries.truncate(index - this.#snapshotIndex - 1)
    while (this.#configs.length > 1 && this.#configs[this.#configs.length - 1]!.index >= index) {
      this.#configs.pop()
    }
    if (index < this.#persistFrom) {
      this.#persistFrom = index
      this.#truncateFrom = Math.min(this.#truncateFrom ?? index, index)
    }
  }
}

/** The bytes of an entry's command (none for no-ops and configurations, which are small). */
function commandBytes(e: Entry): number {
  return e.kind === 'command' ? e.data.length : 0
}

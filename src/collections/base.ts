/**
 * What every collection handle shares, whatever its type: the options, the core that joins the group
 * and tracks the replica's version, the `when` conditions and the handle base class. Values live in
 * values.ts, the state machine base in machine.ts (re-exported here).
 */
import type { ConsensusOptions } from '../groups/config.ts'
import type { Group } from '../groups/group.ts'
import type { Groups } from '../groups/groups.ts'
import { GroupKey } from '../groups/key.ts'
import type { LogStore } from '../groups/storage/log-store.ts'
import { CommandRefusedError, CommitUnknownError } from '../groups/worker.ts'
import { type AbortOptions, abortable, raceSignal } from '../primitives/abort.ts'
import { Digest, type DigestLike, type StoreId } from '../primitives/digest.ts'
import { ClosedError, InvalidArgumentError, MosaikError, OfflineError } from '../primitives/errors.ts'
import { Emitter } from '../primitives/events.ts'
import { Watch } from '../primitives/watch.ts'
import type { TicketValidator } from '../tickets/ticket.ts'
import type { CollectionMachine } from './machine.ts'

export { CollectionMachine, packItems, unpackItems } from './machine.ts'
export { bytesKey, type Encoded, InvalidValueError, Lazy, ValueCodec, type ValueType } from './values.ts'

/** The log index at which a mutation was committed; any replica can await it with `when.reaches`. */
export type Version = number

/**
 * What a collection uses of its node: the groups subsystem, through which it joins the collection's
 * group. Pass the Network.
 */
export interface CollectionsComponents {
  readonly groups: Groups
}

/** Options every collection accepts. */
export interface CollectionOptions {
  /** Consensus timing of the collection's group (shared by all its writers and readers). */
  consensus?: ConsensusOptions
  /** Where the log lives; by default memory, or a FileLogStore under the node's `dataDir`. */
  storage?: LogStore
  /**
   * Ticket validators every writer and reader must satisfy (an array: all of them); part of the
   * collection's GroupId. A collection's group secret is its public store id, so tickets are the only
   * admission control a collection has.
   */
  requireTicket?: TicketValidator | readonly TicketValidator[]
}

export interface CollectionEvents {
  /**
   * The replica applied a committed change; `version` is its new version. Also emitted once when a
   * replica joins with state restored from its own store, with `restored: true`: a UI shows that state
   * at once, marked as not yet confirmed by a live leader (see `restored`).
   */
  updated: { version: Version; restored?: boolean }
}

/** What a collection handle may do: write (and vote in its group) or only read. */
export type CollectionRole = 'writer' | 'reader'

/**
 * What every collection handle shares: the group (joined in the background), the version, the `when`
 * conditions and the `updated` events. Writers vote in the collection's group (in a browser they join
 * as observers and write through the voters); readers join it as observers and never vote.
 */
export class CollectionCore<M extends CollectionMachine<readonly unknown[]>> {
  readonly storeId: StoreId
  readonly role: CollectionRole
  readonly events = new Emitter<CollectionEvents>()
  readonly ready: Promise<Group<M>>
  #group: Group<M> | undefined
  #machine: M
  readonly #version = new Watch(0)
  #closed = false
  /** Iterators of `updates()` waiting for a change; closing wakes them so they end. */
  readonly #wakeOnClose = new Set<() => void>()
  #unwatch: (() => void) | undefined
  /** The version this replica restored from its store and announced with `updated`, if it did. */
  #restoredAt: Version | undefined

  constructor(
    net: CollectionsComponents,
    storeId: DigestLike,
    role: CollectionRole,
    machine: (storeId: StoreId) => M,
    options: CollectionOptions,
  ) {
    this.storeId = Digest.from(storeId)
    this.role = role
    this.#machine = machine(this.storeId)
    this.ready = net.groups
      .join({
        key: GroupKey.fromSecret(this.storeId),
        stateMachine: this.#machine,
        // Writers vote where the runtime allows it (not in a browser); readers never do.
        preference: role === 'writer' ? undefined : 'observer',
        consensus: options.consensus,
        storage: options.storage,
        requireTicket: options.requireTicket,
      })
      .then((group) => {
        if (this.#closed) {
          void group.close()
          throw new ClosedError('collection closed')
        }
        this.#group = group
        // Another handle on this node may have joined first: its machine is the replica.
        this.#machine = group.stateMachine
        this.#version.set(group.applied)
        this.#unwatch = this.#follow(group)
        if (group.restored) {
          // State from this node's own store, served before any leader is heard from.
          this.#restoredAt = group.applied
          this.events.emit('updated', { version: group.applied, restored: true })
        }
        return group
      })
    this.ready.catch(() => {})
  }

  /** The local replica's state (the group's machine once joined). */
  get machine(): M {
    return this.#machine
  }

  get version(): Version {
    return this.#version.value
  }

  get group(): Group<M> | undefined {
    return this.#group
  }

  /** Shows state restored from its store that no live leader has confirmed yet (false until joined). */
  get restored(): boolean {
    return this.#group?.restored ?? false
  }

  /** Tracks the replica's applied version and emits `updated` when a batch changed something. */
  #follow(group: Group<M>): () => void {
    let stopped = false
    let revision = group.stateMachine.revision
    const loop = async () => {
      while (!stopped) {
        try {
          await group.when.applied().reaches(this.#version.value + 1)
        } catch {
          return
        }
        if (stopped) return
        const version = group.applied
        this.#version.set(version)
        const now = group.stateMachine.revision
        if (now !== revision) {
          revision = now
          this.events.emit('updated', { version })
        }
      }
    }
    void loop()
    return () => {
      stopped = true
    }
  }

  /**
   * Proposes one command. Resolves with its version once committed on this node; fails with
   * OfflineError (carrying `valueBack`) when no leader accepts it within the forward timeout.
   */
  async mutate(
    command: readonly unknown[],
    valueBack: unknown,
    options?: AbortOptions,
  ): Promise<{ version: Version; result: unknown }> {
    if (this.role !== 'writer') throw new InvalidArgumentError('readers cannot mutate a collection')
    const group = await this.ready
    try {
      const { index, result } = await group.executeForResult(command as never, options)
      return { version: index, result }
    } catch (err) {
      if (err instanceof OfflineError) throw new OfflineError(valueBack, err.message, { cause: err })
      if (err instanceof CommitUnknownError) throw new CommitUnknownError(valueBack, err.message)
      if (err instanceof CommandRefusedError) throw new CommandRefusedError(valueBack, err.refused)
      throw err
    }
  }

  // ---- conditions ----------------------------------------------------------------------------------

  async online(options?: AbortOptions): Promise<void> {
    const group = await this.ready
    await group.when.online(options)
  }

  async offline(options?: AbortOptions): Promise<void> {
    const group = await this.ready
    await group.when.offline(options)
  }

  /**
   * Resolves once the replica serves what its own store kept (right after joining; it never waits for
   * a leader), with the version it shows then: 0 when the store held nothing.
   */
  async restoredVersion(options?: AbortOptions): Promise<Version> {
    await raceSignal(this.ready, options?.signal)
    return this.#version.value
  }

  /** Resolves once this replica has applied version `v` (any later state satisfies it too). */
  async reaches(v: Version, options?: AbortOptions): Promise<Version> {
    await this.ready
    return this.#version.until((x) => x >= v, options)
  }

  /** Resolves with the version of the next committed change this replica applies. */
  updated(options?: AbortOptions): Promise<Version> {
    return abortable<Version>(options?.signal, (resolve) => {
      const off = this.events.on('updated', ({ version }) => {
        off()
        resolve(version)
      })
      return off
    })
  }

  /**
   * Versions as changes are applied, until the signal aborts or the collection closes. It listens from
   * the first call on, so no change is missed while the consumer is busy; changes that arrive while it
   * is busy are coalesced into the latest version. A replica that still shows the state it restored
   * from its store yields that version first, even when iteration starts after the restore.
   */
  async *updates(options?: AbortOptions): AsyncIterable<Version> {
    let pending: Version | undefined =
      this.#restoredAt !== undefined && this.#version.value === this.#restoredAt
        ? this.#restoredAt
        : undefined
    let wake: (() => void) | undefined
    const off = this.events.on('updated', ({ version }) => {
      pending = version
      wake?.()
    })
    const onAbort = () => wake?.()
    options?.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      while (!this.#closed && !options?.signal?.aborted) {
        if (pending === undefined) {
          await new Promise<void>((resolve) => {
            wake = resolve
            this.#wakeOnClose.add(resolve)
          })
          if (wake) this.#wakeOnClose.delete(wake)
          wake = undefined
          continue
        }
        const version = pending
        pending = undefined
        yield version
      }
    } finally {
      off()
      options?.signal?.removeEventListener('abort', onAbort)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const wake of this.#wakeOnClose) wake()
    this.#wakeOnClose.clear()
    this.#unwatch?.()
    this.#version.close()
    this.events.removeAllListeners()
    const group = await this.ready.catch(() => undefined)
    await group?.close()
  }
}

/** Awaitable conditions every collection handle offers. */
export class CollectionConditions {
  readonly #core: CollectionCore<CollectionMachine<readonly unknown[]>>

  constructor(core: CollectionCore<CollectionMachine<readonly unknown[]>>) {
    this.#core = core
  }

  /**
   * Writers: a leader is reachable, so mutations can commit. Readers: in step with a live leader. A
   * replica restored from its store is not online until then (await `restored()` to show what it kept).
   */
  online(options?: AbortOptions): Promise<void> {
    return this.#core.online(options)
  }

  /**
   * Resolves once the replica serves what its own store (the node's `dataDir`) kept, with the version it
   * shows: right after joining, with no leader needed; 0 when the store held nothing (or is in memory).
   */
  restored(options?: AbortOptions): Promise<Version> {
    return this.#core.restoredVersion(options)
  }

  offline(options?: AbortOptions): Promise<void> {
    return this.#core.offline(options)
  }

  /** Resolves once this replica shows version `v` or later. */
  reaches(v: Version, options?: AbortOptions): Promise<Version> {
    return this.#core.reaches(v, options)
  }

  /** Resolves with the version of the next change applied here. */
  updated(options?: AbortOptions): Promise<Version> {
    return this.#core.updated(options)
  }
}

/** A mutation whose outcome says the caller's request could not apply (e.g. an index out of range). */
export class OutOfRangeError<T = unknown> extends MosaikError {
  /** The value of the mutation that did not apply, handed back. */
  readonly value: T
  /** The version at which it was committed (and found not to apply). */
  readonly version: Version
  constructor(value: T, version: Version, message: string) {
    super('OUT_OF_RANGE', message)
    this.value = value
    this.version = version
  }
}

/**
 * The part of every collection handle that does not depend on its type: identity, version, conditions,
 * change notifications and lifecycle.
 */
export class CollectionHandle<M extends CollectionMachine<readonly unknown[]>> {
  /** Awaitable conditions: online, offline, restored, a version reached, the next update. */
  readonly when: CollectionConditions
  protected readonly core: CollectionCore<M>

  protected constructor(
    net: CollectionsComponents,
    storeId: DigestLike,
    role: CollectionRole,
    machine: (storeId: StoreId) => M,
    options: CollectionOptions,
  ) {
    this.core = new CollectionCore(net, storeId, role, machine, options)
    this.when = new CollectionConditions(this.core)
  }

  /** The collection's id: the Digest (or hashed name) it was opened with. */
  get storeId(): StoreId {
    return this.core.storeId
  }

  /** The version (log index) of the state this replica shows. */
  get version(): Version {
    return this.core.version
  }

  /**
   * True while the replica shows state restored from its own store that no live leader has confirmed
   * yet (possibly stale by any amount); false once it is first online, and for a replica that restored
   * nothing. Reads serve the restored state either way.
   */
  get restored(): boolean {
    return this.core.restored
  }

  /** Listens for applied changes; returns an unsubscribe function. */
  on(event: 'updated', listener: (e: CollectionEvents['updated']) => void): () => void {
    return this.core.events.on(event, listener)
  }

  /** Versions as changes are applied (for re-rendering a UI). */
  updates(options?: AbortOptions): AsyncIterable<Version> {
    return this.core.updates(options)
  }

  /** Leaves the collection's group (once every handle of this node has closed). */
  close(): Promise<void> {
    return this.core.close()
  }

  /** Closes the handle, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  protected get machine(): M {
    return this.core.machine
  }

  protected async mutate(
    command: readonly unknown[],
    valueBack: unknown,
    options?: AbortOptions,
  ): Promise<Version> {
    return (await this.core.mutate(command, valueBack, options)).version
  }
}

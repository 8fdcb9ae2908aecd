import type { AbortOptions } from '../primitives/abort.ts'
import type { GroupId } from '../primitives/digest.ts'
import { InvalidArgumentError } from '../primitives/errors.ts'
import type { RaftStatus } from './raft/types.ts'
import type { CommandOf, QueryOf, ResultOf, StateMachine } from './state-machine.ts'
import type { Consistency, GroupHaltError, GroupWorker, IndexRange, QueryResult } from './worker.ts'

// biome-ignore lint/suspicious/noExplicitAny: the command, query and result types are inferred per machine
type AnyMachine = StateMachine<any, any, any>

/**
 * A handle to a group this node has joined: a replicated state machine over mosaik's Raft.
 *
 * When to use: for state every member must agree on. Writes (`execute`) go through the leader and
 * resolve once committed and applied locally; reads are local (`'weak'`) or linearizable (`'strong'`).
 *
 * Gotchas:
 * - The group is CP: on the minority side of a partition, writes and strong reads fail with
 *   OfflineError after the forward timeout, while weak reads keep serving the local, possibly stale
 *   state.
 * - Several handles to the same group share one worker; the node leaves the group when the last
 *   handle is closed.
 */
export class Group<M extends AnyMachine> {
  /** The GroupId, derived from the key, shared consensus settings, state machine and validators. */
  readonly id: GroupId
  /** Awaitable conditions: leader elected, online, applied index reached... */
  readonly when: GroupConditions
  readonly #worker: GroupWorker<CommandOf<M>, QueryOf<M>, ResultOf<M>>
  readonly #release: () => Promise<void>
  #closed = false

  constructor(worker: GroupWorker<CommandOf<M>, QueryOf<M>, ResultOf<M>>, release: () => Promise<void>) {
    this.#worker = worker
    this.#release = release
    this.id = worker.groupId
    this.when = new GroupConditions(worker)
  }

  /** Applies one command through the leader; resolves with its log index once applied locally. */
  async execute(command: CommandOf<M>, options?: AbortOptions): Promise<number> {
    return (await this.#worker.execute([command], options)).last
  }

  /** Applies commands in order as one proposal; resolves with their index range once applied locally. */
  executeMany(commands: CommandOf<M>[], options?: AbortOptions): Promise<IndexRange> {
    if (commands.length === 0)
      return Promise.reject(new InvalidArgumentError('executeMany needs at least one command'))
    return this.#worker.execute(commands, options)
  }

  /**
   * Applies one command and resolves with its index and what the state machine's `apply` returned for
   * it (on this replica; results are deterministic).
   */
  async executeForResult(
    command: CommandOf<M>,
    options?: AbortOptions,
  ): Promise<{
    /** The log index the command was committed at. */
    index: number
    /** What `apply` returned for it. */
    result: unknown
  }> {
    const r = await this.#worker.executeForResults([command], options)
    return { index: r.last, result: r.results[0] }
  }

  /** Sends a command to the leader; resolves with its index once assigned (not yet committed). */
  async feed(command: CommandOf<M>, options?: AbortOptions): Promise<number> {
    return (await this.#worker.feed([command], options)).last
  }

  /** Sends several commands to the leader; resolves with their index range once assigned (not committed). */
  async feedMany(commands: CommandOf<M>[], options?: AbortOptions): Promise<IndexRange> {
    if (commands.length === 0) throw new InvalidArgumentError('feedMany needs at least one command')
    const { first, last } = await this.#worker.feed(commands, options)
    return { first, last }
  }

  /** Reads the state machine: `'weak'` (default) reads this replica; `'strong'` is linearizable. */
  query(
    query: QueryOf<M>,
    consistency: Consistency = 'weak',
    options?: AbortOptions,
  ): Promise<QueryResult<ResultOf<M>>> {
    return this.#worker.query(query, consistency, options)
  }

  /**
   * The state machine this group applies commands to. Several handles to one group share the machine
   * of the first join, so read state through this rather than through an instance passed to `join`.
   */
  get stateMachine(): M {
    return this.#worker.stateMachine as M
  }

  /** What this member did: snapshots installed and served, entries pulled, compactions, forwards. */
  get stats(): Readonly<GroupWorker<unknown, unknown, unknown>['stats']> {
    return this.#worker.stats
  }

  /** This member's Raft state now: role, term, leader, indexes, voters. */
  get status(): RaftStatus {
    return this.#worker.status.value
  }

  /** True while this node is the leader. */
  get isLeader(): boolean {
    return this.status.role === 'leader'
  }

  /** The leader this node follows (or itself), if any. */
  get leader(): string | undefined {
    return this.status.leader
  }

  /**
   * The highest log index applied to this replica's state machine. It trails the commit index
   * (`status.commitIndex`) while committed entries wait to be applied.
   */
  get applied(): number {
    return this.#worker.applied.value
  }

  /** Online: a leader, or a follower in step with a live leader (see `restored` for what comes before). */
  get isOnline(): boolean {
    return this.status.online
  }

  /**
   * True while this member serves state it restored from its own store (the node's `dataDir`) and no
   * live leader has confirmed it yet: weak queries answer at once, possibly stale by any amount, while
   * writes and strong reads wait for a leader. False once the member is first online, and for a member
   * whose store held nothing.
   */
  get restored(): boolean {
    return this.#worker.restored.value
  }

  /** The index this member applied from its own store when it joined (0: the store held nothing). */
  get restoredIndex(): number {
    return this.#worker.restoredIndex
  }

  /** The voter set (at most `maxVoters`); every other member is a learner. */
  get voters(): readonly string[] {
    return this.status.voters
  }

  /** The members this node is bonded with. */
  get bonds(): {
    /** The bonded member's peer id. */
    peer: string
    /** The bond's id, unique per bond: a member that reconnects gets a new one. */
    id: string
    /** True when the member joined as an observer (it never votes). */
    observer: boolean
  }[] {
    return [...this.#worker.bonds.value.values()].map((b) => ({
      peer: b.peer,
      id: b.id,
      observer: b.observer,
    }))
  }

  /** Releases this handle; the node leaves the group once every handle is closed. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#release()
  }

  /** Closes the handle, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/** Awaitable conditions on a group; each takes an AbortSignal. */
export class GroupConditions {
  // biome-ignore lint/suspicious/noExplicitAny: conditions do not depend on the machine's types
  readonly #worker: GroupWorker<any, any, any>

  // biome-ignore lint/suspicious/noExplicitAny: see above
  constructor(worker: GroupWorker<any, any, any>) {
    this.#worker = worker
  }

  /** Resolves with the leader's id as soon as a leader is known (at once if one is). */
  async leaderElected(options?: AbortOptions): Promise<string> {
    return (await this.#worker.status.until((s) => s.leader !== undefined, options)).leader!
  }

  /** Resolves with the next leader that differs from the current one. */
  async leaderChanged(options?: AbortOptions): Promise<string> {
    const current = this.#worker.status.value.leader
    return (await this.#worker.status.until((s) => s.leader !== undefined && s.leader !== current, options))
      .leader!
  }

  /** Resolves once `peer` is the leader this node knows of. */
  async leaderIs(peer: string, options?: AbortOptions): Promise<void> {
    await this.#worker.status.until((s) => s.leader === peer, options)
  }

  /** Resolves once this node is the leader. */
  async isLeader(options?: AbortOptions): Promise<void> {
    await this.#worker.status.until((s) => s.role === 'leader', options)
  }

  /** Resolves once this node follows a known leader. */
  async isFollower(options?: AbortOptions): Promise<void> {
    await this.#worker.status.until((s) => s.role === 'follower' && s.leader !== undefined, options)
  }

  /** Online: a leader, or a follower in step with its leader. */
  async online(options?: AbortOptions): Promise<void> {
    await this.#worker.status.until((s) => s.online, options)
  }

  /**
   * Resolves with the error once this member halted: it takes no further part in the group until the
   * node restarts, writes and strong reads fail with that error, and weak reads still show the local
   * state. The error is one of:
   * - GroupDivergedError: its cluster met a rival history that won, and it holds committed commands
   *   that joining would discard;
   * - StorageError: its log store failed a write (a full or failing disk). Calls waiting here failed
   *   (CommitUnknownError for commands a leader may have taken), and the other members go on without
   *   it. Restart the node once the disk is fixed: it rejoins from what its store holds;
   * - GroupFailedError: anything else the worker could not recover from (its `cause` says what).
   */
  async halted(options?: AbortOptions): Promise<GroupHaltError> {
    await this.#worker.status.until((s) => s.halted, options)
    return this.#worker.halted!
  }

  /** Resolves once this member is offline (no leader, or catching up). */
  async offline(options?: AbortOptions): Promise<void> {
    await this.#worker.status.until((s) => !s.online, options)
  }

  /** `applied().reaches(i)`: resolves once this replica has applied index `i`. */
  applied(): {
    /** Resolves once this replica has applied index `index`. */
    reaches(index: number, options?: AbortOptions): Promise<number>
  } {
    const applied = this.#worker.applied
    return { reaches: (index, options) => applied.until((a) => a >= index, options) }
  }

  /** Resolves once the voter set, as this replica knows it, has `n` members. */
  async voters(n: number, options?: AbortOptions): Promise<readonly string[]> {
    return (await this.#worker.status.until((s) => s.voters.length === n, options)).voters
  }

  /** Resolves once this node is bonded with at least `n` members. */
  async bonded(n: number, options?: AbortOptions): Promise<void> {
    await this.#worker.bonds.until((b) => b.size >= n, options)
  }

  /** Resolves once this node is not bonded with `peer` (e.g. after the bond was closed). */
  async unbonded(peer: string, options?: AbortOptions): Promise<void> {
    await this.#worker.bonds.until((b) => !b.has(peer), options)
  }
}

import { type AbortOptions, abortable } from '../primitives/abort.ts'
import type { GroupId } from '../primitives/digest.ts'
import { abortReason, DecodeError, FrameTooLargeError } from '../primitives/errors.ts'
import { Watch } from '../primitives/watch.ts'
import type { Logger } from '../transport/context.ts'
import { BondMsg, Refusal, RequestRefusedError } from './bond.ts'
import type { ConsensusConfig } from './config.ts'
import { RaftContractError } from './raft/errors.ts'
import type { RaftNode } from './raft/raft.ts'
import type { Preference, RaftStatus, Ready, SnapshotMeta } from './raft/types.ts'
import type { StateMachine } from './state-machine.ts'
import { type LogStore, StorageError } from './storage/log-store.ts'
import { decodeRaftMessage, encodeRaftMessage } from './wire.ts'
import type { Consistency, GroupHaltError, QueryResult, WorkerInit } from './worker/api.ts'
import { Applier } from './worker/applier.ts'
import { CatchUp, type CatchUpHost } from './worker/catch-up.ts'
import { restoreCore } from './worker/core.ts'
import {
  CommitUnknownError,
  GroupDivergedError,
  GroupFailedError,
  GroupTerminatedError,
} from './worker/errors.ts'
import { noWorkerStats, Req, type Route, SELF, type WorkerStats } from './worker/host.ts'
import { RaftOutbox } from './worker/outbox.ts'
import { type IndexRange, Proposals } from './worker/proposals.ts'
import { StrongReads } from './worker/reads.ts'
import { ReadyLoop } from './worker/ready-loop.ts'
import type { Runtime } from './worker/runtime.ts'
import type { BondView, GroupTransport } from './worker/transport.ts'

export type { Consistency, GroupHaltError, QueryResult, WorkerInit } from './worker/api.ts'
export {
  CommandRefusedError,
  CommitUnknownError,
  GroupBusyError,
  GroupDivergedError,
  GroupFailedError,
  GroupTerminatedError,
  type RefusedCommand,
} from './worker/errors.ts'
export type { IndexRange } from './worker/proposals.ts'

/**
 * Drives one group on one node: a RaftNode (the IO-less core), its LogStore, the state machine, and a
 * transport to the other members. It executes the core's Ready batches in the order the core requires
 * (persist, then send, then apply), when its ReadyLoop says, and hands proposals, strong reads and
 * catch-up to their parts.
 * Time, timers and the network are injected (`Runtime`, `GroupTransport`), so the deterministic
 * simulation runs this very class.
 */
export class GroupWorker<C, Q, R> implements CatchUpHost {
  readonly id: string
  readonly groupId: GroupId
  readonly preference: Preference
  readonly status: Watch<RaftStatus>
  /** The index applied to the local state machine (`Group.applied`). */
  readonly applied: Watch<number>
  /**
   * True from start while this member serves state it restored from its own store (`restoredIndex >
   * 0`) and has not been online since: no live leader has confirmed it, so reads may be stale by any
   * amount. False once it is first online (or rejoins a rival cluster from scratch).
   */
  readonly restored = new Watch(false)
  readonly stats: WorkerStats = noWorkerStats()
  readonly node: RaftNode
  readonly rt: Runtime
  readonly transport: GroupTransport
  readonly config: ConsensusConfig
  readonly store: LogStore
  readonly log: Logger

  readonly #applier: Applier<C, Q, R>
  readonly #proposals: Proposals
  readonly #reads: StrongReads
  readonly #catchUp: CatchUp
  readonly #outbox: RaftOutbox
  readonly #onHalt: ((error: GroupHaltError) => void) | undefined
  readonly #loop: ReadyLoop
  #lastSnapshotIndex: number
  /** A verified snapshot the core accepted, installed by the next Ready. */
  #incoming: { meta: SnapshotMeta; data: Uint8Array } | undefined
  #closed = false
  readonly #stopping = new AbortController()
  #halted: GroupHaltError | undefined
  #restoredIndex = 0

  private constructor(
    init: WorkerInit<C, Q, R>,
    node: RaftNode,
    lastSnapshotIndex: number,
    applier: Applier<C, Q, R>,
  ) {
    this.id = init.id
    this.groupId = init.groupId
    this.preference = init.preference
    this.#applier = applier
    this.store = init.store
    this.config = init.consensus
    this.transport = init.transport
    this.rt = init.runtime
    this.log = init.log
    this.node = node
    this.#onHalt = init.onHalt
    this.#lastSnapshotIndex = lastSnapshotIndex
    this.#loop = new ReadyLoop({
      node,
      rt: init.runtime,
      stopped: () => this.closedOrHalted(),
      handle: (rd) => this.#handleReady(rd),
      fail: (err) => this.#fail(err),
    })
    this.status = new Watch(node.status(), () => false)
    this.applied = new Watch(lastSnapshotIndex)
    this.#proposals = new Proposals(this)
    this.#reads = new StrongReads(this)
    this.#catchUp = new CatchUp(this)
    this.#outbox = new RaftOutbox({
      transmit: (m) => this.transport.send(m.to, BondMsg.Raft, encodeRaftMessage(m)),
      macrotask: (fn) => this.rt.macrotask(fn),
      urgent: (follower) => this.#proposals.awaitsCommit(follower),
    })
  }

  /** Restores the group from its store (state-machine snapshot and log) and starts driving it. */
  static async start<C, Q, R>(init: WorkerInit<C, Q, R>): Promise<GroupWorker<C, Q, R>> {
    // The applier keeps the state before any command, so it comes before the store's snapshot.
    const applier = new Applier(init.stateMachine, init.log)
    const loaded = await init.store.load()
    if (loaded.snapshot && loaded.snapshotData) applier.restore(loaded.snapshotData)
    const node = restoreCore(init, loaded)
    const worker = new GroupWorker(init, node, loaded.snapshot?.index ?? 0, applier)
    if (loaded.snapshot) worker.#proposals.snapshotAt(loaded.snapshot.index, loaded.snapshot.term)
    init.transport.start({
      message: (peer, kind, body) => worker.#onMessage(peer, kind, body),
      request: (peer, kind, body) => worker.#onRequest(peer, kind, body),
      membersChanged: () => worker.#membersChanged(),
    })
    worker.#membersChanged()
    // Replay what the store holds as committed before returning, so a restarted member shows its last
    // state at once, before it hears from anyone.
    await worker.#loop.runNow()
    worker.#restoredIndex = worker.applied.value
    worker.restored.set(worker.#restoredIndex > 0 && !worker.status.value.online)
    worker.#loop.kick()
    return worker
  }

  /** The index this member applied from its own store when it started (0: the store held nothing). */
  get restoredIndex(): number {
    return this.#restoredIndex
  }

  get stateMachine(): StateMachine<C, Q, R> {
    return this.#applier.stateMachine
  }

  get bonds(): Watch<ReadonlyMap<string, BondView>> {
    return this.transport.bonds
  }

  // =================================================================================================
  // Commands and queries

  /**
   * Proposes commands and resolves with their index range once they are committed and applied
   * locally. Commands proposed in the same turn share one Raft proposal (and one disk write).
   */
  async execute(commands: C[], options: AbortOptions = {}): Promise<IndexRange> {
    const assigned = await this.feed(commands, options)
    await this.#proposals.awaitCommit(assigned, commands, options)
    await this.#loop.breathe()
    return { first: assigned.first, last: assigned.last }
  }

  /** Like `execute`, and also returns what the state machine's `apply` returned for each command here. */
  async executeForResults(
    commands: C[],
    options: AbortOptions = {},
  ): Promise<IndexRange & { results: unknown[] }> {
    const range = await this.execute(commands, options)
    const results: unknown[] = []
    for (let i = range.first; i <= range.last; i++) results.push(this.#proposals.terms.result(i))
    return { ...range, results }
  }

  /** Proposes commands and resolves once a leader assigned their indices (not committed yet). */
  feed(commands: C[], options: AbortOptions = {}): Promise<IndexRange & { term: number }> {
    try {
      this.assertRunning()
    } catch (err) {
      return Promise.reject(err)
    }
    const encoded = commands.map((c) => this.#applier.userPayload(c))
    const limit = this.config.maxCommandBytes
    for (const e of encoded) {
      // The payload's first byte marks a user command; the limit is on the command.
      if (e.length - 1 > limit) return Promise.reject(new FrameTooLargeError(e.length - 1, limit, 'command'))
    }
    return this.#proposals.assign(encoded, commands, options)
  }

  async query(query: Q, consistency: Consistency, options: AbortOptions = {}): Promise<QueryResult<R>> {
    if (consistency === 'strong') {
      this.assertRunning()
      await this.#reads.readPoint(query, options)
      this.stats.strongReads++
    } else if (this.#closed) throw new GroupTerminatedError()
    return { result: this.#applier.stateMachine.query(query), at: this.applied.value }
  }

  // =================================================================================================
  // What the parts share (WorkerHost)

  kick(): void {
    this.#loop.kick()
  }

  async route(signal: AbortSignal): Promise<Route> {
    while (true) {
      this.assertRunning()
      if (signal.aborted) throw abortReason(signal)
      const s = this.node.status()
      if (s.role === 'leader') return SELF
      if (s.leader !== undefined && this.transport.bonds.value.has(s.leader)) return s.leader
      await this.status.changed({ signal })
    }
  }

  pause(signal: AbortSignal): Promise<void> {
    return abortable<void>(signal, (resolve) => this.rt.setTimeout(resolve, this.config.heartbeatMs))
  }

  assertRunning(): void {
    if (this.#closed) throw new GroupTerminatedError()
    if (this.#halted) throw this.#halted
  }

  get stopped(): AbortSignal {
    return this.#stopping.signal
  }

  closedOrHalted(): boolean {
    return this.#closed || this.#halted !== undefined
  }

  snapshotState(): Uint8Array {
    return this.#applier.snapshot()
  }

  async proposeInternal(payload: Uint8Array): Promise<number> {
    return (await this.#proposals.assign([this.#applier.internalPayload(payload)], [])).last
  }

  /** The core rebases its log on the snapshot: never under a Ready being handled (see ReadyGate). */
  offerSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<boolean> {
    return this.#loop.gate.run(() => {
      if (this.closedOrHalted() || this.#incoming) return false
      if (!this.node.restoreSnapshot(meta, this.rt.now())) return false
      this.#incoming = { meta, data }
      this.#loop.kick()
      return true
    })
  }

  // =================================================================================================
  // Handling the core's Ready batches (when: see ReadyLoop)

  async #handleReady(rd: Ready): Promise<void> {
    const store = this.store
    // 1. Persist, before any message of this Ready leaves the node, unless the core says a leader's
    //    messages may leave first (then its followers write their disks while it writes its own). A
    //    snapshot the core accepted replaces the store's log in one atomic step, the state machine after.
    if (rd.sendBeforePersist) for (const m of rd.messages) this.#outbox.send(m)
    if (rd.snapshot) await this.#installSnapshot(rd.snapshot)
    if (rd.truncateFrom !== undefined || rd.entries.length > 0 || rd.hardState) {
      await store.write({ hardState: rd.hardState, truncateFrom: rd.truncateFrom, entries: rd.entries })
    }
    if (this.closedOrHalted()) return
    // 2. Send.
    if (!rd.sendBeforePersist) for (const m of rd.messages) this.#outbox.send(m)
    // 3. Apply.
    if (rd.committedEntries.length > 0) {
      this.#applier.apply(rd.committedEntries, this.#proposals.terms, this.#internal)
    }
    this.#reads.onReady(rd)
    // 4. Everything else.
    if (rd.rival && rd.rival.outcome !== 'keep') {
      if (rd.rival.outcome === 'rejoin') await this.#rejoin(rd)
      else this.#halt(rd)
      return
    }
    if (rd.status) {
      // Offline (leader lost or deposed): proposals still waiting will likely never be seen committed
      // here soon; give them the forward timeout rather than the full commit timeout.
      if (!rd.status.online) this.#proposals.offline()
      this.status.set(rd.status)
      if (rd.status.online) this.restored.set(false)
    }
    if (rd.catchUp) this.#spawn(this.#catchUp.pull(rd.catchUp.from, rd.catchUp.to))
    if (rd.snapshotNeeded) this.#spawn(this.#catchUp.installSnapshot(rd.snapshotNeeded.index))
    this.node.advance(rd)
    if (rd.snapshot || rd.committedEntries.length > 0) {
      const last = rd.committedEntries.at(-1)?.index ?? rd.snapshot!.index
      this.applied.set(last)
      this.#proposals.settle()
      if (last - this.#lastSnapshotIndex >= this.config.snapshotEvery) await this.#compact(last)
    }
  }

  async #installSnapshot(meta: SnapshotMeta): Promise<void> {
    const incoming = this.#incoming
    if (!incoming || incoming.meta.index !== meta.index) {
      throw new RaftContractError(`the core restored a snapshot at ${meta.index} the worker does not hold`)
    }
    this.#incoming = undefined
    // The state machine first: bytes it cannot restore must not have replaced the log on disk (the
    // member would stop, and fail again at every restart). A disk that fails after it stops the member
    // too, and a restart starts from what the disk holds.
    this.#applier.restore(incoming.data)
    await this.store.installSnapshot(meta, incoming.data)
    this.#proposals.snapshotAt(meta.index, meta.term)
    this.#lastSnapshotIndex = meta.index
    this.stats.snapshotsInstalled++
  }

  /** The worker's own log commands, as the applier meets them. */
  readonly #internal = {
    snapshotMarker: (index: number, requester: string) => this.#catchUp.onSnapshotMarker(index, requester),
  }

  async #compact(index: number): Promise<void> {
    const data = this.#applier.snapshot()
    const meta = this.node.compact(index)
    await this.store.saveSnapshot(meta, data)
    await this.store.compact(index)
    this.#lastSnapshotIndex = index
    this.stats.compactions++
  }

  #spawn(task: Promise<unknown>): void {
    task.catch((err) => this.log('background task failed: %s', (err as Error).message))
  }

  // =================================================================================================
  // The transport's side

  #membersChanged(): void {
    if (this.closedOrHalted()) return
    const now = this.rt.now()
    const members = [...this.transport.bonds.value.values()].map((b) => ({
      id: b.peer,
      observer: b.observer,
    }))
    this.node.setMembers(members, now)
    this.node.setBootstrapHold(this.transport.formationPending(), now)
    this.#loop.kick()
  }

  #onMessage(peer: string, kind: number, body: unknown): void {
    if (this.#closed) return
    if (this.#halted) {
      // A member halted by a rival still tells fellows that missed it that their cluster lost.
      if (kind !== BondMsg.Raft || !(this.#halted instanceof GroupDivergedError)) return
      this.node.step(decodeRaftMessage(body, peer, this.id), this.rt.now())
      for (const m of this.node.haltedMessages()) this.#outbox.send(m)
      return
    }
    if (kind === BondMsg.Raft) {
      this.node.step(decodeRaftMessage(body, peer, this.id), this.rt.now())
      this.#loop.kick()
    } else if (kind === BondMsg.SnapshotOffer) this.#catchUp.onOffer(peer, body)
  }

  async #onRequest(peer: string, kind: number, body: unknown): Promise<unknown> {
    if (this.closedOrHalted()) throw new RequestRefusedError(Refusal.Stopped, 'the group stopped here')
    switch (kind) {
      case Req.Forward:
        return this.#proposals.acceptForwarded(peer, body)
      case Req.ReadIndex:
        return this.#reads.serve(peer)
      case Req.FetchEntries:
        return this.#catchUp.serveEntries(peer, body)
      case Req.RequestSnapshot:
        return this.#catchUp.requestSnapshot(peer)
      case Req.FetchSnapshot:
        return this.#catchUp.serveChunk(peer, body)
      default:
        throw new DecodeError(`unknown request kind ${kind}`)
    }
  }

  // =================================================================================================
  // Rival clusters

  /** Another cluster won and this node's committed log holds no command: start over and join it. */
  async #rejoin(rd: Ready): Promise<void> {
    this.log('a rival cluster won and nothing committed here is lost; rejoining it as a fresh member')
    await this.store.reset()
    this.#applier.reset()
    this.#proposals.snapshotAt(0, 0)
    this.#lastSnapshotIndex = 0
    this.#incoming = undefined
    this.applied.set(0)
    this.restored.set(false)
    this.#proposals.failAll(
      (commands) =>
        new CommitUnknownError(commands, 'this member rejoined a rival cluster before the commit was seen'),
    )
    this.#reads.dropAll()
    this.#outbox.clear()
    this.node.reset(this.rt.now(), rd.rival!.theirs)
    this.#loop.kick()
  }

  /**
   * Another cluster won, but this node holds committed commands that joining it would discard: stop
   * taking part, keep the store, and tell the operator (GroupDivergedError, `status.halted`).
   */
  #halt(rd: Ready): void {
    const error = GroupDivergedError.lostTo(rd.rival!)
    // The transport stays open until close(): fellows that missed the news learn it from this member.
    this.#stop(error, () => error, this.node.status())
  }

  /**
   * The Ready loop failed, most often because the store refused a write (a full or failing disk): the
   * store no longer knows what reached the disk, and the core's state is ahead of it. Nothing of that
   * Ready that depends on the write was sent (a leader's appends may have left: a new leader may still
   * commit them), so stop at once (fail-stop, as etcd does): calls waiting here fail with their outcome
   * open, the bonds close so the others elect or replace without this member, and a restart recovers
   * what is durable.
   */
  #fail(err: unknown): void {
    if (this.closedOrHalted()) return
    const error =
      err instanceof StorageError || err instanceof GroupFailedError ? err : GroupFailedError.of(err)
    this.#stop(error, (commands) => CommitUnknownError.stopped(commands, error), {
      ...this.node.status(),
      role: 'follower',
      leader: undefined,
      online: false,
      halted: true,
    })
    this.#spawn(this.transport.close())
  }

  /** Stops taking part for good: nothing more is sent or ticked, and every call waiting here fails. */
  #stop(error: GroupHaltError, pending: (commands: unknown[]) => Error, status: RaftStatus): void {
    this.log.error('this member stopped taking part in the group: %s', error.message)
    this.#halted = error
    this.#stopping.abort(error)
    this.#loop.stop()
    this.#outbox.clear()
    this.#proposals.failAll(pending)
    this.#reads.dropAll()
    this.status.set(status)
    this.#onHalt?.(error)
  }

  // =================================================================================================
  // Lifecycle

  get closed(): boolean {
    return this.#closed
  }

  get halted(): GroupHaltError | undefined {
    return this.#halted
  }

  /** Tells every member we leave, closes bonds, and releases the store. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#stopping.abort(new GroupTerminatedError())
    this.#loop.stop()
    // Followers learn the last commit index before the bonds close.
    this.#outbox.flush()
    await this.transport.close()
    const err = new GroupTerminatedError()
    this.#proposals.failAll(() => err)
    this.#reads.dropAll()
    this.status.close(err)
    this.applied.close(err)
    this.restored.close(err)
    await this.store.close()
  }
}

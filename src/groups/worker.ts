import { blake3 } from '@noble/hashes/blake3.js'
import type { Discovery } from '../discovery/discovery.ts'
import { SignedPeerEntry } from '../discovery/entry.ts'
import { CloseCode, type LinkClose } from '../network/close.ts'
import type { Logger, NetworkContext } from '../network/context.ts'
import type { Link } from '../network/link.ts'
import { type AbortOptions, anySignal, raceSignal } from '../primitives/abort.ts'
import { Backoff } from '../primitives/backoff.ts'
import { concatBytes, equalBytes, randomBytes, toHex } from '../primitives/bytes.ts'
import { type Codec, cborOf, decodeCanonical, encodeCanonical } from '../primitives/codec.ts'
import type { GroupId } from '../primitives/digest.ts'
import { DecodeError, MosaikError, OfflineError } from '../primitives/errors.ts'
import { macrotask } from '../primitives/schedule.ts'
import type { Scope } from '../primitives/scope.ts'
import { Watch } from '../primitives/watch.ts'
import { Bond, BondHandshakeError, type BondInfo, BondMsg, type BondSecrets, initiateBond } from './bond.ts'
import type { ConsensusConfig } from './config.ts'
import type { GroupKey } from './key.ts'
import { parseEntry } from './raft/messages.ts'
import { RaftNode } from './raft/raft.ts'
import type { Entry, Preference, RaftStatus, Ready, SnapshotMeta } from './raft/types.ts'
import type { ApplyContext, StateMachine } from './state-machine.ts'
import type { LogStore } from './storage/log-store.ts'
import { decodeRaftMessage, encodeRaftMessage } from './wire.ts'

/** Consistency of a query: 'weak' reads the local replica; 'strong' is linearizable (ReadIndex). */
export type Consistency = 'weak' | 'strong'

/** A query result with the committed index it was read at. */
export interface QueryResult<R> {
  result: R
  at: number
}

/** The index range a batch of commands was assigned. */
export interface IndexRange {
  first: number
  last: number
}

/**
 * The command was accepted by a leader but its commit was not observed in time: it may or may not
 * take effect. (An OfflineError, by contrast, means the command was not accepted and can be retried.)
 */
export class CommitUnknownError<T = unknown> extends MosaikError {
  readonly value: T
  constructor(value: T, message: string) {
    super('COMMIT_UNKNOWN', message)
    this.value = value
  }
}

/** The group handle (or its node) was closed. */
export class GroupTerminatedError extends MosaikError {
  constructor(message = 'the group was closed') {
    super('GROUP_TERMINATED', message)
  }
}

/** Kinds of requests on a bond. */
const Req = {
  Forward: 1,
  ReadIndex: 2,
  FetchEntries: 3,
  RequestSnapshot: 4,
  FetchSnapshot: 5,
} as const

/** Log payloads: user commands and the worker's own (e.g. "everyone snapshot here"). */
const PAYLOAD_USER = 0
const PAYLOAD_INTERNAL = 1

const CATCH_UP_BATCH = 2000
/** Microtask-only work longer than this hands the Ready loop to a macrotask (see #kick). */
const STARVATION_MS = 10
const APPLIED_TERMS_KEPT = 65_536
const SNAPSHOT_CHUNK = 256 * 1024
const SNAPSHOT_TTL_MS = 30_000

interface PendingCommit {
  first: number
  last: number
  term: number
  resolve(range: IndexRange): void
  reject(err: Error): void
  /** When the proposal fails with CommitUnknownError (ms, monotonic). */
  deadline: number
  timer: ReturnType<typeof setTimeout> | undefined
  commands: unknown[]
}

interface PendingRead {
  resolve(index: number): void
  reject(err: Error): void
}

interface ServedSnapshot {
  meta: SnapshotMeta
  data: Uint8Array
  hash: Uint8Array
  expires: number
}

interface SnapshotOffer {
  peer: string
  meta: SnapshotMeta
  size: number
  hash: Uint8Array
}

export interface WorkerInit<C, Q, R> {
  ctx: NetworkContext
  discovery: Discovery
  scope: Scope
  groupId: GroupId
  key: GroupKey
  stateMachine: StateMachine<C, Q, R>
  store: LogStore
  consensus: ConsensusConfig
  preference: Preference
}

/**
 * Drives one group on one node: a RaftNode (the IO-less core), its LogStore, the state machine, and
 * the bonds with every other member. It executes the core's Ready batches in the order the core
 * requires (persist, then send, then apply), and turns proposals, forwarded commands and strong reads
 * into the core's inputs.
 */
export class GroupWorker<C, Q, R> {
  readonly groupId: GroupId
  readonly preference: Preference
  readonly status: Watch<RaftStatus>
  /** The index applied to the local state machine: what `committed` means to users. */
  readonly applied: Watch<number>
  /** The bonds by peer id; the Watch changes whenever one forms or ends. */
  readonly bonds: Watch<ReadonlyMap<string, Bond>>
  /** Counters of what the worker did, for monitoring and tests. */
  readonly stats = {
    /** Snapshots installed from peers (this member was behind a compacted log). */
    snapshotsInstalled: 0,
    /** Snapshots taken for a catching-up member and offered to it. */
    snapshotsServed: 0,
    /** Committed entries pulled from peers in parallel while catching up. */
    entriesPulled: 0,
    /** Log compactions (state-machine snapshots taken locally). */
    compactions: 0,
    /** Commands this member forwarded to the leader. */
    forwarded: 0,
    /** Strong reads served (locally or through the leader). */
    strongReads: 0,
  }

  readonly #ctx: NetworkContext
  readonly #discovery: Discovery
  readonly #scope: Scope
  readonly #log: Logger
  readonly #key: GroupKey
  readonly #sm: StateMachine<C, Q, R>
  readonly #codecs: { command: Codec<C>; query: Codec<Q>; result: Codec<R> }
  readonly #store: LogStore
  readonly #config: ConsensusConfig
  readonly #node: RaftNode
  readonly #protocol: string
  /** The state machine's state before any command, to start over after losing a rivalry. */
  readonly #initialState: Uint8Array

  readonly #bonds = new Map<string, Bond>()
  readonly #dialing = new Set<string>()
  readonly #dialBackoff = new Map<string, { backoff: Backoff; until: number }>()
  #driving = false
  #again = false
  #probePending = false
  #lastMacrotaskAt = performance.now()
  #cancelTick: () => void = () => {}
  #lastSnapshotIndex: number
  #closed = false

  // Proposals and reads.
  readonly #proposalQueue: {
    bytes: Uint8Array
    command: unknown
    waiter: (r: { ok: true; first: number; last: number; term: number } | { ok: false; error: Error }) => void
  }[] = []
  #proposalFlushScheduled = false
  readonly #pendingCommits = new Set<PendingCommit>()
  readonly #readRequests = new Map<string, PendingRead>()

  #nextReadId = 0

  // Catch-up and snapshots.
  #catchUpRunning = false
  #snapshotFetch: { index: number; offers: Map<string, SnapshotOffer>; offerCount: Watch<number> } | undefined
  readonly #servedSnapshots = new Map<number, ServedSnapshot>()

  private constructor(
    init: WorkerInit<C, Q, R>,
    node: RaftNode,
    lastSnapshotIndex: number,
    initialState: Uint8Array,
  ) {
    this.#ctx = init.ctx
    this.#discovery = init.discovery
    this.#scope = init.scope
    this.groupId = init.groupId
    this.preference = init.preference
    this.#key = init.key
    this.#sm = init.stateMachine
    this.#codecs = {
      command: init.stateMachine.codecs?.command ?? cborOf<C>(),
      query: init.stateMachine.codecs?.query ?? cborOf<Q>(),
      result: init.stateMachine.codecs?.result ?? cborOf<R>(),
    }
    this.#store = init.store
    this.#config = init.consensus
    this.#node = node
    this.#log = init.ctx.log(`group:${init.groupId.short()}`)
    this.#protocol = init.ctx.protocol('groups/1')
    this.#lastSnapshotIndex = lastSnapshotIndex
    this.#initialState = initialState
    this.status = new Watch(node.status(), () => false)
    this.applied = new Watch(lastSnapshotIndex)
    this.bonds = new Watch<ReadonlyMap<string, Bond>>(new Map(), () => false)
  }

  /** Restores the group from its store (state-machine snapshot and log) and starts driving it. */
  static async start<C, Q, R>(init: WorkerInit<C, Q, R>): Promise<GroupWorker<C, Q, R>> {
    const initialState = init.stateMachine.snapshot()
    const loaded = await init.store.load()
    if (loaded.snapshot && loaded.snapshotData) init.stateMachine.restore(loaded.snapshotData)
    const node = new RaftNode({
      id: init.ctx.peerId,
      preference: init.preference,
      random: Math.random,
      timing: {
        heartbeatMs: init.consensus.heartbeatMs,
        electionTimeoutMs: init.consensus.electionTimeoutMs,
        electionJitterMs: init.consensus.electionJitterMs,
        bootstrapDelayMs: init.consensus.bootstrapDelayMs,
        voterUnreachableMs: init.consensus.voterUnreachableMs,
      },
      maxVoters: init.consensus.maxVoters,
      now: performance.now(),
      persisted: {
        hardState: loaded.hardState,
        snapshot: loaded.snapshot,
        entries: loaded.entries.map(parseEntry),
      },
    })
    const worker = new GroupWorker(init, node, loaded.snapshot?.index ?? 0, initialState)
    worker.#scope.every(
      () => worker.#config.bondHeartbeatMs,
      () => worker.#keepAlive(),
    )
    // Replay what the store holds as committed before returning, so a restarted member shows its last
    // state at once, before it hears from anyone.
    worker.#driving = true
    await worker.#drive()
    worker.#kick()
    return worker
  }

  get stateMachine(): StateMachine<C, Q, R> {
    return this.#sm
  }

  get config(): ConsensusConfig {
    return this.#config
  }

  // =================================================================================================
  // Commands

  /**
   * Proposes commands and resolves with their index range once they are applied locally. Commands
   * proposed in the same turn share one Raft proposal (and one disk write).
   */
  async execute(commands: C[], options: AbortOptions = {}): Promise<IndexRange> {
    const range = await this.feed(commands, options)
    await this.#awaitCommit(range, commands, options)
    return range
  }

  /**
   * Like `execute`, and also returns what the state machine's `apply` returned for each command on
   * this node (results are deterministic, so every replica computed the same).
   */
  async executeForResults(
    commands: C[],
    options: AbortOptions = {},
  ): Promise<IndexRange & { results: unknown[] }> {
    const range = await this.execute(commands, options)
    const results: unknown[] = []
    for (let i = range.first; i <= range.last; i++) results.push(this.#appliedTerms.result(i))
    return { ...range, results }
  }

  /** Proposes commands and resolves once the leader has assigned their indices (not committed yet). */
  async feed(commands: C[], options: AbortOptions = {}): Promise<IndexRange & { term: number }> {
    this.#assertOpen()
    const encoded = commands.map((c) => concatBytes(USER_PREFIX, this.#codecs.command.encode(c)))
    return this.#propose(encoded, commands, options)
  }

  #propose(
    encoded: Uint8Array[],
    commands: unknown[],
    options: AbortOptions,
  ): Promise<IndexRange & { term: number }> {
    const status = this.#node.status()
    if (status.role === 'leader') {
      const { promise, resolve, reject } = Promise.withResolvers<IndexRange & { term: number }>()
      // Queue and flush once per turn: one proposal, one Ready, one fsync for all of them.
      let first = -1
      let last = -1
      let term = 0
      let remaining = encoded.length
      let failed = false
      for (let i = 0; i < encoded.length; i++) {
        this.#proposalQueue.push({
          bytes: encoded[i]!,
          command: commands[i],
          waiter: (r) => {
            if (failed) return
            if (!r.ok) {
              failed = true
              reject(r.error)
              return
            }
            if (first < 0) first = r.first
            last = r.last
            term = r.term
            if (--remaining === 0) resolve({ first, last, term })
          },
        })
      }
      if (!this.#proposalFlushScheduled) {
        this.#proposalFlushScheduled = true
        queueMicrotask(() => this.#flushProposals())
      }
      return raceSignal(promise, options.signal)
    }
    return this.#forward(encoded, commands, status, options)
  }

  #flushProposals(): void {
    this.#proposalFlushScheduled = false
    const batch = this.#proposalQueue.splice(0)
    if (batch.length === 0) return
    const result = this.#node.propose(
      batch.map((p) => p.bytes),
      performance.now(),
    )
    if (!result.ok) {
      // Leadership moved between queueing and flushing: forward instead.
      const leader = result.error.leader
      for (const p of batch) {
        if (leader === undefined) p.waiter({ ok: false, error: new OfflineError([p.command], 'no leader') })
        else
          this.#forward([p.bytes], [p.command], this.#node.status(), {}).then(
            (r) => p.waiter({ ok: true, ...r }),
            (error: Error) => p.waiter({ ok: false, error }),
          )
      }
      return
    }
    for (let i = 0; i < batch.length; i++) {
      batch[i]!.waiter({ ok: true, first: result.first + i, last: result.first + i, term: result.term })
    }
    this.#kick()
  }

  async #forward(
    encoded: Uint8Array[],
    commands: unknown[],
    status: RaftStatus,
    options: AbortOptions,
  ): Promise<IndexRange & { term: number }> {
    const leader = status.leader
    const bond = leader === undefined ? undefined : this.#bonds.get(leader)
    if (bond) this.stats.forwarded += encoded.length
    if (!bond)
      throw new OfflineError(
        commands,
        leader === undefined ? 'no leader is known' : 'not bonded with the leader',
      )
    try {
      const reply = await raceSignal(
        bond.request(Req.Forward, encoded, this.#config.forwardTimeoutMs, performance.now()),
        options.signal,
      )
      if (!Array.isArray(reply) || reply.length !== 3 || !reply.every(Number.isSafeInteger)) {
        throw new DecodeError('malformed forward acknowledgement')
      }
      return { first: reply[0], last: reply[1], term: reply[2] }
    } catch (err) {
      if (options.signal?.aborted) throw err
      throw new OfflineError(commands, `the leader did not accept the commands: ${(err as Error).message}`, {
        cause: err,
      })
    }
  }

  /** Resolves once `range` is applied locally with the term it was proposed in. */
  #awaitCommit(
    range: IndexRange & { term: number },
    commands: unknown[],
    options: AbortOptions,
  ): Promise<void> {
    if (this.applied.value >= range.last) {
      const term = this.#appliedTerms.get(range.last)
      if (term === undefined || term === range.term) return Promise.resolve()
      return Promise.reject(
        new OfflineError(commands, 'a new leader replaced the commands before they were committed'),
      )
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    const pending: PendingCommit = {
      ...range,
      commands,
      resolve: () => resolve(),
      reject,
      deadline: Number.POSITIVE_INFINITY,
      timer: undefined,
    }
    this.#pendingCommits.add(pending)
    this.#expireAfter(pending, this.#config.commitTimeoutMs)
    return raceSignal(promise, options.signal).finally(() => {
      clearTimeout(pending.timer)
      this.#pendingCommits.delete(pending)
    })
  }

  /** Fails a pending proposal with CommitUnknownError after `ms`, unless it is due sooner already. */
  #expireAfter(pending: PendingCommit, ms: number): void {
    const deadline = performance.now() + ms
    if (deadline >= pending.deadline) return
    pending.deadline = deadline
    clearTimeout(pending.timer)
    pending.timer = setTimeout(() => {
      this.#pendingCommits.delete(pending)
      pending.reject(
        new CommitUnknownError(
          pending.commands,
          `commands at ${pending.first}..${pending.last} were accepted but their commit was not seen in time`,
        ),
      )
    }, ms)
  }

  readonly #appliedTerms = new AppliedTerms(APPLIED_TERMS_KEPT)

  // =================================================================================================
  // Queries

  async query(query: Q, consistency: Consistency, options: AbortOptions = {}): Promise<QueryResult<R>> {
    this.#assertOpen()
    if (consistency === 'weak') return { result: this.#sm.query(query), at: this.applied.value }
    const signal = anySignal(options.signal, AbortSignal.timeout(this.#config.queryTimeoutMs))
    let index: number
    try {
      index = await this.#readIndex(signal)
      await this.applied.until((a) => a >= index, { signal })
    } catch (err) {
      if (options.signal?.aborted) throw err
      throw new OfflineError(query, `strong read failed: ${(err as Error).message}`, { cause: err })
    }
    this.stats.strongReads++
    return { result: this.#sm.query(query), at: this.applied.value }
  }

  /** A linearizable read point: the leader's commit index, confirmed by a quorum (ReadIndex). */
  async #readIndex(signal: AbortSignal): Promise<number> {
    const status = this.#node.status()
    if (status.role === 'leader') return this.#localReadIndex(signal)
    const bond = status.leader === undefined ? undefined : this.#bonds.get(status.leader)
    if (!bond)
      throw new OfflineError(
        undefined,
        status.leader === undefined ? 'no leader is known' : 'not bonded with the leader',
      )
    const reply = await raceSignal(
      bond.request(Req.ReadIndex, null, this.#config.queryTimeoutMs, performance.now()),
      signal,
    )
    if (!Number.isSafeInteger(reply)) throw new DecodeError('malformed read index')
    return reply as number
  }

  async #localReadIndex(signal: AbortSignal): Promise<number> {
    while (true) {
      const id = `r${this.#nextReadId++}`
      const result = this.#node.readIndex(id, performance.now())
      if (result.ok) {
        const { promise, resolve, reject } = Promise.withResolvers<number>()
        this.#readRequests.set(id, { resolve, reject })
        this.#kick()
        return raceSignal(promise, signal).finally(() => this.#readRequests.delete(id))
      }
      if (result.error.code !== 'LEADER_NOT_READY') throw result.error
      // A new leader must commit an entry of its term before it may serve reads: wait for it.
      await this.applied.changed({ signal })
    }
  }

  // =================================================================================================
  // Driving the core

  /**
   * Runs the Ready loop soon; calls made while it runs make it go around again. Normally in a
   * microtask (lowest latency); but when the event loop has not reached a macrotask for a while (a
   * caller awaiting `execute` in a tight loop on an in-memory store runs purely on microtasks), in a
   * macrotask, so timers (heartbeats, bond keep-alives, discovery) and I/O are never starved.
   */
  #kick(): void {
    if (this.#closed) return
    if (this.#driving) {
      this.#again = true
      return
    }
    this.#driving = true
    const run = () => {
      this.#drive().catch((err) => this.#log.error('group worker failed: %s', (err as Error).stack))
    }
    this.#probeMacrotask()
    if (performance.now() - this.#lastMacrotaskAt > STARVATION_MS) macrotask(run)
    else queueMicrotask(run)
  }

  /** Notes when the event loop last ran a macrotask (see #kick). */
  #probeMacrotask(): void {
    if (this.#probePending) return
    this.#probePending = true
    macrotask(() => {
      this.#probePending = false
      this.#lastMacrotaskAt = performance.now()
    })
  }

  async #drive(): Promise<void> {
    try {
      do {
        this.#again = false
        while (!this.#closed && this.#node.hasReady()) await this.#handleReady(this.#node.ready())
      } while (this.#again && !this.#closed)
    } finally {
      this.#driving = false
      this.#armTick()
    }
  }

  async #handleReady(rd: Ready): Promise<void> {
    const store = this.#store
    // 1. Persist, before any message of this Ready leaves the node.
    if (rd.snapshot) {
      await store.compact(rd.snapshot.index)
      await store.truncateFrom(rd.snapshot.index + 1)
    }
    if (rd.truncateFrom !== undefined || rd.entries.length > 0 || rd.hardState) {
      await store.write({ hardState: rd.hardState, truncateFrom: rd.truncateFrom, entries: rd.entries })
    }
    if (this.#closed) return
    // 2. Send.
    const now = performance.now()
    for (const m of rd.messages) this.#bonds.get(m.to)?.send(BondMsg.Raft, encodeRaftMessage(m), now)
    // 3. Apply.
    if (rd.committedEntries.length > 0) this.#apply(rd.committedEntries)
    for (const rs of rd.readStates) this.#readRequests.get(String(rs.requestId))?.resolve(rs.index)
    for (const id of rd.droppedReads) {
      const pending = this.#readRequests.get(String(id))
      pending?.reject(new OfflineError(undefined, 'leadership was lost before the read was confirmed'))
    }
    // 4. Everything else.
    if (rd.status) {
      // Offline (leader lost or deposed): proposals still waiting will likely never be seen committed
      // here soon; give them the forward timeout rather than the full commit timeout.
      if (!rd.status.online)
        for (const p of this.#pendingCommits) this.#expireAfter(p, this.#config.forwardTimeoutMs)
      this.status.set(rd.status)
    }
    if (rd.rival?.theirsWins) {
      await this.#loseRivalry(rd)
      return
    }
    if (rd.catchUp) this.#scope.spawn(this.#catchUp(rd.catchUp.from, rd.catchUp.to))
    if (rd.snapshotNeeded) this.#scope.spawn(this.#fetchSnapshot(rd.snapshotNeeded.index))
    this.#node.advance(rd)
    if (rd.committedEntries.length > 0) {
      const last = rd.committedEntries[rd.committedEntries.length - 1]!.index
      this.applied.set(last)
      this.#settleCommits()
      if (last - this.#lastSnapshotIndex >= this.#config.snapshotEvery) await this.#compact(last)
    }
  }

  /** Applies committed entries: runs of user commands go to the state machine as batches. */
  #apply(entries: Entry[]): void {
    let run: C[] = []
    let ctxs: ApplyContext[] = []
    const flush = () => {
      if (run.length === 0) return
      try {
        if (this.#sm.applyBatch) {
          const results = this.#sm.applyBatch(run, ctxs)
          if (results)
            for (let i = 0; i < ctxs.length; i++) this.#appliedTerms.setResult(ctxs[i]!.index, results[i])
        } else {
          for (let i = 0; i < run.length; i++) {
            const result = this.#sm.apply(run[i]!, ctxs[i]!)
            if (result !== undefined) this.#appliedTerms.setResult(ctxs[i]!.index, result)
          }
        }
      } catch (err) {
        this.#log.error('state machine failed to apply: %s', (err as Error).stack)
      }
      run = []
      ctxs = []
    }
    for (const e of entries) {
      // The terms of recent entries tell a waiting proposal whether its own entry got the slot.
      this.#appliedTerms.set(e.index, e.term)
      if (e.kind !== 'command') continue
      if (e.data[0] === PAYLOAD_USER) {
        let command: C
        try {
          command = this.#codecs.command.decode(e.data.subarray(1))
        } catch (err) {
          this.#log.error('undecodable command at %d skipped: %s', e.index, (err as Error).message)
          continue
        }
        run.push(command)
        ctxs.push({ index: e.index, term: e.term })
      } else {
        flush()
        this.#applyInternal(e)
      }
    }
    flush()
  }

  /** Resolves proposals whose last index was applied, or rejects them if another entry took the slot. */
  #settleCommits(): void {
    const applied = this.applied.value
    for (const p of this.#pendingCommits) {
      if (applied < p.last) continue
      this.#pendingCommits.delete(p)
      clearTimeout(p.timer)
      const term = this.#appliedTerms.get(p.last)
      if (term === undefined || term === p.term) p.resolve({ first: p.first, last: p.last })
      else
        p.reject(
          new OfflineError(p.commands, 'a new leader replaced the commands before they were committed'),
        )
    }
  }

  #armTick(): void {
    this.#cancelTick()
    if (this.#closed) return
    const now = performance.now()
    const wait = Math.min(1000, Math.max(0, this.#node.nextTickAt() - now))
    this.#cancelTick = this.#scope.setTimeout(() => {
      this.#node.tick(performance.now())
      this.#kick()
      if (!this.#driving) this.#armTick()
    }, wait)
  }

  async #compact(index: number): Promise<void> {
    const data = this.#sm.snapshot()
    const meta = this.#node.compact(index)
    await this.#store.saveSnapshot(meta, data)
    await this.#store.compact(index)
    this.#lastSnapshotIndex = index
    this.stats.compactions++
  }

  // =================================================================================================
  // Bonds

  /** Creates bonds with every member the catalog shows that we are not bonded with yet. */
  reconcileBonds(): void {
    if (this.#closed) return
    const now = performance.now()
    const catalog = this.#discovery.catalog()
    // Forget the backoff of members that left the catalog, so churn does not grow memory.
    for (const id of this.#dialBackoff.keys()) if (!catalog.has(id)) this.#dialBackoff.delete(id)
    for (const peer of catalog.signedPeers()) {
      if (!peer.groups.has(this.groupId) || this.#bonds.has(peer.id) || this.#dialing.has(peer.id)) continue
      const wait = this.#dialBackoff.get(peer.id)
      if (wait && now < wait.until) continue
      this.#scope.spawn(this.#dial(peer.id))
    }
  }

  async #dial(peer: string): Promise<void> {
    this.#dialing.add(peer)
    let link: Link | undefined
    try {
      const signal = anySignal(this.#scope.signal, AbortSignal.timeout(this.#config.handshakeTimeoutMs))
      link = await this.#ctx.openLink(peer, this.#protocol, { signal })
      const info = await initiateBond(link, this.secrets(), signal)
      this.#dialBackoff.delete(peer)
      this.adopt(link, info)
    } catch (err) {
      const code = err instanceof BondHandshakeError ? err.closeCode : link?.closeInfo?.code
      link?.abort('bond failed')
      if (code === CloseCode.UnknownPeer) {
        // The peer does not know us yet: teach it our entry, then retry at once.
        await this.#discovery.syncWith(peer).catch(() => {})
      } else if (code !== CloseCode.GroupAlreadyBonded) {
        const entry = this.#dialBackoff.get(peer) ?? {
          backoff: new Backoff({
            initialMs: 200,
            maxIntervalMs: 5000,
            maxElapsedMs: Number.POSITIVE_INFINITY,
          }),
          until: 0,
        }
        entry.until = performance.now() + (entry.backoff.next() ?? 5000)
        this.#dialBackoff.set(peer, entry)
        this.#log('bond with %s failed: %s', peer, (err as Error).message)
      }
    } finally {
      this.#dialing.delete(peer)
    }
    if (!this.#bonds.has(peer)) this.#scope.setTimeout(() => this.reconcileBonds(), 50)
  }

  secrets(): BondSecrets {
    return {
      networkId: this.#ctx.networkId,
      groupId: this.groupId,
      secret: this.#key.secret,
      localId: this.#ctx.peerId,
      observer: this.preference === 'observer',
    }
  }

  /**
   * Whether an inbound bond from `peer` is welcome: not when one exists, and when both sides dial each
   * other at once, the bond opened by the smaller peer id wins.
   */
  admits(peer: string): { ok: true } | { ok: false; code: number; reason: string } {
    if (this.#closed) return { ok: false, code: CloseCode.GroupNotFound, reason: 'group closed' }
    if (this.#bonds.has(peer))
      return { ok: false, code: CloseCode.GroupAlreadyBonded, reason: 'already bonded' }
    if (this.#dialing.has(peer) && this.#ctx.peerId < peer) {
      return { ok: false, code: CloseCode.GroupAlreadyBonded, reason: 'simultaneous bond: ours wins' }
    }
    return { ok: true }
  }

  /** Takes over an authenticated link as a bond. */
  adopt(link: Link, info: BondInfo): void {
    if (this.#closed || this.#bonds.has(info.peer)) {
      link.closeWith(CloseCode.GroupAlreadyBonded, 'already bonded')
      return
    }
    const bond = new Bond(link, info, performance.now())
    this.#bonds.set(info.peer, bond)
    this.#membersChanged()
    this.#scope.spawn(this.#readBond(bond))
    // Tell the other members, so the mesh forms transitively even before their catalogs show the peer.
    const entry = this.#discovery.signedEntry(info.peer)
    if (!entry) return
    const now = performance.now()
    for (const other of this.#bonds.values()) {
      if (other !== bond) other.send(BondMsg.BondFormed, entry.toWire(), now)
    }
  }

  async #readBond(bond: Bond): Promise<void> {
    try {
      while (true) {
        const frame = await bond.link.recv()
        bond.lastHeard = performance.now()
        if (!Array.isArray(frame) || frame.length !== 2 || typeof frame[0] !== 'number') {
          throw new DecodeError('malformed bond frame')
        }
        this.#onBondFrame(bond, frame[0], frame[1])
      }
    } catch (err) {
      if (err instanceof DecodeError) bond.link.closeWith(CloseCode.ProtocolViolation, err.message)
    } finally {
      const close: LinkClose = bond.link.closeInfo ?? {
        code: CloseCode.UnexpectedClose,
        reason: '',
        remote: true,
      }
      bond.failPending(close)
      if (this.#bonds.get(bond.peer) === bond) {
        this.#bonds.delete(bond.peer)
        this.#membersChanged()
        if (close.code !== CloseCode.GracefulShutdown)
          this.#scope.setTimeout(() => this.reconcileBonds(), 100)
      }
    }
  }

  #onBondFrame(bond: Bond, kind: number, body: unknown): void {
    const now = performance.now()
    switch (kind) {
      case BondMsg.Ping:
        bond.send(BondMsg.Pong, null, now)
        return
      case BondMsg.Pong:
        return
      case BondMsg.Raft: {
        this.#node.step(decodeRaftMessage(body, bond.peer, this.#ctx.peerId), now)
        this.#kick()
        return
      }
      case BondMsg.Departure:
        bond.close(CloseCode.GracefulShutdown, 'peer departed').catch(() => {})
        return
      case BondMsg.BondFormed:
        this.#scope.spawn(this.#onBondFormed(body))
        return
      case BondMsg.Request: {
        if (!Array.isArray(body) || body.length !== 3 || typeof body[0] !== 'number') {
          throw new DecodeError('malformed request')
        }
        const [id, reqKind, reqBody] = body as [number, number, unknown]
        this.#handleRequest(bond, reqKind, reqBody).then(
          (result) => bond.respond(id, true, result, performance.now()),
          (err: Error) => bond.respond(id, false, err.message, performance.now()),
        )
        return
      }
      case BondMsg.Response:
        bond.onResponse(body)
        return
      case BondMsg.SnapshotOffer:
        this.#onSnapshotOffer(bond.peer, body)
        return
      default:
        throw new DecodeError(`unknown bond frame kind ${kind}`)
    }
  }

  async #onBondFormed(body: unknown): Promise<void> {
    try {
      const signed = await SignedPeerEntry.fromWire(body)
      if (signed.entry.peerId === this.#ctx.peerId || this.#bonds.has(signed.entry.peerId)) return
      await this.#discovery.feed(signed)
      this.reconcileBonds()
    } catch {}
  }

  #membersChanged(): void {
    const members = [...this.#bonds.values()].map((b) => ({ id: b.peer, observer: b.observer }))
    this.#node.setMembers(members, performance.now())
    this.bonds.set(new Map(this.#bonds))
    this.#kick()
  }

  /** Pings idle bonds and closes those silent for too long. */
  #keepAlive(): void {
    const now = performance.now()
    const deadline = this.#config.bondHeartbeatMs * this.#config.maxMissedHeartbeats
    for (const bond of this.#bonds.values()) {
      if (now - bond.lastHeard > deadline) {
        bond.link.closeWith(CloseCode.GroupTimeout, 'missed heartbeats')
        continue
      }
      if (now - bond.lastSent >= this.#config.bondHeartbeatMs) bond.send(BondMsg.Ping, null, now)
    }
    // Members we lost (or never reached) are retried here once their backoff has passed.
    this.reconcileBonds()
    // Expired snapshots served to others.
    for (const [index, s] of this.#servedSnapshots) if (now > s.expires) this.#servedSnapshots.delete(index)
  }

  // =================================================================================================
  // Requests from other members

  async #handleRequest(bond: Bond, kind: number, body: unknown): Promise<unknown> {
    switch (kind) {
      case Req.Forward: {
        if (!Array.isArray(body) || body.length === 0 || !body.every((b) => b instanceof Uint8Array)) {
          throw new DecodeError('malformed forwarded commands')
        }
        // Forward once only: two nodes that each believe the other leads must not bounce commands.
        if (this.#node.status().role !== 'leader') throw new Error('not the leader')
        const range = await this.#propose(body as Uint8Array[], body, {})
        return [range.first, range.last, range.term]
      }
      case Req.ReadIndex: {
        if (this.#node.status().role !== 'leader') throw new Error('not the leader')
        return this.#localReadIndex(AbortSignal.timeout(this.#config.queryTimeoutMs))
      }
      case Req.FetchEntries: {
        if (!Array.isArray(body) || body.length !== 2 || !body.every(Number.isSafeInteger)) {
          throw new DecodeError('malformed fetch')
        }
        // Only entries the store holds as committed are safe to hand to a peer that appends them blindly.
        // The answer says where this member's log starts, so a requester behind it knows to take a
        // snapshot instead.
        const committed = this.#store.hardState().commit
        const to = Math.min(body[1] as number, committed, (body[0] as number) + CATCH_UP_BATCH - 1)
        const first = this.#store.firstIndex()
        if (to < (body[0] as number)) return [first, []]
        return [first, await this.#store.entries(body[0] as number, to)]
      }
      case Req.RequestSnapshot: {
        // A member is too far behind for the log: have every member snapshot at the same index.
        if (this.#node.status().role !== 'leader') throw new Error('not the leader')
        const marker = encodeCanonical(['snapshot', bond.peer, toHex(randomBytes(8))])
        const range = await this.#propose([concatBytes(INTERNAL_PREFIX, marker)], [], {})
        return range.last
      }
      case Req.FetchSnapshot: {
        if (!Array.isArray(body) || body.length !== 3 || !body.every(Number.isSafeInteger)) {
          throw new DecodeError('malformed snapshot fetch')
        }
        const [index, offset, length] = body as [number, number, number]
        const served = this.#servedSnapshots.get(index)
        if (!served) throw new Error(`no snapshot at ${index}`)
        served.expires = performance.now() + SNAPSHOT_TTL_MS
        return served.data.subarray(offset, offset + Math.min(length, SNAPSHOT_CHUNK))
      }
      default:
        throw new DecodeError(`unknown request kind ${kind}`)
    }
  }

  /** Internal log commands; today only "everyone snapshot at this index for `requester`". */
  #applyInternal(e: Entry & { kind: 'command' }): void {
    let decoded: unknown
    try {
      decoded = decodeCanonical(e.data.subarray(1))
    } catch {
      return
    }
    if (!Array.isArray(decoded) || decoded[0] !== 'snapshot' || typeof decoded[1] !== 'string') return
    const requester = decoded[1]
    if (requester === this.#ctx.peerId) return
    const data = this.#sm.snapshot()
    const meta = this.#node.snapshotMeta(e.index)
    const hash = blake3(data)
    this.#servedSnapshots.set(e.index, { meta, data, hash, expires: performance.now() + SNAPSHOT_TTL_MS })
    this.stats.snapshotsServed++
    const bond = this.#bonds.get(requester)
    bond?.send(BondMsg.SnapshotOffer, [meta, data.length, hash], performance.now())
  }

  // =================================================================================================
  // Catching up

  /** Pulls committed entries from several members in parallel and feeds them to the core in order. */
  async #catchUp(from: number, to: number): Promise<void> {
    if (this.#catchUpRunning) return
    this.#catchUpRunning = true
    try {
      let next = from
      while (next <= to && !this.#closed) {
        const peers = [...this.#bonds.values()].filter((b) => !b.closed)
        const leader = this.#node.status().leader
        peers.sort((a, b) => Number(a.peer === leader) - Number(b.peer === leader))
        if (peers.length === 0) return
        let compacted = false
        const windows = peers.map((bond, i) => {
          const start = next + i * CATCH_UP_BATCH
          return start > to
            ? Promise.resolve([] as Entry[])
            : bond
                .request(
                  Req.FetchEntries,
                  [start, Math.min(to, start + CATCH_UP_BATCH - 1)],
                  10_000,
                  performance.now(),
                )
                .then((r) => {
                  if (!Array.isArray(r) || r.length !== 2 || !Array.isArray(r[1])) return [] as Entry[]
                  if (typeof r[0] === 'number' && r[0] > start) compacted = true
                  return r[1].map(parseEntry)
                })
                .catch(() => [] as Entry[])
        })
        let progressed = false
        for (const w of windows) {
          const entries = await w
          if (entries.length === 0 || entries[0]!.index !== next) break
          this.#node.appendCommitted(entries, performance.now())
          this.stats.entriesPulled += entries.length
          next = entries[entries.length - 1]!.index + 1
          progressed = true
          this.#kick()
        }
        if (progressed) continue
        // The members compacted what we need: take a snapshot instead, then pull what follows it.
        if (!compacted || !(await this.#fetchSnapshot(next))) return
        next = this.#node.status().commitIndex + 1
      }
    } catch (err) {
      this.#log('catch-up stopped: %s', (err as Error).message)
    } finally {
      this.#catchUpRunning = false
    }
  }

  /**
   * Installs a snapshot: asks the leader to have every member snapshot at one index, then fetches
   * the chunks from all members that offer it, in parallel, and checks the hash.
   */
  async #fetchSnapshot(minIndex: number): Promise<boolean> {
    if (this.#snapshotFetch) return false
    const leader = this.#node.status().leader
    const bond = leader === undefined ? undefined : this.#bonds.get(leader)
    if (!bond) return false
    const fetch = { index: 0, offers: new Map<string, SnapshotOffer>(), offerCount: new Watch(0) }
    this.#snapshotFetch = fetch
    try {
      const index = await bond.request(
        Req.RequestSnapshot,
        null,
        this.#config.forwardTimeoutMs,
        performance.now(),
      )
      if (!Number.isSafeInteger(index) || (index as number) < minIndex) return false
      fetch.index = index as number
      // Offers arrive as members apply the snapshot marker; after the first, give the others a moment
      // so the chunks can be spread over several sources.
      await fetch.offerCount.until((n) => n >= 1, {
        signal: anySignal(this.#scope.signal, AbortSignal.timeout(5000)),
      })
      await fetch.offerCount
        .until((n) => n >= this.#bonds.size - 1, { signal: AbortSignal.timeout(100) })
        .catch(() => {})
      const offers = [...fetch.offers.values()].filter((o) => o.meta.index === fetch.index)
      if (offers.length === 0) return false
      const { size, hash, meta } = offers[0]!
      const sources = offers.filter((o) => equalBytes(o.hash, hash))
      const data = new Uint8Array(size)
      const chunks: number[] = []
      for (let off = 0; off < size; off += SNAPSHOT_CHUNK) chunks.push(off)
      await Promise.all(
        sources.map(async (source) => {
          const peerBond = this.#bonds.get(source.peer)
          while (chunks.length > 0 && peerBond && !peerBond.closed) {
            const off = chunks.shift()!
            try {
              const part = await peerBond.request(
                Req.FetchSnapshot,
                [fetch.index, off, SNAPSHOT_CHUNK],
                10_000,
                performance.now(),
              )
              if (!(part instanceof Uint8Array)) throw new DecodeError('bad chunk')
              data.set(part, off)
            } catch {
              chunks.push(off)
              return
            }
          }
        }),
      )
      if (chunks.length > 0 || !equalBytes(blake3(data), hash)) return false
      this.#sm.restore(data)
      await this.#store.saveSnapshot(meta, data)
      const installed = this.#node.restoreSnapshot(meta, performance.now())
      if (installed) {
        this.stats.snapshotsInstalled++
        this.#lastSnapshotIndex = meta.index
        this.applied.set(meta.index)
        this.#settleCommits()
      }
      this.#kick()
      return installed
    } catch (err) {
      this.#log('snapshot fetch failed: %s', (err as Error).message)
      return false
    } finally {
      this.#snapshotFetch = undefined
    }
  }

  #onSnapshotOffer(peer: string, body: unknown): void {
    const fetch = this.#snapshotFetch
    if (!fetch || !Array.isArray(body) || body.length !== 3) return
    const [meta, size, hash] = body as [SnapshotMeta, number, Uint8Array]
    if (!Number.isSafeInteger(size) || !(hash instanceof Uint8Array) || !isSnapshotMeta(meta)) return
    fetch.offers.set(peer, { peer, meta, size, hash })
    fetch.offerCount.set(fetch.offers.size)
  }

  async #loseRivalry(rd: Ready): Promise<void> {
    this.#log('a rival cluster won; starting over as a fresh member')
    await this.#store.reset()
    this.#sm.restore(this.#initialState)
    this.#lastSnapshotIndex = 0
    this.applied.set(0)
    for (const p of this.#pendingCommits) {
      clearTimeout(p.timer)
      p.reject(new OfflineError(p.commands, 'this group merged into a rival and discarded its history'))
    }
    this.#pendingCommits.clear()
    this.#node.reset(performance.now(), rd.rival!.theirs)
    this.#kick()
  }

  // =================================================================================================
  // Lifecycle

  #assertOpen(): void {
    if (this.#closed) throw new GroupTerminatedError()
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Tells every member we leave, closes bonds, and releases the store. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#cancelTick()
    const now = performance.now()
    for (const bond of this.#bonds.values()) bond.send(BondMsg.Departure, null, now)
    await Promise.all([...this.#bonds.values()].map((b) => b.close(CloseCode.GracefulShutdown, 'leaving')))
    this.#bonds.clear()
    const err = new GroupTerminatedError()
    for (const p of this.#pendingCommits) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    for (const r of this.#readRequests.values()) r.reject(err)
    for (const q of this.#proposalQueue.splice(0)) q.waiter({ ok: false, error: err })
    this.status.close(err)
    this.applied.close(err)
    this.bonds.close(err)
    await this.#store.close()
  }
}

const USER_PREFIX = new Uint8Array([PAYLOAD_USER])
const INTERNAL_PREFIX = new Uint8Array([PAYLOAD_INTERNAL])
/** The terms of the last `size` applied indices, in a ring (no hashing, no garbage). */
class AppliedTerms {
  readonly #indices: Float64Array
  readonly #terms: Float64Array
  readonly #results: unknown[]

  constructor(size: number) {
    this.#indices = new Float64Array(size).fill(-1)
    this.#terms = new Float64Array(size)
    this.#results = new Array(size)
  }

  set(index: number, term: number): void {
    const slot = index % this.#indices.length
    this.#indices[slot] = index
    this.#terms[slot] = term
    this.#results[slot] = undefined
  }

  /** What the state machine returned for the command at `index` (kept as long as its term). */
  setResult(index: number, result: unknown): void {
    const slot = index % this.#indices.length
    if (this.#indices[slot] === index) this.#results[slot] = result
  }

  result(index: number): unknown {
    const slot = index % this.#indices.length
    return this.#indices[slot] === index ? this.#results[slot] : undefined
  }

  get(index: number): number | undefined {
    const slot = index % this.#indices.length
    return this.#indices[slot] === index ? this.#terms[slot] : undefined
  }
}

function isSnapshotMeta(v: unknown): v is SnapshotMeta {
  if (v === null || typeof v !== 'object') return false
  const m = v as Record<string, unknown>
  return (
    Number.isSafeInteger(m.index) &&
    Number.isSafeInteger(m.term) &&
    typeof m.config === 'object' &&
    m.config !== null &&
    Array.isArray((m.config as { voters?: unknown }).voters)
  )
}

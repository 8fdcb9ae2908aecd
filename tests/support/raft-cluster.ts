/**
 * `RaftCluster` is a minimal driver of IO-less `RaftNode` cores on the deterministic simulation, for
 * tests of the core's own rules (elections, formation, terms, rivals, promotion): it persists each
 * Ready on a simulated disk before sending its messages, applies committed entries, and can crash a
 * node (losing everything the Ready contract does not guarantee to be on disk) and restart it. It
 * watches the core's safety properties (one leader per term, one entry per committed index,
 * contiguous disks). It is not the worker: what the shipping `GroupWorker` does around the core
 * (proposals, reads, catch-up, snapshots, rivals) is tested by the group-worker simulation
 * (group-sim.ts, tests/groups/sim/), which runs the real one.
 */

import type { HardState, Preference, RaftStatus, SnapshotMeta } from '../../platform/node/index.ts'
import type {
  ClusterStanding,
  Entry,
  Message,
  RaftInit,
  RaftTiming,
  ReadRequestId,
  Ready,
  RivalReport,
  SnapshotNeeded,
} from '../../src/groups/raft/index.ts'
import { RaftNode } from '../../src/groups/raft/index.ts'
import { type LinkConditions, type Prng, RELIABLE, SimNetwork, Simulation } from './sim-network.ts'

/** The application state a simulated worker applies commands to. */
export interface SimStateMachine {
  /** Applies one command; the result goes to whoever proposed it. */
  apply(command: Uint8Array, index: number): unknown
  /** An immutable copy of the state. */
  snapshot(): unknown
  restore(snapshot: unknown): void
}

/** The default state machine: the list of commands applied, decoded as UTF-8. */
export class CommandList implements SimStateMachine {
  commands: string[] = []
  apply(command: Uint8Array): unknown {
    this.commands.push(decoder.decode(command))
    return this.commands.length
  }
  snapshot(): unknown {
    return [...this.commands]
  }
  restore(snapshot: unknown): void {
    this.commands = [...(snapshot as string[])]
  }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export function command(text: string): Uint8Array {
  return encoder.encode(text)
}

export interface SimDisk {
  hardState: HardState
  snapshot: { meta: SnapshotMeta; state: unknown } | undefined
  entries: Entry[]
}

export interface RaftClusterOptions {
  seed: number
  /** Node ids, or ids with a preference. */
  nodes: readonly (string | { id: string; preference?: Preference })[]
  timing?: Partial<RaftTiming>
  network?: Partial<LinkConditions>
  /** Time to persist a Ready, drawn per Ready from [min, max] (default [0, 1]). */
  diskDelayMs?: readonly [number, number]
  /** Core options besides identity, timing and randomness. */
  raft?: Pick<
    RaftInit,
    'maxEntriesPerAppend' | 'maxInflightAppends' | 'maxVoters' | 'catchUpThreshold' | 'bootstrapExpect'
  >
  /** Take a snapshot and compact every this many applied entries (0: never, the default). */
  snapshotEvery?: number
  /** Entries kept behind a compaction for slow followers (default 0). */
  keepLogTail?: number
  stateMachine?: () => SimStateMachine
  /**
   * Who each node is told its bonded members are: 'topology' (every live node it can reach, updated
   * within `bondDelayMs` of each crash, restart or partition change; the default) or 'manual'.
   */
  members?: 'topology' | 'manual'
  bondDelayMs?: number
  /**
   * Each node's clock runs at its own rate, drawn from [1/(1 + skew), 1 + skew] (default 0: all
   * clocks agree; see also `skewClocks`). Raft's safety must not depend on clocks; only liveness may.
   */
  clockSkew?: number
  /**
   * Act on rivalries as the group worker does (default true): a node told to rejoin the winner is
   * wiped and reset; a node told to halt (it holds committed commands) stops for good, its disk kept.
   */
  resolveRivals?: boolean
  /**
   * Start from an established cluster whose voters are these ids (all nodes share its first config
   * entry on disk) instead of letting the nodes bootstrap.
   */
  establishedVoters?: readonly string[]
}

type WireMessage =
  | { kind: 'raft'; message: Message }
  | { kind: 'snapshotRequest'; index: number; clusterId: string }
  | { kind: 'snapshotResponse'; meta: SnapshotMeta; state: unknown }
  | { kind: 'fetchRequest'; from: number; to: number; clusterId: string }
  | { kind: 'fetchResponse'; from: number; entries: Entry[] }

/** A parallel pull of committed entries from peers (the worker side of `Ready.catchUp`). */
interface CatchUpJob {
  next: number
  to: number
  /** Chunks requested and not yet received, by first index: when they were asked for. */
  requested: Map<number, number>
  received: Map<number, Entry[]>
}

export class SimRaftNode {
  readonly id: string
  readonly preference: Preference
  core: RaftNode | undefined
  disk: SimDisk = { hardState: { term: 0, vote: null, commit: 0 }, snapshot: undefined, entries: [] }
  machine: SimStateMachine
  /** The index the state machine has applied. */
  applied = 0
  /** Committed entries up to here arrive after a snapshot that covers them: skip them. */
  skipThrough = 0
  /** Lost a rivalry holding committed commands: down for good, its disk kept for the operator. */
  halted = false
  /** Bumped by each crash, so that events scheduled for an earlier life are ignored. */
  incarnation = 0
  /** Strong reads confirmed by the core and waiting for the state machine to reach their index. */
  readonly confirmedReads = new Map<ReadRequestId, number>()
  outstanding: Ready | undefined
  tickAt = Number.POSITIVE_INFINITY
  lastSnapshotAt = 0
  snapshotNeeded: SnapshotNeeded | undefined
  /** A snapshot installed into the state machine, to be written to disk with the next Ready. */
  installedSnapshot: { meta: SnapshotMeta; state: unknown } | undefined
  catchUp: CatchUpJob | undefined
  /** How fast this node's clock runs against the simulation's, since `clockBase`. */
  clockRate = 1
  clockBase = 0
  clockAtBase = 0

  constructor(id: string, preference: Preference, machine: SimStateMachine) {
    this.id = id
    this.preference = preference
    this.machine = machine
  }

  /** This node's monotonic clock at simulation time `now`. */
  clock(now: number): number {
    return this.clockAtBase + (now - this.clockBase) * this.clockRate
  }

  /** The simulation time at which this node's clock reads `time`. */
  realTime(time: number): number {
    return this.clockBase + (time - this.clockAtBase) / this.clockRate
  }

  setClockRate(rate: number, now: number): void {
    this.clockAtBase = this.clock(now)
    this.clockBase = now
    this.clockRate = rate
  }

  get alive(): boolean {
    return this.core !== undefined
  }

  status(): RaftStatus {
    if (this.core === undefined) throw new Error(`${this.id} is down`)
    return this.core.status()
  }
}

export type ClusterEvent =
  | { type: 'apply'; node: SimRaftNode; entry: Entry; output: unknown }
  | { type: 'read'; node: SimRaftNode; requestId: ReadRequestId; index: number }
  | { type: 'droppedRead'; node: SimRaftNode; requestId: ReadRequestId }
  | { type: 'rival'; node: SimRaftNode; rival: RivalReport }
  | { type: 'status'; node: SimRaftNode; status: RaftStatus }
  | { type: 'crash'; node: SimRaftNode }

const FETCH_CHUNK = 32
const FETCH_PARALLEL = 3

export class RaftCluster {
  readonly sim: Simulation
  readonly net: SimNetwork<WireMessage>
  readonly nodes = new Map<string, SimRaftNode>()
  readonly timing: RaftTiming
  /** Safety violations seen so far; a correct core never adds one. */
  readonly violations: string[] = []
  /** The leader of each term of each cluster ("clusterId/term"), as the nodes announced it. */
  readonly leaderOfTerm = new Map<string, string>()
  /**
   * Every entry any node applied, by cluster and index: the committed logs as they were revealed.
   * There is one cluster unless fresh nodes bootstrapped rivals.
   */
  readonly committedByCluster = new Map<string, Map<number, Entry>>()
  /** Rivalries resolved by resetting a node. */
  resets = 0
  /** Nodes halted because they lost a rivalry holding committed commands. */
  halts = 0
  readonly #options: RaftClusterOptions
  readonly #prng: Prng
  readonly #listeners: ((event: ClusterEvent) => void)[] = []

  constructor(options: RaftClusterOptions) {
    this.#options = options
    this.sim = new Simulation(options.seed)
    this.#prng = this.sim.prng.fork()
    this.net = new SimNetwork(this.sim, { ...RELIABLE, ...options.network })
    this.timing = {
      heartbeatMs: 20,
      electionTimeoutMs: 100,
      electionJitterMs: 100,
      bootstrapDelayMs: 100,
      voterUnreachableMs: 1000,
      ...options.timing,
    }
    for (const spec of options.nodes) {
      const { id, preference = 'normal' } = typeof spec === 'string' ? { id: spec } : spec
      const node = new SimRaftNode(id, preference, this.#newMachine())
      if (options.establishedVoters !== undefined) {
        const first: Entry = {
          index: 1,
          term: 1,
          kind: 'config',
          config: { voters: [...options.establishedVoters] },
          clusterId: 'established',
        }
        node.disk = { hardState: { term: 1, vote: null, commit: 1 }, snapshot: undefined, entries: [first] }
      }
      this.nodes.set(id, node)
    }
    if (options.clockSkew !== undefined) this.skewClocks(options.clockSkew)
    for (const node of this.nodes.values()) this.#boot(node)
    this.#topologyChanged()
  }

  get now(): number {
    return this.sim.now
  }

  /** The committed log of the cluster that the most nodes belong to now. */
  get committed(): Map<number, Entry> {
    const count = new Map<string, number>()
    for (const node of this.alive()) {
      const id = node.status().clusterId
      if (id !== undefined) count.set(id, (count.get(id) ?? 0) + 1)
    }
    const main = [...count].sort((a, b) => b[1] - a[1])[0]?.[0]
    return (main === undefined ? undefined : this.committedByCluster.get(main)) ?? new Map()
  }

  /** Gives every node a clock rate drawn from [1/(1 + skew), 1 + skew], from now on. */
  skewClocks(skew: number): void {
    for (const node of this.nodes.values()) {
      node.setClockRate(skew === 0 ? 1 : (1 + skew) ** this.#prng.between(-1, 1), this.now)
      this.#armTick(node)
    }
  }

  get ids(): string[] {
    return [...this.nodes.keys()]
  }

  node(id: string): SimRaftNode {
    const node = this.nodes.get(id)
    if (node === undefined) throw new Error(`no node ${id}`)
    return node
  }

  on(listener: (event: ClusterEvent) => void): void {
    this.#listeners.push(listener)
  }

  run(ms: number): void {
    this.sim.runUntil(this.sim.now + ms)
  }

  /** Runs until `done()` or `timeoutMs` of virtual time passed; returns done(). */
  runUntil(done: () => boolean, timeoutMs: number): boolean {
    return this.sim.runUntilTrue(done, this.sim.now + timeoutMs)
  }

  alive(): SimRaftNode[] {
    return [...this.nodes.values()].filter((n) => n.alive)
  }

  /** The live nodes that believe they lead, highest term first. */
  leaders(): SimRaftNode[] {
    return this.alive()
      .filter((n) => n.status().role === 'leader')
      .sort((a, b) => b.status().term - a.status().term)
  }

  /** The live leader of the highest term, if any. */
  leader(): SimRaftNode | undefined {
    return this.leaders()[0]
  }

  /** Runs until exactly one live node leads in the highest term and returns it. */
  awaitLeader(timeoutMs = 10_000): SimRaftNode {
    const ok = this.runUntil(() => {
      const leader = this.leader()
      return leader !== undefined && leader.status().commitIndex >= leader.status().lastIndex
    }, timeoutMs)
    if (!ok) throw new Error(`no leader within ${timeoutMs} ms (seed ${this.#options.seed})`)
    return this.leader()!
  }

  propose(id: string, ...commands: string[]) {
    const node = this.node(id)
    const result = node.core!.propose(commands.map(command), this.#clock(node))
    this.#pump(node)
    return result
  }

  readIndex(id: string, requestId: ReadRequestId) {
    const node = this.node(id)
    const result = node.core!.readIndex(requestId, this.#clock(node))
    this.#pump(node)
    return result
  }

  setMembers(id: string, members: readonly { id: string; observer: boolean }[]): void {
    const node = this.node(id)
    node.core?.setMembers(members, this.#clock(node))
    this.#kick(node)
  }

  /** Lets `action` poke a node's core directly, then runs its Ready loop. */
  withCore<T>(id: string, action: (core: RaftNode, now: number) => T): T {
    const node = this.node(id)
    const out = action(node.core!, this.#clock(node))
    this.#kick(node)
    return out
  }

  /**
   * Crashes a node. Its state machine and everything in memory are lost; of a Ready being persisted,
   * `torn` keeps the entries but not the hard state (a write cut short), `unsent` keeps everything but
   * sends nothing, and the default keeps nothing.
   */
  crash(id: string, mode: 'clean' | 'torn' | 'unsent' = 'clean'): void {
    const node = this.node(id)
    if (!node.alive) return
    const rd = node.outstanding
    if (rd !== undefined && mode !== 'clean') this.#persist(node, rd, mode === 'torn')
    node.core = undefined
    node.outstanding = undefined
    node.incarnation++
    node.confirmedReads.clear()
    node.snapshotNeeded = undefined
    node.installedSnapshot = undefined
    node.catchUp = undefined
    node.tickAt = Number.POSITIVE_INFINITY
    this.net.detach(id)
    this.#emit({ type: 'crash', node })
    this.#topologyChanged()
  }

  restart(id: string): void {
    const node = this.node(id)
    if (node.alive || node.halted) return
    node.machine = this.#newMachine()
    this.#boot(node)
    this.#topologyChanged()
  }

  /** Wipes a node's disk and state and calls `reset()` on its core (a rival cluster won). */
  reset(id: string, winner?: ClusterStanding): void {
    const node = this.node(id)
    // A Ready being persisted is void: its write must not land on the wiped disk.
    node.outstanding = undefined
    node.incarnation++
    node.tickAt = Number.POSITIVE_INFINITY
    node.disk = { hardState: { term: 0, vote: null, commit: 0 }, snapshot: undefined, entries: [] }
    node.machine = this.#newMachine()
    node.applied = 0
    node.lastSnapshotAt = 0
    node.confirmedReads.clear()
    node.catchUp = undefined
    node.snapshotNeeded = undefined
    node.core?.reset(this.#clock(node), winner)
    this.#kick(node)
  }

  partition(...groups: string[][]): void {
    this.net.partition(groups)
    this.#topologyChanged()
  }

  cut(a: string, b: string): void {
    this.net.cut(a, b)
    this.#topologyChanged()
  }

  heal(): void {
    this.net.heal()
    this.#topologyChanged()
  }

  /** The entries on a node's disk (after its snapshot, if any). */
  logOf(id: string): Entry[] {
    return this.node(id).disk.entries
  }

  /** Checks the cluster-wide invariants that need a global view; adds to `violations`. */
  checkLogsAgree(): void {
    for (const node of this.alive()) {
      const { commitIndex: commit, clusterId } = node.status()
      const committed = this.committedByCluster.get(clusterId ?? '') ?? new Map<number, Entry>()
      for (const entry of node.disk.entries) {
        if (entry.index > commit) break
        const known = committed.get(entry.index)
        if (known !== undefined && !sameEntry(known, entry)) {
          this.#violation(`${node.id} holds ${describe(entry)} where ${describe(known)} was committed`)
        }
      }
    }
  }

  /** Every entry ever applied anywhere is still in every live node's log or snapshot. */
  checkCommittedSurvive(): void {
    for (const node of this.alive()) {
      const snapshotIndex = node.disk.snapshot?.meta.index ?? 0
      const byIndex = new Map(node.disk.entries.map((e) => [e.index, e]))
      const committed = this.committedByCluster.get(node.status().clusterId ?? '') ?? new Map<number, Entry>()
      for (const [index, entry] of committed) {
        if (index <= snapshotIndex) continue
        const ours = byIndex.get(index)
        if (ours === undefined) {
          if (index <= node.applied) this.#violation(`${node.id} lost committed ${describe(entry)}`)
        } else if (!sameEntry(ours, entry)) {
          this.#violation(`${node.id} replaced committed ${describe(entry)} by ${describe(ours)}`)
        }
      }
    }
  }

  // -------------------------------------------------------------------------------------------------

  #clock(node: SimRaftNode): number {
    return node.clock(this.sim.now)
  }

  #newMachine(): SimStateMachine {
    return this.#options.stateMachine?.() ?? new CommandList()
  }

  #boot(node: SimRaftNode): void {
    const disk = node.disk
    const snapshotIndex = disk.snapshot?.meta.index ?? 0
    node.core = new RaftNode({
      id: node.id,
      preference: node.preference,
      timing: this.timing,
      random: () => this.#prng.next(),
      ...this.#options.raft,
      persisted: {
        hardState: { ...disk.hardState },
        ...(disk.snapshot !== undefined ? { snapshot: disk.snapshot.meta } : {}),
        entries: disk.entries.filter((e) => e.index > snapshotIndex),
      },
      now: this.#clock(node),
    })
    if (disk.snapshot !== undefined) node.machine.restore(disk.snapshot.state)
    node.applied = snapshotIndex
    node.lastSnapshotAt = snapshotIndex
    this.net.attach(node.id, (message, from) => this.#receive(node, message, from))
    this.#kick(node)
  }

  #emit(event: ClusterEvent): void {
    for (const listener of this.#listeners) listener(event)
  }

  #violation(what: string): void {
    this.violations.push(`t=${this.now.toFixed(1)} ${what}`)
  }

  #topologyChanged(): void {
    if ((this.#options.members ?? 'topology') !== 'topology') return
    const delay = this.#options.bondDelayMs ?? 3 * this.timing.heartbeatMs
    for (const node of this.nodes.values()) {
      if (!node.alive) continue
      const incarnation = node.incarnation
      this.sim.after(this.#prng.between(0, delay), () => {
        if (!node.alive || node.incarnation !== incarnation) return
        const members = this.alive()
          .filter((peer) => peer === node || this.net.connected(node.id, peer.id))
          .map((peer) => ({ id: peer.id, observer: peer.preference === 'observer' }))
        node.core!.setMembers(members, this.#clock(node))
        this.#kick(node)
      })
    }
  }

  #receive(node: SimRaftNode, wire: WireMessage, from: string): void {
    const core = node.core
    if (core === undefined) return
    switch (wire.kind) {
      case 'raft':
        core.step(wire.message, this.#clock(node))
        break
      case 'snapshotRequest':
        this.#serveSnapshot(node, from, wire.index, wire.clusterId)
        break
      case 'snapshotResponse':
        this.#installSnapshot(node, wire.meta, wire.state)
        break
      case 'fetchRequest':
        this.#serveFetch(node, from, wire.from, wire.to, wire.clusterId)
        break
      case 'fetchResponse':
        this.#receiveFetch(node, wire.from, wire.entries)
        break
    }
    this.#kick(node)
  }

  /** After any input: run the Ready loop and re-arm the tick timer. */
  #kick(node: SimRaftNode): void {
    this.#pump(node)
    this.#armTick(node)
  }

  #armTick(node: SimRaftNode, earliest = this.now): void {
    const core = node.core
    if (core === undefined) return
    const at = Math.max(node.realTime(core.nextTickAt()), earliest)
    if (at >= node.tickAt) return
    node.tickAt = at
    const incarnation = node.incarnation
    this.sim.at(at, () => {
      if (node.core === undefined || node.incarnation !== incarnation || node.tickAt !== at) return
      node.tickAt = Number.POSITIVE_INFINITY
      node.core.tick(this.#clock(node))
      this.#pump(node)
      // A deadline still due right after a tick would spin: look again a millisecond later.
      this.#armTick(node, this.now + 1)
    })
  }

  /** Takes the next Ready (one outstanding at a time) and persists it after a disk delay. */
  #pump(node: SimRaftNode): void {
    const core = node.core
    if (core === undefined || node.outstanding !== undefined || !core.hasReady()) return
    const rd = core.ready()
    node.outstanding = rd
    const [lo, hi] = this.#options.diskDelayMs ?? [0, 1]
    const incarnation = node.incarnation
    this.sim.after(this.#prng.between(lo, hi), () => {
      if (node.incarnation !== incarnation) return
      this.#execute(node, rd)
      node.outstanding = undefined
      node.core?.advance(rd)
      this.#maybeCompact(node)
      this.#kick(node)
    })
  }

  /** Everything a Ready asks, in the contract's order. */
  #execute(node: SimRaftNode, rd: Ready): void {
    this.#persist(node, rd, false)
    for (const message of rd.messages) this.net.send(node.id, message.to, { kind: 'raft', message })
    for (const entry of rd.committedEntries) this.#apply(node, entry)
    for (const read of rd.readStates) node.confirmedReads.set(read.requestId, read.index)
    this.#serveReads(node)
    for (const requestId of rd.droppedReads) this.#emit({ type: 'droppedRead', node, requestId })
    if (rd.status !== undefined) this.#observeStatus(node, rd.status)
    if (rd.rival !== undefined) {
      this.#emit({ type: 'rival', node, rival: rd.rival })
      const { outcome, theirs: winner } = rd.rival
      if (outcome === 'rejoin' && this.#options.resolveRivals !== false) {
        const incarnation = node.incarnation
        this.sim.after(0, () => {
          // Only if the node has not moved to that cluster meanwhile.
          const current = node.core?.status().clusterId
          if (node.incarnation !== incarnation || current === winner.clusterId || current === undefined)
            return
          const commit = node.disk.hardState.commit
          const held = node.disk.entries.some((e) => e.index <= commit && e.kind === 'command')
          // A learner or observer may rejoin holding commands: they are copies of what its cluster's
          // voters hold, and those halt.
          const voter = node.core?.status().isVoter ?? false
          if (voter && (held || node.disk.snapshot !== undefined)) {
            this.#violation(`${node.id} was told to rejoin ${winner.clusterId} holding committed commands`)
          }
          this.resets++
          this.reset(node.id, winner)
        })
      } else if (outcome === 'halt' && this.#options.resolveRivals !== false) {
        if (!node.core!.status().halted) this.#violation(`${node.id} reported a halt but is not halted`)
        node.halted = true
        this.halts++
        this.sim.after(0, () => this.crash(node.id))
      }
    }
    if (rd.snapshotNeeded !== undefined) {
      node.snapshotNeeded = rd.snapshotNeeded
      this.#requestSnapshot(node)
    }
    if (rd.catchUp !== undefined) {
      node.catchUp = { next: rd.catchUp.from, to: rd.catchUp.to, requested: new Map(), received: new Map() }
      this.#fetchMore(node)
    }
  }

  #persist(node: SimRaftNode, rd: Ready, entriesOnly: boolean): void {
    const disk = node.disk
    if (rd.snapshot !== undefined) {
      const installed = node.installedSnapshot
      if (installed === undefined || installed.meta.index !== rd.snapshot.index) {
        this.#violation(`${node.id} was told to persist a snapshot it never installed`)
      } else {
        disk.snapshot = installed
        disk.entries = []
      }
      node.installedSnapshot = undefined
    }
    if (rd.truncateFrom !== undefined) {
      const keep = disk.entries.findIndex((e) => e.index >= rd.truncateFrom!)
      if (keep >= 0) disk.entries.length = keep
    }
    if (rd.entries.length > 0) {
      const last = disk.entries[disk.entries.length - 1]?.index ?? disk.snapshot?.meta.index ?? 0
      if (rd.entries[0]!.index !== last + 1) {
        this.#violation(`${node.id} asked to persist ${rd.entries[0]!.index} after ${last}`)
      }
      for (const entry of rd.entries) disk.entries.push(entry)
    }
    if (rd.hardState !== undefined && !entriesOnly) disk.hardState = { ...rd.hardState }
  }

  #apply(node: SimRaftNode, entry: Entry): void {
    if (entry.index <= node.skipThrough) return // covered by a snapshot installed meanwhile
    if (entry.index !== node.applied + 1) {
      this.#violation(`${node.id} applies ${entry.index} after ${node.applied}`)
    }
    node.applied = entry.index
    const clusterId = node.core?.status().clusterId ?? ''
    let committed = this.committedByCluster.get(clusterId)
    if (committed === undefined) {
      committed = new Map()
      this.committedByCluster.set(clusterId, committed)
    }
    const known = committed.get(entry.index)
    if (known === undefined) committed.set(entry.index, entry)
    else if (!sameEntry(known, entry)) {
      this.#violation(`${node.id} applies ${describe(entry)} where ${describe(known)} was applied`)
    }
    const output = entry.kind === 'command' ? node.machine.apply(entry.data, entry.index) : undefined
    this.#emit({ type: 'apply', node, entry, output })
  }

  #serveReads(node: SimRaftNode): void {
    for (const [requestId, index] of node.confirmedReads) {
      if (node.applied < index) continue
      node.confirmedReads.delete(requestId)
      this.#emit({ type: 'read', node, requestId, index })
    }
  }

  #observeStatus(node: SimRaftNode, status: RaftStatus): void {
    if (status.role === 'leader') {
      const key = `${status.clusterId}/${status.term}`
      const other = this.leaderOfTerm.get(key)
      if (other === undefined) this.leaderOfTerm.set(key, node.id)
      else if (other !== node.id)
        this.#violation(`two leaders in term ${status.term}: ${other} and ${node.id}`)
    }
    this.#emit({ type: 'status', node, status })
  }

  /** Every `snapshotEvery` applied entries: snapshot the state machine, then compact log and disk. */
  #maybeCompact(node: SimRaftNode): void {
    const every = this.#options.snapshotEvery ?? 0
    const core = node.core
    if (every === 0 || core === undefined || node.applied - node.lastSnapshotAt < every) return
    const meta = core.snapshotMeta(node.applied)
    node.disk.snapshot = { meta, state: node.machine.snapshot() }
    node.lastSnapshotAt = node.applied
    const upTo = node.applied - (this.#options.keepLogTail ?? 0)
    if (upTo <= 0) return
    core.compact(upTo)
    const cut = node.disk.entries.findIndex((e) => e.index > upTo)
    node.disk.entries = cut < 0 ? [] : node.disk.entries.slice(cut)
  }

  // Snapshot transfer (the worker side of Ready.snapshotNeeded).

  #requestSnapshot(node: SimRaftNode): void {
    const need = node.snapshotNeeded
    if (need === undefined || node.core === undefined) return
    const peers = this.ids.filter((id) => id !== node.id)
    const target = this.#prng.chance(0.5) ? need.leader : this.#prng.pick(peers)
    const clusterId = node.core.status().clusterId ?? ''
    this.net.send(node.id, target, { kind: 'snapshotRequest', index: need.index, clusterId })
    const incarnation = node.incarnation
    this.sim.after(5 * this.timing.heartbeatMs, () => {
      if (node.incarnation === incarnation && node.snapshotNeeded === need) this.#requestSnapshot(node)
    })
  }

  #serveSnapshot(node: SimRaftNode, to: string, index: number, clusterId: string): void {
    const core = node.core!
    if (core.status().clusterId !== clusterId || node.applied < index) return
    const meta = core.snapshotMeta(node.applied)
    this.net.send(node.id, to, { kind: 'snapshotResponse', meta, state: node.machine.snapshot() })
  }

  #installSnapshot(node: SimRaftNode, meta: SnapshotMeta, state: unknown): void {
    const need = node.snapshotNeeded
    if (need === undefined || meta.index < need.index) return
    if (!node.core!.restoreSnapshot(meta, this.#clock(node))) return
    node.machine.restore(state)
    node.applied = meta.index
    node.skipThrough = meta.index
    node.lastSnapshotAt = meta.index
    node.installedSnapshot = { meta, state }
    node.snapshotNeeded = undefined
  }

  // Parallel catch-up (the worker side of Ready.catchUp).

  #fetchMore(node: SimRaftNode): void {
    const job = node.catchUp
    const core = node.core
    if (job === undefined || core === undefined) return
    if (!core.status().catchingUp || job.next > job.to) {
      node.catchUp = undefined
      return
    }
    for (const [from, askedAt] of job.requested) {
      if (this.now - askedAt >= 4 * this.timing.heartbeatMs) job.requested.delete(from)
    }
    const peers = this.ids.filter((id) => id !== node.id)
    const clusterId = core.status().clusterId ?? ''
    for (let start = job.next; job.requested.size < FETCH_PARALLEL && start <= job.to; start += FETCH_CHUNK) {
      if (job.requested.has(start) || job.received.has(start)) continue
      job.requested.set(start, this.now)
      const to = Math.min(start + FETCH_CHUNK - 1, job.to)
      this.net.send(node.id, this.#prng.pick(peers), { kind: 'fetchRequest', from: start, to, clusterId })
    }
    const incarnation = node.incarnation
    this.sim.after(4 * this.timing.heartbeatMs, () => {
      if (node.incarnation === incarnation && node.catchUp === job) this.#fetchMore(node)
    })
  }

  #serveFetch(node: SimRaftNode, to: string, from: number, last: number, clusterId: string): void {
    const core = node.core!
    if (core.status().clusterId !== clusterId) return
    // Only what the disk knows to be committed: the in-memory commit may run ahead of a Ready that is
    // still replacing stale entries on disk.
    const commit = Math.min(node.disk.hardState.commit, last)
    const entries = node.disk.entries.filter((e) => e.index >= from && e.index <= commit)
    if (entries.length > 0 && entries[0]!.index === from) {
      this.net.send(node.id, to, { kind: 'fetchResponse', from, entries })
    }
  }

  #receiveFetch(node: SimRaftNode, from: number, entries: Entry[]): void {
    const job = node.catchUp
    if (job === undefined || !job.requested.delete(from)) return
    job.received.set(from, entries)
    // Feed, in order, every chunk that continues what was fed (chunks may overlap).
    for (let fed = true; fed; ) {
      fed = false
      for (const [start, chunk] of job.received) {
        const end = chunk[chunk.length - 1]!.index
        if (end < job.next) job.received.delete(start)
        else if (start <= job.next) {
          job.received.delete(start)
          node.core!.appendCommitted(chunk, this.#clock(node))
          job.next = end + 1
          fed = true
        }
      }
    }
    this.#fetchMore(node)
  }
}

function sameEntry(a: Entry, b: Entry): boolean {
  if (a.index !== b.index || a.term !== b.term || a.kind !== b.kind) return false
  if (a.kind === 'command' && b.kind === 'command') return equalBytes(a.data, b.data)
  return true
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function describe(entry: Entry): string {
  const body = entry.kind === 'command' ? decoder.decode(entry.data) : entry.kind
  return `#${entry.index}@${entry.term}(${body})`
}

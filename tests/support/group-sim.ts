/**
 * Deterministic simulation of the SHIPPING group worker: N real `GroupWorker`s, each over a virtual
 * `Runtime` on the Simulation's clock and a `SimTransport` over a seeded message network, with a
 * `SimDisk` per node that survives crashes: a write becomes durable after a simulated fsync of 0.5–10
 * ms (slower than the network, as on most machines), and a crash keeps a random prefix of the writes
 * still in flight. Clients on every node write and read strongly from the moment its worker starts;
 * every call goes into a History for the linearizability checker. Nothing here reads the real clock
 * or Math.random, so a seed replays a run exactly.
 *
 * The event loop: one simulation event at a time, then every microtask it caused (promise chains in
 * the worker, the clients) runs to completion before the next event (`process.nextTick` fires only
 * once the microtask queue is empty).
 *
 * The parts, in group-sim/: the members' state machine (list-machine.ts), runtime, disk and transport;
 * the network of bonds between them, with discovery and faults (bonds.ts); the clients (clients.ts).
 */

import {
  type ApplyContext,
  type ConsensusOptions,
  consensusConfig,
  Digest,
  type Preference,
} from '../../platform/node/index.ts'
import type { WriteBatch } from '../../src/groups/storage/log-store.ts'
import { GroupWorker } from '../../src/groups/worker.ts'
import type { Logger } from '../../src/transport/context.ts'
import { FAST_CONSENSUS } from './consensus.ts'
import { SimBonds } from './group-sim/bonds.ts'
import { type ClientOptions, SimClients } from './group-sim/clients.ts'
import { DiskHandle, SimDisk } from './group-sim/disk.ts'
import { type ListCommand, ListMachine, type ListResult } from './group-sim/list-machine.ts'
import type { ListWorker, SimMember } from './group-sim/members.ts'
import { SimRuntime } from './group-sim/runtime.ts'
import { describeFrame, format } from './group-sim/trace.ts'
import { DEFAULT_NET, type NetConditions, SimTransport } from './group-sim/transport.ts'
import { type Prng, Simulation } from './sim-network.ts'

export { listModel } from './group-sim/list-machine.ts'
export type { SimMember } from './group-sim/members.ts'

export interface GroupSimOptions {
  seed: number
  /** Number of members (ids n1..nN). */
  nodes: number
  consensus?: ConsensusOptions
  network?: Partial<NetConditions>
  /** Each node's clock runs at a rate in [1/(1+skew), 1+skew] (default 0). */
  clockSkew?: number
  /** A node learns of each other member this long after both exist (default [0, 200]). */
  discoveryMs?: readonly [number, number]
  /** How long forming a bond takes (default [2, 20]). */
  dialMs?: readonly [number, number]
  /** How long each fsync of a member's disk takes (default [0.5, 10]). */
  fsyncMs?: readonly [number, number]
  clients?: Partial<ClientOptions>
  /** Check that every node applies the same value at each list position (off for rival clusters). */
  checkApplyOrder?: boolean
  /** Keep a human-readable trace (slow). */
  trace?: boolean
}

/** The consensus settings the simulation uses unless a scenario overrides them. */
export const SIM_CONSENSUS: ConsensusOptions = {
  ...FAST_CONSENSUS,
  voterUnreachableMs: 3000,
  forwardTimeoutMs: 1000,
  queryTimeoutMs: 1000,
  commitTimeoutMs: 3000,
  bondHeartbeatMs: 100,
  maxMissedHeartbeats: 5,
  snapshotEvery: 10_000,
  handshakeTimeoutMs: 500,
}

export class GroupSim {
  readonly sim: Simulation
  readonly options: GroupSimOptions
  readonly config: ReturnType<typeof consensusConfig>
  readonly net: NetConditions
  readonly members = new Map<string, SimMember>()
  readonly problems: string[] = []
  readonly notes: string[] = []
  readonly traceLines: string[] = []
  /** What a scenario's script saw happen, for its check that the faults reached the path it tests. */
  readonly observed = new Set<string>()
  /** Catch-up counters of the incarnations that crashed (see {@link GroupSim.catchUpStats}). */
  readonly #retired = { entriesPulled: 0, snapshotsInstalled: 0 }
  readonly #groupId = Digest.fromParts('group-sim')
  readonly #clients: SimClients
  readonly #bonds: SimBonds
  /** Per list position, the value every node must apply there (one canonical history). */
  readonly #canonical: number[] = []
  #hash = 0x811c9dc5
  events = 0

  constructor(options: GroupSimOptions) {
    this.options = options
    this.sim = new Simulation(options.seed)
    this.config = consensusConfig({ ...SIM_CONSENSUS, ...options.consensus })
    this.net = { ...DEFAULT_NET, ...options.network }
    const netPrng = this.sim.prng.fork()
    const clientPrng = this.sim.prng.fork()
    const topoPrng = this.sim.prng.fork()
    const skew = options.clockSkew ?? 0
    for (let i = 1; i <= options.nodes; i++) {
      const id = `n${i}`
      const prng = this.sim.prng.fork()
      const rate = skew > 0 ? Math.exp(prng.between(-Math.log1p(skew), Math.log1p(skew))) : 1
      this.members.set(id, newMember(id, prng, rate))
    }
    this.#clients = new SimClients({
      sim: this.sim,
      prng: clientPrng,
      options: options.clients,
      mix: (text) => this.#mix(text),
      observe: (what) => this.observed.add(what),
    })
    this.#bonds = new SimBonds({
      sim: this.sim,
      members: this.members,
      keepAlive: this.config,
      net: this.net,
      discoveryMs: options.discoveryMs ?? [0, 200],
      dialMs: options.dialMs ?? [2, 20],
      netPrng,
      topoPrng,
      trace: (line) => this.#trace(line),
      mix: (text) => this.#mix(text),
      traceFrame: options.trace
        ? (from, to, kind, body) =>
            this.traceLines.push(`${this.now.toFixed(3)} ${from}>${to} ${describeFrame(kind, body)}`)
        : undefined,
      problem: (text) => this.problems.push(text),
      sent: (from, to, kind, body) => {
        for (const watch of this.sendWatchers) watch(from, to, kind, body)
      },
    })
  }

  /** Called with every frame a member sends, as it sends it: for checks of what may leave a member. */
  readonly sendWatchers: ((from: string, to: string, kind: number, body: unknown) => void)[] = []

  get ids(): string[] {
    return [...this.members.keys()]
  }

  get now(): number {
    return this.sim.now
  }

  /** A digest of everything that happened: equal for two runs of one seed. */
  get hash(): number {
    return this.#hash >>> 0
  }

  /** Frames sent on any bond. */
  get frames(): number {
    return this.#bonds.frames
  }

  member(id: string): SimMember {
    const m = this.members.get(id)
    if (!m) throw new Error(`no member ${id}`)
    return m
  }

  /** Members whose worker runs (alive, started, neither halted nor closed). */
  running(): SimMember[] {
    return [...this.members.values()].filter(
      (m) => m.alive && m.worker !== undefined && !m.worker.halted && !m.worker.closed,
    )
  }

  /** Entries pulled and snapshots installed by catch-ups, over every incarnation of every member. */
  catchUpStats(): { entriesPulled: number; snapshotsInstalled: number } {
    const total = { ...this.#retired }
    for (const m of this.members.values()) {
      total.entriesPulled += m.worker?.stats.entriesPulled ?? 0
      total.snapshotsInstalled += m.worker?.stats.snapshotsInstalled ?? 0
    }
    return total
  }

  halted(): SimMember[] {
    return [...this.members.values()].filter((m) => m.worker?.halted !== undefined)
  }

  // ================================================================================================
  // Driving

  /** Runs events for `ms` of simulated time, settling every promise after each event. */
  async run(ms: number): Promise<void> {
    await this.runUntil(() => false, ms)
  }

  /** Runs until `done()` holds (checked after each event) or `ms` pass; returns done(). */
  async runUntil(done: () => boolean, ms: number): Promise<boolean> {
    const end = this.sim.now + ms
    await new Promise<void>((resolve) => setImmediate(resolve))
    if (done()) return true
    let stuckAt = -1
    let stuck = 0
    while (this.sim.step(end)) {
      this.events++
      await settle()
      if (done()) return true
      // Time must move on: a timer re-armed at zero delay forever is a livelock of the worker.
      if (this.sim.now !== stuckAt) {
        stuckAt = this.sim.now
        stuck = 0
      } else if (++stuck > 100_000) {
        throw new Error(`livelock: over 100000 events at simulated time ${stuckAt} ms`)
      }
    }
    return done()
  }

  /** Schedules an action (a fault, a start) at a simulated time. */
  at(time: number, action: () => void): void {
    this.sim.at(time, action)
  }

  // ================================================================================================
  // Members

  /** Starts (or restarts from its disk) a member; its client starts with it. */
  start(id: string, preference?: Preference): void {
    const m = this.member(id)
    if (m.alive) return
    // A restart keeps the preference the member first started with, as a restarted process would.
    if (preference !== undefined) m.preference = preference
    m.alive = true
    m.everStarted = true
    const incarnation = ++m.incarnation
    const runtime = new SimRuntime(this.sim, m.prng.fork(), m.rate)
    const transport = new SimTransport(this.#bonds, id, runtime)
    const handle = new DiskHandle(m.disk, this.sim, m.prng.fork(), this.options.fsyncMs)
    const machine = new ListMachine(
      (values, ctx) => this.#onApply(m, values, ctx),
      (before, after) => this.#onRestore(m, before, after),
    )
    const { promise, resolve } = Promise.withResolvers<'crashed'>()
    m.crashed = promise
    m.crash = () => resolve('crashed')
    m.runtime = runtime
    m.transport = transport
    m.handle = handle
    m.machine = machine
    m.worker = undefined
    m.knows = new Set()
    this.#trace(`start ${id}#${incarnation}`)
    GroupWorker.start<ListCommand, 'value', ListResult>({
      id,
      groupId: this.#groupId,
      stateMachine: machine,
      store: handle,
      consensus: this.config,
      preference: m.preference,
      transport,
      runtime,
      log: this.#logger(id),
      onHalt: (err) => {
        this.#trace(`halt ${id}: ${err.message}`)
        this.notes.push(`${id} halted at ${this.now.toFixed(0)}: ${err.message}`)
      },
    }).then(
      (worker) => {
        if (m.incarnation !== incarnation) return
        m.worker = worker
        this.#watchRole(m, incarnation, worker)
        for (let i = 0; i < (this.options.clients?.perMember ?? 1); i++)
          void this.#clients.run(m, incarnation, worker)
      },
      (err: Error) => {
        if (m.incarnation === incarnation) this.problems.push(`${id} failed to start: ${err.stack}`)
      },
    )
    this.#bonds.memberStarted(m)
  }

  /** Traces the member's changes of cluster and role (what the trace of frames does not show). */
  #watchRole(m: SimMember, incarnation: number, worker: ListWorker): void {
    if (!this.options.trace) return
    const say = (s: { role: string; term: number; leader?: string }) => {
      const cluster = worker.node.status().clusterId
      return `${s.role}/t${s.term}/${cluster === '' ? 'fresh' : cluster}/leader ${s.leader ?? '-'}`
    }
    let last = say(worker.status.value)
    this.#traceOnly(`${m.id} ${last}`)
    const loop = async () => {
      while (m.incarnation === incarnation) {
        const s = await worker.status.changed().catch(() => undefined)
        if (s === undefined || m.incarnation !== incarnation) return
        const now = say(s)
        if (now !== last) this.#traceOnly(`${m.id} ${now}`)
        last = now
      }
    }
    void loop()
  }

  /** Kills a member's process: its disk stays; bonds end by reset or keep-alive timeout. */
  crash(id: string): void {
    const m = this.member(id)
    if (!m.alive) return
    this.#trace(`crash ${id}#${m.incarnation}`)
    if (m.worker) {
      this.#retired.entriesPulled += m.worker.stats.entriesPulled
      this.#retired.snapshotsInstalled += m.worker.stats.snapshotsInstalled
    }
    m.alive = false
    m.incarnation++
    m.runtime?.kill()
    m.transport?.kill()
    m.handle?.kill()
    m.crash()
    m.worker = undefined
    m.runtime = undefined
    m.transport = undefined
    m.handle = undefined
    m.knows = new Set()
    this.#bonds.memberCrashed(id)
  }

  /** A member's disk starts failing writes (see DiskHandle.failWrites) until its process restarts. */
  failDisk(id: string): void {
    const m = this.member(id)
    if (!m.handle) return
    this.#trace(`disk fails ${id}#${m.incarnation}`)
    m.handle.failWrites()
  }

  /** A member's disk hangs at the first write `select` picks (see DiskHandle.hangAt), until it restarts. */
  hangDiskAt(id: string, select: (batch: WriteBatch) => boolean): void {
    const m = this.member(id)
    if (!m.handle) return
    this.#trace(`disk hangs at a write ${id}#${m.incarnation}`)
    m.handle.hangAt(select)
  }

  restart(id: string): void {
    this.crash(id)
    this.start(id)
  }

  // ================================================================================================
  // Faults (see SimBonds)

  /** Splits the members into groups that cannot reach each other (unlisted members form one more). */
  partition(...groups: string[][]): void {
    this.#bonds.partition(...groups)
  }

  /** Frames from `from` to `to` are lost (the other direction still works). */
  oneWay(from: string, to: string): void {
    this.#bonds.oneWay(from, to)
  }

  heal(): void {
    this.#bonds.heal()
  }

  /** Members in different groups cannot learn of each other (until `joinDiscovery`). */
  splitDiscovery(...groups: string[][]): void {
    this.#bonds.splitDiscovery(...groups)
  }

  joinDiscovery(): void {
    this.#bonds.joinDiscovery()
  }

  connected(a: string, b: string): boolean {
    return this.#bonds.connected(a, b)
  }

  // ================================================================================================
  // Clients (see SimClients)

  get history(): SimClients['history'] {
    return this.#clients.history
  }

  get ops(): SimClients['ops'] {
    return this.#clients.ops
  }

  /** Values whose write was acknowledged / certainly failed / of unknown outcome. */
  get acked(): ReadonlySet<number> {
    return this.#clients.acked
  }

  get failed(): ReadonlySet<number> {
    return this.#clients.failed
  }

  get unknown(): ReadonlySet<number> {
    return this.#clients.unknown
  }

  stopClients(): void {
    this.#clients.stop()
  }

  /** Whether any client call is still waiting for its outcome. */
  clientsBusy(): boolean {
    return this.#clients.busy()
  }

  /** One write through `worker`, recorded in the history. True when acknowledged. */
  write(m: SimMember, worker: ListWorker): Promise<boolean> {
    return this.#clients.write(m, worker)
  }

  /** One strong read through `worker`, recorded in the history; its result when it succeeded. */
  read(m: SimMember, worker: ListWorker): Promise<ListResult | undefined> {
    return this.#clients.read(m, worker)
  }

  sleep(ms: number): Promise<void> {
    return this.#clients.sleep(ms)
  }

  // ================================================================================================
  // Invariants while running

  #onApply(m: SimMember, values: readonly number[], ctx: ApplyContext): void {
    const pos = values.length - 1
    const v = values[pos]!
    this.#mix(`a${m.id}${ctx.index}:${v}`)
    if (this.options.checkApplyOrder === false) return
    const expected = this.#canonical[pos]
    if (expected === undefined) this.#canonical[pos] = v
    else if (expected !== v) {
      this.problems.push(
        `${m.id} applied value ${v} at list position ${pos} (log index ${ctx.index}, term ${ctx.term}) where another node applied ${expected}`,
      )
    }
  }

  #onRestore(m: SimMember, before: readonly number[], after: readonly number[]): void {
    // A restore (snapshot install, rejoin) may only move forward: never drop an applied command.
    const kept = before.length <= after.length && before.every((v, i) => after[i] === v)
    // Except a learner's or observer's rejoin after its cluster lost a rivalry: it held copies of what
    // the voters hold, and those halt and keep them (checked at the end).
    const copyDropped = after.length === 0 && m.worker !== undefined && !m.worker.node.status().isVoter
    if (!kept && !copyDropped) {
      this.problems.push(
        `${m.id} replaced its state of ${before.length} applied values with one of ${after.length} that does not extend it (committed commands dropped)`,
      )
    }
    if (this.options.checkApplyOrder === false) return
    for (let i = 0; i < after.length; i++) {
      const expected = this.#canonical[i]
      if (expected === undefined) this.#canonical[i] = after[i]!
      else if (expected !== after[i]) {
        this.problems.push(
          `${m.id} restored value ${after[i]} at position ${i} where others applied ${expected}`,
        )
        break
      }
    }
  }

  // ================================================================================================
  // Tracing

  #logger(id: string): Logger {
    const log = ((formatter: string, ...args: unknown[]) => {
      if (this.options.trace) this.#traceOnly(`${id}: ${format(formatter, args)}`)
    }) as Logger
    log.trace = () => {}
    log.error = (formatter: string, ...args: unknown[]) => {
      const text = format(formatter, args)
      this.#trace(`${id} ERROR: ${text}`)
      // The only errors a healthy worker logs: a halt after losing a rivalry, or on a failed disk.
      const expected = text.includes('stopped and kept its data') || text.includes('disk failed a write')
      if (!expected) this.problems.push(`${id} logged an error: ${text}`)
    }
    return log
  }

  /** Records an event (mixed into the run's hash), and its line when tracing. */
  #trace(line: string): void {
    this.#mix(line)
    this.#traceOnly(line)
  }

  /** A line only a traced run produces (not mixed in: the hash must not depend on tracing). */
  #traceOnly(line: string): void {
    if (this.options.trace) this.traceLines.push(`${this.now.toFixed(3)} ${line}`)
  }

  #mix(text: string): void {
    let h = this.#hash ^ Math.round(this.now * 1000)
    h = Math.imul(h, 0x01000193)
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i)
      h = Math.imul(h, 0x01000193)
    }
    this.#hash = h
  }

  // ================================================================================================
  // The end of a run

  /** Applied values on a member (its state machine). */
  valuesOf(id: string): readonly number[] {
    return this.member(id).machine?.values ?? []
  }

  /** Checks the history and the acknowledged writes against the final state of `reference`. */
  checkOutcome(
    final: readonly number[],
    options: { linearizable?: boolean; keptBy?: SimMember[] } = {},
  ): void {
    this.problems.push(...this.#clients.checkOutcome(final, options))
  }
}

function newMember(id: string, prng: Prng, rate: number): SimMember {
  return {
    id,
    disk: new SimDisk(),
    prng,
    rate,
    preference: 'normal',
    incarnation: 0,
    alive: false,
    everStarted: false,
    worker: undefined,
    machine: undefined,
    runtime: undefined,
    transport: undefined,
    handle: undefined,
    knows: new Set(),
    crashed: new Promise(() => {}),
    crash: () => {},
  }
}

/** Resolves once every microtask queued so far, and every one those queue, has run. */
function settle(): Promise<void> {
  return new Promise((resolve) => process.nextTick(resolve))
}

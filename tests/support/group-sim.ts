/**
 * Deterministic simulation of the SHIPPING group worker: N real `GroupWorker`s, each over a virtual
 * `Runtime` on the Simulation's clock and a `SimTransport` over a seeded message network, with a
 * `SimDisk` per node that survives crashes: a write becomes durable after a simulated fsync of 0.5–10
 * ms (slower than the network, as on most machines), and a crash keeps a random prefix of the writes
 * still in flight. Clients on every node write and read
 * strongly from the moment its worker starts; every call goes into a History for the linearizability
 * checker. Nothing here reads the real clock or Math.random, so a seed replays a run exactly.
 *
 * The event loop: one simulation event at a time, then every microtask it caused (promise chains in
 * the worker, the clients) runs to completion before the next event (`process.nextTick` fires only
 * once the microtask queue is empty).
 *
 * The network models what bonds do in production: a bond between two members is up while both are
 * alive and can reach each other; a cut (partition, one-way link) closes it after the keep-alive
 * timeout (`bondHeartbeatMs * maxMissedHeartbeats`), a crash after a connection reset or the same
 * timeout; it forms again once both sides are back and one knows the other (discovery, or gossip of
 * a new bond). Frames on a bond get random delays (reordering, unless `ordered`); Raft frames are
 * also dropped and duplicated at random (requests and responses only go down with their bond).
 */

import {
  type ApplyContext,
  ClosedError,
  type ConsensusOptions,
  consensusConfig,
  Digest,
  decodeCanonical,
  encodeCanonical,
  type HardState,
  type LoadedLog,
  type LogEntry,
  type LogStore,
  MemoryLogStore,
  type Preference,
  type SnapshotMeta,
  type StateMachine,
  StorageError,
} from '../../platform/node/index.ts'
import { BondMsg, BondRequestError, RequestRefusedError } from '../../src/groups/bond.ts'
import type { WriteBatch } from '../../src/groups/storage/log-store.ts'
import type { Runtime } from '../../src/groups/worker/runtime.ts'
import type { BondView, GroupTransport, TransportHandlers } from '../../src/groups/worker/transport.ts'
import { GroupWorker } from '../../src/groups/worker.ts'
import type { Deadline } from '../../src/primitives/abort.ts'
import { Watch } from '../../src/primitives/watch.ts'
import type { Logger } from '../../src/transport/context.ts'
import { FAST_CONSENSUS } from './consensus.ts'
import { History, type Model } from './linearizability.ts'
import { checkListInOrder } from './list-order.ts'
import { type Prng, Simulation } from './sim-network.ts'

// ---------------------------------------------------------------------------------------------------
// The state machine: a list of the values written, queried for [length, last]

export type ListCommand = { v: number }
export type ListResult = [number, number | null]

/** Appends each written value; the query answers how many were written and the last one. */
export class ListMachine implements StateMachine<ListCommand, 'value', ListResult> {
  readonly signature = 'group-sim/list/v1'
  values: number[] = []
  readonly #onApply: (values: readonly number[], ctx: ApplyContext) => void
  readonly #onRestore: (before: readonly number[], after: readonly number[]) => void

  constructor(
    onApply: (values: readonly number[], ctx: ApplyContext) => void = () => {},
    onRestore: (before: readonly number[], after: readonly number[]) => void = () => {},
  ) {
    this.#onApply = onApply
    this.#onRestore = onRestore
  }

  apply(command: ListCommand, ctx: ApplyContext): void {
    this.values.push(command.v)
    this.#onApply(this.values, ctx)
  }

  query(): ListResult {
    return [this.values.length, this.values.at(-1) ?? null]
  }

  snapshot(): Uint8Array {
    return encodeCanonical(this.values)
  }

  restore(snapshot: Uint8Array): void {
    const after = snapshot.length === 0 ? [] : (decodeCanonical(snapshot) as number[])
    this.#onRestore(this.values, after)
    this.values = [...after]
  }
}

export type ListInput = { kind: 'write'; value: number } | { kind: 'read' }
export type ListOutput = ListResult | null

/** The sequential model of ListMachine: writes append, reads see [length, last]. */
export const listModel: Model<{ n: number; last: number | null }, ListInput, ListOutput> = {
  init: () => ({ n: 0, last: null }),
  step: (state, input) =>
    input.kind === 'write'
      ? { ok: true, state: { n: state.n + 1, last: input.value }, output: null }
      : { ok: true, state, output: [state.n, state.last] },
  hash: (s) => `${s.n}:${s.last}`,
  equal: (a, b) => a.n === b.n && a.last === b.last,
}

// ---------------------------------------------------------------------------------------------------
// Virtual runtime

/** A node's clock, timers and randomness on the simulation; dead once its process crashed. */
export class SimRuntime implements Runtime {
  readonly #sim: Simulation
  readonly #prng: Prng
  readonly #rate: number
  readonly #bornAt: number
  #floor = 0
  #dead = false

  constructor(sim: Simulation, prng: Prng, rate: number) {
    this.#sim = sim
    this.#prng = prng
    this.#rate = rate
    this.#bornAt = sim.now
  }

  now(): number {
    // A fresh process's monotonic clock starts near zero, and may run fast or slow; never below the
    // deadline of a timer that fired (floating point must not make a timer fire "early").
    return Math.max(this.#floor, (this.#sim.now - this.#bornAt) * this.#rate)
  }

  setTimeout(fn: () => void, ms: number): () => void {
    let live = true
    // As Node's timers: a delay below 1 ms is 1 ms.
    const delay = Math.max(1, ms || 1)
    const deadline = this.now() + delay
    this.#sim.after(delay / this.#rate, () => {
      if (!live || this.#dead) return
      this.#floor = Math.max(this.#floor, deadline)
      fn()
    })
    return () => {
      live = false
    }
  }

  macrotask(fn: () => void): void {
    this.#sim.after(0, () => {
      if (!this.#dead) fn()
    })
  }

  timeout(ms: number): Deadline {
    const controller = new AbortController()
    let live = true
    this.#sim.after(Math.max(0, ms) / this.#rate, () => {
      if (live && !this.#dead) controller.abort(new DOMException('The operation timed out.', 'TimeoutError'))
    })
    return {
      signal: controller.signal,
      clear: () => {
        live = false
      },
    }
  }

  /** An arrow, not a method: the worker hands it to the core unbound. */
  readonly random = (): number => this.#prng.next()

  kill(): void {
    this.#dead = true
  }
}

// ---------------------------------------------------------------------------------------------------
// Disks

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
class DiskHandle implements LogStore {
  readonly durable = true
  readonly #disk: SimDisk
  readonly #sim: Simulation
  readonly #prng: Prng
  /** What this incarnation reads: the disk as loaded, with every mutation since applied at call time. */
  #view: MemoryLogStore | undefined
  /** Mutations applied to the view and not yet to the disk, oldest first. */
  readonly #inFlight: { apply: DiskOp; durable: () => void; failed: (err: Error) => void }[] = []
  #open = true
  /** Set once the disk failed a write (see failWrites): every mutation since is refused with it. */
  #failed: StorageError | undefined
  /** Mutations that failed because the disk had failed: in flight when it did, or refused since. */
  failedWrites = 0

  constructor(disk: SimDisk, sim: Simulation, prng: Prng) {
    this.#disk = disk
    this.#sim = sim
    this.#prng = prng
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
    this.#sim.after(this.#prng.between(0.5, 10), () => {
      if (!this.#open) return
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

// ---------------------------------------------------------------------------------------------------
// Network, bonds and discovery

export interface NetConditions {
  minDelayMs: number
  maxDelayMs: number
  /** Probability that a Raft frame is lost on a live bond. */
  dropRate: number
  /** Probability that a Raft frame arrives twice. */
  duplicateRate: number
  /** Frames on one bond arrive in the order sent (as on a real stream); otherwise each has its own delay. */
  ordered: boolean
}

const DEFAULT_NET: NetConditions = {
  minDelayMs: 1,
  maxDelayMs: 8,
  dropRate: 0,
  duplicateRate: 0,
  ordered: false,
}

interface Pair {
  a: string
  b: string
  /** The current (or last) bond's generation; frames of another generation are void. */
  gen: number
  up: boolean
  forming: boolean
  /** Since when a direction of this pair is cut while the bond is up. */
  cutSince: number | undefined
}

interface PendingRequest {
  peer: string
  resolve(value: unknown): void
  reject(err: Error): void
  cancel(): void
}

/** One incarnation's transport: the bonds it sees, and requests matched with responses by id. */
export class SimTransport implements GroupTransport {
  readonly bonds = new Watch<ReadonlyMap<string, BondView>>(new Map(), () => false)
  readonly id: string
  readonly #sim: GroupSim
  readonly #rt: SimRuntime
  #handlers: TransportHandlers | undefined
  readonly #pending = new Map<number, PendingRequest>()
  #nextId = 1
  #lastPending: boolean | undefined
  closed = false
  dead = false

  constructor(sim: GroupSim, id: string, rt: SimRuntime) {
    this.#sim = sim
    this.id = id
    this.#rt = rt
  }

  get live(): boolean {
    return !this.closed && !this.dead && this.#handlers !== undefined
  }

  formationPending(): boolean {
    return this.#sim.formationPending(this.id)
  }

  send(peer: string, kind: number, body: unknown): boolean {
    const view = this.bonds.value.get(peer)
    if (!view || !this.live) return false
    this.#sim.transmit(this.id, peer, Number(view.id), kind, body)
    return true
  }

  request(peer: string, kind: number, body: unknown, timeoutMs: number): Promise<unknown> {
    const view = this.bonds.value.get(peer)
    if (!view || !this.live) return Promise.reject(new BondRequestError(`not bonded with ${peer}`, false))
    const id = this.#nextId++
    const { promise, resolve, reject } = Promise.withResolvers<unknown>()
    const cancel = this.#rt.setTimeout(() => {
      if (!this.#pending.delete(id)) return
      reject(new BondRequestError(`request to ${peer} timed out after ${timeoutMs} ms`, true))
    }, timeoutMs)
    this.#pending.set(id, { peer, resolve, reject, cancel })
    this.#sim.transmit(this.id, peer, Number(view.id), BondMsg.Request, [id, kind, body])
    return promise
  }

  start(handlers: TransportHandlers): void {
    this.#handlers = handlers
    this.#sim.transportStarted(this)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.#failPending(() => true)
    this.bonds.set(new Map())
    this.bonds.close()
    this.#sim.transportClosed(this)
  }

  /** The process crashed: nothing more happens here, not even rejections. */
  kill(): void {
    this.dead = true
    for (const p of this.#pending.values()) p.cancel()
    this.#pending.clear()
  }

  // Called by the simulation.

  setView(peer: string, gen: number | undefined): void {
    if (!this.live) return
    const current = this.bonds.value.get(peer)
    if (gen === undefined ? current === undefined : current?.id === String(gen)) return
    const views = new Map(this.bonds.value)
    if (gen === undefined) {
      views.delete(peer)
      this.#failPending((p) => p.peer === peer)
    } else {
      // The bond handshake carries each side's preference (see mesh.ts).
      const observer = this.#sim.member(peer).preference === 'observer'
      views.set(peer, { peer, id: String(gen), observer })
    }
    this.bonds.set(views)
    this.#lastPending = this.formationPending()
    this.#handlers!.membersChanged()
  }

  viewGen(peer: string): number | undefined {
    const v = this.bonds.value.get(peer)
    return v === undefined ? undefined : Number(v.id)
  }

  refreshPending(): void {
    if (!this.live) return
    const pending = this.formationPending()
    if (pending === this.#lastPending) return
    this.#lastPending = pending
    this.#handlers!.membersChanged()
  }

  receive(peer: string, kind: number, body: unknown): void {
    if (!this.live) return
    const handlers = this.#handlers!
    switch (kind) {
      case BondMsg.Request: {
        const [id, reqKind, reqBody] = body as [number, number, unknown]
        handlers.request(peer, reqKind, reqBody).then(
          (result) => this.#respond(peer, id, true, result),
          (err: Error) => this.#respond(peer, id, false, err.message),
        )
        return
      }
      case BondMsg.Response: {
        const [id, ok, value] = body as [number, boolean, unknown]
        const pending = this.#pending.get(id)
        if (!pending || pending.peer !== peer) return
        this.#pending.delete(id)
        pending.cancel()
        if (ok) pending.resolve(value)
        else pending.reject(new RequestRefusedError(typeof value === 'string' ? value : 'request refused'))
        return
      }
      default:
        handlers.message(peer, kind, body)
    }
  }

  #respond(peer: string, id: number, ok: boolean, body: unknown): void {
    const view = this.bonds.value.get(peer)
    if (!view || !this.live) return
    this.#sim.transmit(this.id, peer, Number(view.id), BondMsg.Response, [id, ok, body])
  }

  #failPending(which: (p: PendingRequest) => boolean): void {
    for (const [id, p] of this.#pending) {
      if (!which(p)) continue
      this.#pending.delete(id)
      p.cancel()
      p.reject(new BondRequestError(`bond with ${p.peer} closed`, true))
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The simulation

export interface ClientOptions {
  /** Pause between two calls of one client (ms of simulated time). */
  thinkMs: readonly [number, number]
  /** Share of writes among the calls. */
  writeRatio: number
  /** Clients calling through each member at once (default 1). */
  perMember?: number
}

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

export interface SimMember {
  readonly id: string
  readonly disk: SimDisk
  readonly prng: Prng
  readonly rate: number
  /** How it takes part in elections (collection readers are observers). */
  preference: Preference
  incarnation: number
  alive: boolean
  everStarted: boolean
  worker: GroupWorker<ListCommand, 'value', ListResult> | undefined
  machine: ListMachine | undefined
  runtime: SimRuntime | undefined
  transport: SimTransport | undefined
  handle: DiskHandle | undefined
  knows: Set<string>
  /** Resolves when the current incarnation crashes. */
  crashed: Promise<'crashed'>
  crash: () => void
}

interface OpRecord {
  client: string
  input: ListInput
  callAt: number
  returnAt?: number
  outcome: 'pending' | 'ok' | 'fail' | 'unknown'
  output?: ListOutput
  error?: string
}

export class GroupSim {
  readonly sim: Simulation
  readonly options: GroupSimOptions
  readonly config: ReturnType<typeof consensusConfig>
  readonly net: NetConditions
  readonly members = new Map<string, SimMember>()
  readonly history = new History<ListInput, ListOutput>()
  readonly ops: OpRecord[] = []
  readonly problems: string[] = []
  readonly notes: string[] = []
  readonly traceLines: string[] = []
  /** Values whose write was acknowledged / certainly failed / of unknown outcome. */
  readonly acked = new Set<number>()
  readonly failed = new Set<number>()
  readonly unknown = new Set<number>()
  /** What a scenario's script saw happen, for its check that the faults reached the path it tests. */
  readonly observed = new Set<string>()
  /** Catch-up counters of the incarnations that crashed (see {@link GroupSim.catchUpStats}). */
  readonly #retired = { entriesPulled: 0, snapshotsInstalled: 0 }
  readonly #groupId = Digest.fromParts('group-sim')
  readonly #netPrng: Prng
  readonly #clientPrng: Prng
  readonly #topoPrng: Prng
  readonly #pairs = new Map<string, Pair>()
  /** Directed links that drop everything, as "from>to". */
  readonly #blocked = new Set<string>()
  readonly #lastDelivery = new Map<string, number>()
  #discoverySplit: Map<string, number> | undefined
  #genCounter = 0
  #nextValue = 0
  #clientsRunning = true
  /** Per list position, the value every node must apply there (one canonical history). */
  readonly #canonical: number[] = []
  #hash = 0x811c9dc5
  readonly #sweep: () => void
  events = 0
  frames = 0

  constructor(options: GroupSimOptions) {
    this.options = options
    this.sim = new Simulation(options.seed)
    this.config = consensusConfig({ ...SIM_CONSENSUS, ...options.consensus })
    this.net = { ...DEFAULT_NET, ...options.network }
    this.#netPrng = this.sim.prng.fork()
    this.#clientPrng = this.sim.prng.fork()
    this.#topoPrng = this.sim.prng.fork()
    const skew = options.clockSkew ?? 0
    for (let i = 1; i <= options.nodes; i++) {
      const id = `n${i}`
      const prng = this.sim.prng.fork()
      const rate = skew > 0 ? Math.exp(prng.between(-Math.log1p(skew), Math.log1p(skew))) : 1
      const member: SimMember = {
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
      this.members.set(id, member)
    }
    const ids = [...this.members.keys()]
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) {
        this.#pairs.set(`${ids[i]}|${ids[j]}`, {
          a: ids[i]!,
          b: ids[j]!,
          gen: 0,
          up: false,
          forming: false,
          cutSince: undefined,
        })
      }
    }
    this.#sweep = () => {
      for (const pair of this.#pairs.values()) this.#checkPair(pair)
      this.sim.after(this.config.bondHeartbeatMs, this.#sweep)
    }
    this.sim.after(this.config.bondHeartbeatMs, this.#sweep)
  }

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
    const transport = new SimTransport(this, id, runtime)
    const handle = new DiskHandle(m.disk, this.sim, m.prng.fork())
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
          void this.#client(m, incarnation, worker)
      },
      (err: Error) => {
        if (m.incarnation === incarnation) this.problems.push(`${id} failed to start: ${err.stack}`)
      },
    )
    // Discovery: this node learns of the others, and they of it, some time from now.
    for (const other of this.members.values()) {
      if (other === m || !other.alive) continue
      this.#scheduleLearn(m, other)
      this.#scheduleLearn(other, m)
    }
    this.#refreshAll()
  }

  /** Traces the member's changes of cluster and role (what the trace of frames does not show). */
  #watchRole(m: SimMember, incarnation: number, worker: GroupWorker<ListCommand, 'value', ListResult>): void {
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
    const reset = this.#topoPrng.chance(0.5)
    for (const pair of this.#pairs.values()) {
      if ((pair.a === id || pair.b === id) && pair.up) this.#break(pair, reset ? 'reset' : 'timeout')
    }
    this.#refreshAll()
  }

  /** A member's disk starts failing writes (see DiskHandle.failWrites) until its process restarts. */
  failDisk(id: string): void {
    const m = this.member(id)
    if (!m.handle) return
    this.#trace(`disk fails ${id}#${m.incarnation}`)
    m.handle.failWrites()
  }

  restart(id: string): void {
    this.crash(id)
    this.start(id)
  }

  // ================================================================================================
  // Faults

  /** Splits the members into groups that cannot reach each other (unlisted members form one more). */
  partition(...groups: string[][]): void {
    this.#trace(`partition ${groups.map((g) => g.join(',')).join(' | ')}`)
    const groupOf = new Map<string, number>()
    groups.forEach((g, i) => {
      for (const id of g) groupOf.set(id, i + 1)
    })
    for (const a of this.ids) {
      for (const b of this.ids) {
        if (a !== b && (groupOf.get(a) ?? 0) !== (groupOf.get(b) ?? 0)) this.#blocked.add(`${a}>${b}`)
      }
    }
    this.#topologyChanged()
  }

  /** Frames from `from` to `to` are lost (the other direction still works). */
  oneWay(from: string, to: string): void {
    this.#trace(`block ${from}>${to}`)
    this.#blocked.add(`${from}>${to}`)
    this.#topologyChanged()
  }

  heal(): void {
    this.#trace('heal')
    this.#blocked.clear()
    this.#topologyChanged()
  }

  /** Members in different groups cannot learn of each other (until `joinDiscovery`). */
  splitDiscovery(...groups: string[][]): void {
    this.#discoverySplit = new Map()
    groups.forEach((g, i) => {
      for (const id of g) this.#discoverySplit!.set(id, i)
    })
    this.#refreshAll()
  }

  joinDiscovery(): void {
    this.#trace('join discovery')
    this.#discoverySplit = undefined
    for (const a of this.members.values()) {
      for (const b of this.members.values()) {
        if (a !== b && a.alive && b.alive && !a.knows.has(b.id)) this.#scheduleLearn(a, b)
      }
    }
    this.#refreshAll()
  }

  connected(a: string, b: string): boolean {
    return !this.#blocked.has(`${a}>${b}`) && !this.#blocked.has(`${b}>${a}`)
  }

  // ================================================================================================
  // Clients

  stopClients(): void {
    this.#clientsRunning = false
  }

  /** Whether any client call is still waiting for its outcome. */
  clientsBusy(): boolean {
    return this.ops.some((o) => o.outcome === 'pending')
  }

  async #client(
    m: SimMember,
    incarnation: number,
    worker: GroupWorker<ListCommand, 'value', ListResult>,
  ): Promise<void> {
    const prng = this.#clientPrng
    const think = this.options.clients?.thinkMs ?? [1, 30]
    const writeRatio = this.options.clients?.writeRatio ?? 0.6
    while (this.#clientsRunning && m.incarnation === incarnation && !worker.halted && !worker.closed) {
      await this.sleep(prng.between(think[0], think[1]))
      if (!this.#clientsRunning || m.incarnation !== incarnation || worker.halted) return
      if (prng.chance(writeRatio)) await this.write(m, worker)
      else await this.read(m, worker)
    }
  }

  /** One write through `worker`, recorded in the history. True when acknowledged. */
  async write(m: SimMember, worker: GroupWorker<ListCommand, 'value', ListResult>): Promise<boolean> {
    const value = ++this.#nextValue
    const input: ListInput = { kind: 'write', value }
    const { id, rec } = this.#invoke(m.id, input)
    const outcome = await Promise.race([
      worker.execute([{ v: value }]).then(
        () => ({ ok: true as const }),
        (err: Error) => ({ ok: false as const, err }),
      ),
      m.crashed.then(() => undefined),
    ])
    rec.returnAt = this.now
    if (outcome === undefined) {
      rec.outcome = 'unknown'
      rec.error = 'crashed'
      this.history.unknown(id)
      this.unknown.add(value)
    } else if (outcome.ok) {
      rec.outcome = 'ok'
      rec.output = null
      this.history.ok(id, null)
      this.acked.add(value)
    } else if (['OFFLINE', 'GROUP_BUSY'].includes((outcome.err as { code?: string }).code ?? '')) {
      // Both promise that nothing was appended: the write must never take effect.
      if ((outcome.err as { code?: string }).code === 'GROUP_BUSY') this.observed.add('busy')
      rec.outcome = 'fail'
      rec.error = outcome.err.message
      this.history.fail(id)
      this.failed.add(value)
    } else {
      rec.outcome = 'unknown'
      rec.error = `${(outcome.err as { code?: string }).code}: ${outcome.err.message}`
      this.history.unknown(id)
      this.unknown.add(value)
    }
    this.#mix(`w${m.id}${value}${rec.outcome}`)
    return rec.outcome === 'ok'
  }

  /** One strong read through `worker`, recorded in the history; its result when it succeeded. */
  async read(
    m: SimMember,
    worker: GroupWorker<ListCommand, 'value', ListResult>,
  ): Promise<ListResult | undefined> {
    const { id, rec } = this.#invoke(m.id, { kind: 'read' })
    const outcome = await Promise.race([
      worker.query('value', 'strong').then(
        (r) => ({ ok: true as const, result: r.result }),
        (err: Error) => ({ ok: false as const, err }),
      ),
      m.crashed.then(() => undefined),
    ])
    rec.returnAt = this.now
    // A read has no effect: a failed one is left out.
    if (outcome === undefined || !outcome.ok) {
      rec.outcome = 'fail'
      rec.error = outcome === undefined ? 'crashed' : outcome.err.message
      this.history.fail(id)
      this.#mix(`r${m.id}fail`)
      return undefined
    }
    rec.outcome = 'ok'
    rec.output = outcome.result
    this.history.ok(id, outcome.result)
    this.#mix(`r${m.id}${outcome.result[0]}:${outcome.result[1]}`)
    return outcome.result
  }

  #invoke(client: string, input: ListInput): { id: number; rec: OpRecord } {
    const id = this.history.invoke(client, input)
    const rec: OpRecord = { client, input, callAt: this.now, outcome: 'pending' }
    this.ops.push(rec)
    return { id, rec }
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.sim.after(ms, resolve))
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
  // Network internals

  /** Sends a frame on the bond of generation `gen` from `from` to `to`. */
  transmit(from: string, to: string, gen: number, kind: number, body: unknown): void {
    const bytes = encodeCanonical([kind, body])
    this.frames++
    const prng = this.#netPrng
    const c = this.net
    // Bonds are reliable streams: only Raft frames, which Raft must tolerate losing or receiving
    // twice, are dropped or duplicated on a live bond; requests, responses and offers are lost only
    // with the bond (or a cut direction).
    const raft = kind === BondMsg.Raft
    if (this.#blocked.has(`${from}>${to}`) || (raft && prng.chance(c.dropRate))) return
    const copies = raft && prng.chance(c.duplicateRate) ? 2 : 1
    const pair = this.#pair(from, to)
    for (let i = 0; i < copies; i++) {
      let at = this.now + prng.between(c.minDelayMs, c.maxDelayMs)
      if (c.ordered) {
        const link = `${from}>${to}`
        at = Math.max(at, this.#lastDelivery.get(link) ?? 0)
        this.#lastDelivery.set(link, at)
      }
      this.sim.at(at, () => {
        if (!pair.up || pair.gen !== gen || this.#blocked.has(`${from}>${to}`)) return
        const receiver = this.members.get(to)?.transport
        if (!receiver || receiver.viewGen(from) !== gen) return
        this.#mix(`f${from}${to}${kind}${bytes.length}`)
        const [k, b] = decodeCanonical(bytes) as [number, unknown]
        if (this.options.trace)
          this.traceLines.push(`${this.now.toFixed(3)} ${from}>${to} ${describeFrame(k, b)}`)
        try {
          receiver.receive(from, k, b)
        } catch (err) {
          this.problems.push(`${to} threw on a frame of kind ${k} from ${from}: ${(err as Error).stack}`)
        }
      })
    }
  }

  /**
   * The production rule (BondMesh.formationPending) on the simulated catalog: a member that ever
   * started stays in the catalog after a crash (discovery purges it only after minutes, longer than
   * any run), so a fresh member holds while one it could learn of is not bonded, alive or not.
   */
  formationPending(id: string): boolean {
    const m = this.member(id)
    const view = m.transport?.bonds.value
    for (const other of this.members.values()) {
      if (other === m || !other.everStarted) continue
      if (!m.knows.has(other.id)) {
        if (this.#discoverable(m.id, other.id)) return true
      } else if (!view?.has(other.id)) return true
    }
    return false
  }

  transportStarted(_t: SimTransport): void {
    this.#refreshAll()
    for (const pair of this.#pairs.values()) this.#tryForm(pair)
  }

  transportClosed(t: SimTransport): void {
    // A departing member says so on every bond: the others see the bonds close at once.
    for (const pair of this.#pairs.values()) {
      if ((pair.a === t.id || pair.b === t.id) && pair.up) this.#break(pair, 'reset')
    }
    this.#refreshAll()
  }

  #discoverable(a: string, b: string): boolean {
    const split = this.#discoverySplit
    return split === undefined || split.get(a) === split.get(b)
  }

  #scheduleLearn(m: SimMember, of: SimMember): void {
    const [lo, hi] = this.options.discoveryMs ?? [0, 200]
    const incarnation = m.incarnation
    this.sim.after(this.#topoPrng.between(lo, hi), () => {
      if (m.incarnation !== incarnation || !of.alive || !this.#discoverable(m.id, of.id)) return
      this.#learn(m, of.id)
    })
  }

  #learn(m: SimMember, of: string): void {
    if (!m.alive || m.knows.has(of) || m.id === of) return
    m.knows.add(of)
    this.#trace(`${m.id} learns ${of}`)
    m.transport?.refreshPending()
    this.#tryForm(this.#pair(m.id, of))
  }

  #pair(a: string, b: string): Pair {
    return this.#pairs.get(a < b ? `${a}|${b}` : `${b}|${a}`)!
  }

  #bondable(pair: Pair): boolean {
    const a = this.member(pair.a)
    const b = this.member(pair.b)
    return (
      !!a.transport?.live &&
      !!b.transport?.live &&
      this.connected(pair.a, pair.b) &&
      (a.knows.has(b.id) || b.knows.has(a.id)) &&
      // A member still holding the last bond (it has not noticed it ended) refuses a new one.
      a.transport.viewGen(b.id) === undefined &&
      b.transport.viewGen(a.id) === undefined
    )
  }

  #tryForm(pair: Pair): void {
    if (pair.up || pair.forming || !this.#bondable(pair)) return
    pair.forming = true
    const a = this.member(pair.a)
    const b = this.member(pair.b)
    const incA = a.incarnation
    const incB = b.incarnation
    const [lo, hi] = this.options.dialMs ?? [2, 20]
    this.sim.after(this.#topoPrng.between(lo, hi), () => {
      pair.forming = false
      if (a.incarnation !== incA || b.incarnation !== incB || pair.up || !this.#bondable(pair)) return
      pair.up = true
      pair.gen = ++this.#genCounter
      pair.cutSince = undefined
      this.#trace(`bond ${pair.a}-${pair.b} #${pair.gen}`)
      a.knows.add(b.id)
      b.knows.add(a.id)
      a.transport!.setView(b.id, pair.gen)
      b.transport!.setView(a.id, pair.gen)
      // Each side tells its other bonded members about the new one (BondFormed).
      for (const [end, other] of [
        [a, b],
        [b, a],
      ] as const) {
        for (const peer of end.transport?.bonds.value.keys() ?? []) {
          if (peer === other.id) continue
          const p = this.member(peer)
          const inc = p.incarnation
          this.sim.after(this.#topoPrng.between(1, 10), () => {
            if (p.incarnation === inc) this.#learn(p, other.id)
          })
        }
      }
    })
  }

  /** The bond ends; each side notices after a reset (soon) or the keep-alive timeout. */
  #break(pair: Pair, how: 'reset' | 'timeout'): void {
    if (!pair.up) return
    pair.up = false
    pair.cutSince = undefined
    const gen = pair.gen
    this.#trace(`unbond ${pair.a}-${pair.b} #${gen} (${how})`)
    const keepAlive = this.config.bondHeartbeatMs * this.config.maxMissedHeartbeats
    for (const [end, peer] of [
      [pair.a, pair.b],
      [pair.b, pair.a],
    ] as const) {
      const m = this.member(end)
      const t = m.transport
      if (!t) continue
      const delay =
        how === 'reset'
          ? this.#topoPrng.between(1, 20)
          : keepAlive + this.#topoPrng.between(0, this.config.bondHeartbeatMs)
      this.sim.after(delay, () => {
        if (m.transport !== t || t.viewGen(peer) !== gen) return
        t.setView(peer, undefined)
        this.#refreshAll()
        this.#tryForm(pair)
      })
    }
  }

  #checkPair(pair: Pair): void {
    if (pair.up) {
      const a = this.member(pair.a)
      const b = this.member(pair.b)
      if (!a.transport?.live || !b.transport?.live) this.#break(pair, 'reset')
      else if (!this.connected(pair.a, pair.b)) {
        pair.cutSince ??= this.now
        const keepAlive = this.config.bondHeartbeatMs * this.config.maxMissedHeartbeats
        // Both sides were already deaf for the keep-alive timeout: they notice within a period.
        if (this.now - pair.cutSince >= keepAlive) this.#break(pair, 'reset')
      } else pair.cutSince = undefined
    } else this.#tryForm(pair)
  }

  #topologyChanged(): void {
    for (const pair of this.#pairs.values()) this.#checkPair(pair)
  }

  #refreshAll(): void {
    for (const m of this.members.values()) m.transport?.refreshPending()
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
    const seen = new Set<number>()
    for (const v of final) {
      if (seen.has(v)) this.problems.push(`value ${v} was applied twice`)
      seen.add(v)
      if (this.failed.has(v))
        this.problems.push(`value ${v} was applied though its write failed (OfflineError or GroupBusyError)`)
      if (!this.acked.has(v) && !this.unknown.has(v) && !this.failed.has(v) && !this.#pendingWrite(v))
        this.problems.push(`value ${v} was applied but never written`)
    }
    const kept = new Set<number>()
    for (const m of options.keptBy ?? []) for (const v of m.machine?.values ?? []) kept.add(v)
    const lost = [...this.acked].filter((v) => !seen.has(v) && !kept.has(v))
    if (lost.length > 0) {
      this.problems.push(
        `acknowledged writes lost: ${lost.slice(0, 20).join(', ')}${lost.length > 20 ? ', …' : ''}`,
      )
    }
    if (options.linearizable !== false) {
      // In the order every member applied (checked as they applied): exact, and linear in the history.
      const broken = checkListInOrder(this.history.operations(), final)
      if (broken !== undefined) this.problems.push(`history not linearizable: ${broken}`)
    }
  }

  #pendingWrite(v: number): boolean {
    return this.ops.some((o) => o.input.kind === 'write' && o.input.value === v)
  }
}

/** Resolves once every microtask queued so far, and every one those queue, has run. */
function settle(): Promise<void> {
  return new Promise((resolve) => process.nextTick(resolve))
}

const RAFT_TYPES = [
  'append',
  'appendResp',
  'hb',
  'hbResp',
  'vote',
  'voteResp',
  'snapshot',
  'hello',
  'concede',
]

function describeFrame(kind: number, body: unknown): string {
  const b = body as unknown[]
  switch (kind) {
    case BondMsg.Raft: {
      const type = RAFT_TYPES[b[0] as number]
      const rest = b.slice(3).map((x) => (Array.isArray(x) ? `[${x.length}]` : String(x)))
      return `raft ${type} t${b[1]} ${rest.join(' ')}`
    }
    case BondMsg.Request:
      return `request #${b[0]} kind ${b[1]}`
    case BondMsg.Response:
      return `response #${b[0]} ${b[1] ? `ok ${JSON.stringify(b[2])?.slice(0, 40)}` : `refused ${b[2]}`}`
    default:
      return `kind ${kind}`
  }
}

function format(formatter: string, args: unknown[]): string {
  let i = 0
  return formatter.replace(/%[sdoOj]/g, () => String(args[i++]))
}

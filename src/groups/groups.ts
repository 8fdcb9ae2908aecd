import type { Discovery } from '../discovery/discovery.ts'
import { deadline as deadlineOf, linkSignals, raceSignal } from '../primitives/abort.ts'
import { toHex } from '../primitives/bytes.ts'
import { Digest } from '../primitives/digest.ts'
import { abortReason, InvalidArgumentError } from '../primitives/errors.ts'
import type { Scope } from '../primitives/scope.ts'
import { type TicketValidator, validatorList } from '../tickets/ticket.ts'
import { CloseCode } from '../transport/close.ts'
import type { NetworkContext } from '../transport/context.ts'
import { InboundLimit } from '../transport/limits.ts'
import type { Link } from '../transport/link.ts'
import { type AcceptDecision, acceptBond, BOND_HANDSHAKE_FRAME } from './bond.ts'
import { type ConsensusOptions, consensusConfig, consensusDigest } from './config.ts'
import { Group } from './group.ts'
import { deriveGroupId, type GroupKey } from './key.ts'
import { DEFAULT_MAX_APPEND_BYTES } from './raft/state.ts'
import type { Preference } from './raft/types.ts'
import type { StateMachine } from './state-machine.ts'
import type { LogStore } from './storage/log-store.ts'
import { MemoryLogStore } from './storage/memory.ts'
import { CATCH_UP_BYTES } from './worker/catch-up.ts'
import { BondMesh } from './worker/mesh.ts'
import { systemRuntime } from './worker/runtime.ts'
import { GroupWorker } from './worker.ts'

/**
 * What groups use of their node: identity, links on the groups protocol, and where durable logs live.
 * Network builds it from its context and platform.
 */
export interface GroupsComponents
  extends Pick<
    NetworkContext,
    'networkId' | 'peerId' | 'clock' | 'scope' | 'log' | 'protocol' | 'openLink' | 'handle' | 'stableIdentity'
  > {
  /**
   * Opens (creating if needed) the durable log store `name`; undefined when group logs live in memory
   * (no `dataDir`, or a platform without durable storage).
   */
  readonly openLogStore: ((name: string) => Promise<LogStore>) | undefined
  /** False on a runtime whose members never vote (browsers): they join as observers. */
  readonly voting: boolean
  /** The largest frame this node's links carry: every command must fit one, with room to spare. */
  readonly maxFrameSize: number
}

/** What a frame holds beyond its command: the append or forward around it. */
const FRAME_HEADROOM = 64 * 1024
/**
 * Bond handshakes one peer may have in progress with this node at once; more get TooManyStreams. A
 * node bonds once per group it shares with a peer, and every collection is a group: room for many.
 */
export const BOND_HANDSHAKES_PER_PEER = 64
/** Bond handshakes all peers together may have in progress with this node at once. */
export const BOND_HANDSHAKES_TOTAL = 256
/**
 * Bond handshakes the peers of one remote host may have in progress with this node at once (loopback
 * is not counted): a quarter of the total, so one host minting identities cannot hold every slot.
 */
export const BOND_HANDSHAKES_PER_HOST = BOND_HANDSHAKES_TOTAL / 4

/** Options of the groups subsystem, node-wide. */
export interface GroupsOptions {
  /** How long an inbound bond may take to complete its handshake (default 2 s). */
  handshakeTimeoutMs?: number
}

// biome-ignore lint/suspicious/noExplicitAny: machines of any command, query and result types
type AnyMachine = StateMachine<any, any, any>

/** What `net.groups.join` takes. */
export interface JoinOptions<M extends AnyMachine> {
  /** The group's secret; with the consensus parameters and the machine's signature it names the group. */
  key: GroupKey
  /** The replicated state machine: applies committed commands and answers queries (see StateMachine). */
  stateMachine: M
  /** Where the log and hard state live: memory by default, a FileLogStore under `dataDir` on Node. */
  storage?: LogStore
  /** Raft timing and limits; the fields marked shared are part of the GroupId. */
  consensus?: ConsensusOptions
  /**
   * 'normal'; 'reluctant' (slower to stand for election); 'observer' (replicates, never votes). Default
   * 'normal', and 'observer' in a browser, where a voting preference is refused: hidden tabs throttle
   * their timers. An observer still executes commands (through the leader) and queries.
   */
  preference?: Preference
  /**
   * Ticket validators every member must satisfy (an array: all of them); part of the GroupId, in
   * order. A member without valid tickets is refused with NotAllowed (30403) at bond time, and a bond
   * is closed the same way when the peer's tickets expire or a new version of its entry fails them.
   */
  requireTicket?: TicketValidator | readonly TicketValidator[]
  /**
   * Abandons the join: it rejects with the signal's reason. The group's start (opening its store) goes
   * on for other joins of it under way, and is undone once none is left.
   */
  signal?: AbortSignal
}

/** A group being started, and how many joins wait for it. */
interface Joining {
  readonly started: Promise<JoinedGroup>
  waiters: number
}

/** A group this node has joined: one worker and bond mesh, shared by every handle to it. */
interface JoinedGroup {
  // biome-ignore lint/suspicious/noExplicitAny: machines of any types share the registry
  worker: GroupWorker<any, any, any>
  mesh: BondMesh
  handles: number
  scope: Scope
}

/**
 * Availability groups: every group is a full mesh of authenticated bonds between its members running
 * mosaik's Raft, made safe (see DESIGN.md). `join` returns a handle to a replicated state machine.
 */
export class Groups {
  readonly #ctx: GroupsComponents
  readonly #discovery: Discovery
  readonly #options: Required<GroupsOptions>
  readonly #groups = new Map<string, JoinedGroup>()
  readonly #joining = new Map<string, Joining>()
  readonly #following = new AbortController()
  readonly #handshakes = new InboundLimit({
    perPeer: BOND_HANDSHAKES_PER_PEER,
    perHost: BOND_HANDSHAKES_PER_HOST,
    total: BOND_HANDSHAKES_TOTAL,
  })

  private constructor(ctx: GroupsComponents, discovery: Discovery, options: GroupsOptions) {
    this.#ctx = ctx
    this.#discovery = discovery
    this.#options = { handshakeTimeoutMs: options.handshakeTimeoutMs ?? 2000 }
  }

  /** Starts the subsystem for a network node; called by Network.create. */
  static async start(
    ctx: GroupsComponents,
    discovery: Discovery,
    options: GroupsOptions = {},
  ): Promise<Groups> {
    const groups = new Groups(ctx, discovery, options)
    await ctx.handle(ctx.protocol('groups/1'), (link) => groups.#accept(link), {
      maxInboundStreams: 1024,
      // Raised by acceptBond once the initiator has proven the secret.
      link: { maxFrameSize: BOND_HANDSHAKE_FRAME },
    })
    // Every catalog change may show a member to bond with, or change a member's ticket.
    void discovery.followCatalog(
      () => {
        for (const { mesh } of groups.#groups.values()) mesh.reconcileBonds()
      },
      { signal: groups.#following.signal },
    )
    return groups
  }

  /**
   * Joins a group (or returns another handle to one this node has joined). Resolves once the worker
   * runs; await `group.when.online()` before writing.
   */
  async join<M extends AnyMachine>(options: JoinOptions<M>): Promise<Group<M>> {
    if (!options.key) throw new InvalidArgumentError('join needs a `key` (GroupKey)')
    if (!this.#ctx.voting && options.preference !== undefined && options.preference !== 'observer') {
      throw new InvalidArgumentError(
        `members on this runtime never vote (a hidden browser tab throttles its timers): join with preference 'observer', the default here, not '${options.preference}'`,
      )
    }
    const consensus = consensusConfig(options.consensus)
    // Appends and catch-up answers carry up to about this much: each must fit a frame.
    const messageBytes = Math.max(DEFAULT_MAX_APPEND_BYTES, CATCH_UP_BYTES)
    if (this.#ctx.maxFrameSize < messageBytes + FRAME_HEADROOM) {
      throw new InvalidArgumentError(
        `groups need maxFrameSize of at least ${messageBytes + FRAME_HEADROOM} bytes (it is ${this.#ctx.maxFrameSize}): ` +
          'their appends and catch-up answers carry up to 1 MiB of commands',
      )
    }
    if (consensus.maxCommandBytes > this.#ctx.maxFrameSize - FRAME_HEADROOM) {
      throw new InvalidArgumentError(
        `consensus.maxCommandBytes (${consensus.maxCommandBytes}) must leave ${FRAME_HEADROOM} bytes of a frame ` +
          `(maxFrameSize ${this.#ctx.maxFrameSize}) for the message around a command`,
      )
    }
    const validators = validatorList(options.requireTicket)
    const groupId = deriveGroupId(
      options.key,
      consensusDigest(consensus),
      Digest.from(options.stateMachine.signature),
      validators,
    )
    const hex = groupId.toString()
    if (options.signal?.aborted) throw abortReason(options.signal)
    let entry = this.#groups.get(hex)
    if (entry) entry.handles++
    else entry = await this.#joined(hex, options, () => this.#start(groupId, options, consensus, validators))
    const theEntry = entry
    return new Group<M>(entry.worker, async () => {
      if (--theEntry.handles === 0) await this.#leave(hex, theEntry)
    })
  }

  /**
   * Waits for the group `hex` to start, starting it if no other join is doing so, and takes a handle
   * of it. A join abandoned (its signal aborted) leaves the group once it started, unless another join
   * took a handle.
   */
  async #joined<M extends AnyMachine>(
    hex: string,
    options: JoinOptions<M>,
    start: () => Promise<JoinedGroup>,
  ): Promise<JoinedGroup> {
    let joining = this.#joining.get(hex)
    if (!joining) {
      const record: Joining = { started: start(), waiters: 0 }
      joining = record
      this.#joining.set(hex, record)
      const done = () => {
        if (this.#joining.get(hex) === record) this.#joining.delete(hex)
      }
      record.started.then(done, done)
    }
    const record = joining
    record.waiters++
    try {
      const entry = await raceSignal(record.started, options.signal)
      // In the same turn as the count below: an abandoned join's check sees one or the other.
      entry.handles++
      return entry
    } catch (err) {
      if (options.signal?.aborted) {
        // Whichever settles last, this check or a join that took the group, sees the other's count.
        record.started.then(
          (entry) => {
            if (record.waiters === 0 && entry.handles === 0) void this.#leave(hex, entry)
          },
          () => {},
        )
      }
      throw err
    } finally {
      record.waiters--
    }
  }

  async #start<M extends AnyMachine>(
    groupId: Digest,
    options: JoinOptions<M>,
    consensus: ReturnType<typeof consensusConfig>,
    validators: readonly TicketValidator[],
  ): Promise<JoinedGroup> {
    const store = options.storage ?? (await this.#openStore(groupId))
    const preference = options.preference ?? (this.#ctx.voting ? 'normal' : 'observer')
    if (!store.durable && this.#ctx.stableIdentity && preference !== 'observer') {
      // The same peer id back with an empty log and no record of its votes could vote twice in one
      // term or count as holding entries it lost: Raft's safety needs a voter's disk to survive it.
      await store.close()
      throw new InvalidArgumentError(
        'this node keeps its peer id across restarts (dataDir or privateKey), so a voting member needs a ' +
          'durable log store: pass a durable `storage`, or join as an observer',
      )
    }
    const scope = this.#ctx.scope.child()
    const mesh = new BondMesh({
      ctx: this.#ctx,
      discovery: this.#discovery,
      scope,
      clock: this.#ctx.clock,
      groupId,
      key: options.key,
      preference,
      config: consensus,
      validators,
    })
    const hex = groupId.toString()
    let worker: GroupWorker<unknown, unknown, unknown>
    try {
      worker = await GroupWorker.start({
        id: this.#ctx.peerId,
        groupId,
        stateMachine: options.stateMachine,
        store,
        consensus,
        preference,
        transport: mesh,
        runtime: systemRuntime(scope, this.#ctx.clock),
        log: this.#ctx.log(`group:${groupId.short()}`),
        // A halted member leaves the catalog's view of the group, so nobody waits to bond with it.
        onHalt: () => {
          this.#discovery.updateLocal((e) => ({ groups: e.groups.without([groupId]) })).catch(() => {})
        },
      })
    } catch (err) {
      // A store that cannot be read (CorruptLogError) or written: release what the join took, so
      // the operator can repair the store and join again in the same process.
      await mesh.close().catch(() => {})
      await scope.close().catch(() => {})
      await store.close().catch(() => {})
      throw err
    }
    const entry: JoinedGroup = { worker, mesh, handles: 0, scope }
    this.#groups.set(hex, entry)
    await this.#discovery.updateLocal((e) => ({ groups: e.groups.with([groupId]) }))
    mesh.reconcileBonds()
    return entry
  }

  async #openStore(groupId: Digest): Promise<LogStore> {
    if (this.#ctx.openLogStore) return this.#ctx.openLogStore(`group-${groupId.toString()}`)
    return new MemoryLogStore()
  }

  async #leave(hex: string, entry: JoinedGroup): Promise<void> {
    if (this.#groups.get(hex) !== entry) return
    this.#groups.delete(hex)
    await this.#discovery
      .updateLocal((e) => ({ groups: e.groups.without([entry.worker.groupId]) }))
      .catch(() => {})
    await entry.worker.close()
    await entry.scope.close()
  }

  /**
   * Inbound bonds: authenticated against the group's secret, then handed to its worker. Until the
   * initiator has proven the secret its frames may be BOND_HANDSHAKE_FRAME at most, and one peer may
   * have BOND_HANDSHAKES_PER_PEER handshakes in progress, one remote host BOND_HANDSHAKES_PER_HOST
   * (else TooManyStreams).
   */
  async #accept(link: Link): Promise<void> {
    const slot = this.#handshakes.enter(link.remotePeer, link.connection.remoteAddr)
    if (!slot.ok) {
      const from = slot.reached === 'host' ? ' from this host' : ' in progress'
      link.beginClose(CloseCode.TooManyStreams, `too many bond handshakes${from}`)
      return
    }
    const deadline = deadlineOf(this.#options.handshakeTimeoutMs, this.#ctx.scope)
    const linked = linkSignals(this.#ctx.scope.signal, deadline.signal)
    const signal = linked.signal
    const peer = link.remotePeer
    const decide = async (groupId: Uint8Array): Promise<AcceptDecision> => {
      const entry = this.#groups.get(toHex(groupId))
      if (!entry) return { ok: false, code: CloseCode.GroupNotFound, reason: 'no such group here' }
      const known = this.#discovery.catalog().getSigned(peer)
      if (!known) {
        return { ok: false, code: CloseCode.UnknownPeer, reason: 'unknown peer: sync catalogs first' }
      }
      const admitted = entry.mesh.admits(peer)
      if (!admitted.ok) return admitted
      const tickets = await entry.mesh.authorize(known.entry)
      return tickets.ok ? { ok: true, secrets: entry.mesh.secrets() } : tickets
    }
    try {
      const info = await acceptBond(link, this.#ctx.networkId, decide, signal, this.#ctx.maxFrameSize)
      const entry = this.#groups.get(info.secrets.groupId.toString())
      if (!entry) {
        link.beginClose(CloseCode.GroupNotFound, 'group closed')
        return
      }
      entry.mesh.adopt(link, info)
    } catch (err) {
      if (!link.isClosed) {
        link.beginClose(
          signal.aborted ? CloseCode.GroupTimeout : CloseCode.GroupInvalidHandshake,
          (err as Error).message,
        )
      }
    } finally {
      slot.release()
      linked.clear()
      deadline.clear()
    }
  }

  /** Leaves every group of this node. */
  async stop(): Promise<void> {
    this.#following.abort()
    await Promise.all([...this.#groups.entries()].map(([hex, e]) => this.#leave(hex, e)))
  }
}

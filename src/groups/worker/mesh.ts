import type { Discovery } from '../../discovery/discovery.ts'
import type { PeerEntry } from '../../discovery/entry.ts'
import { deadline as deadlineOf, linkSignals } from '../../primitives/abort.ts'
import { Backoff } from '../../primitives/backoff.ts'
import type { GroupId } from '../../primitives/digest.ts'
import { DecodeError } from '../../primitives/errors.ts'
import type { Scope } from '../../primitives/scope.ts'
import { type Clock, systemClock, systemTimers, type Timers } from '../../primitives/time.ts'
import { Watch } from '../../primitives/watch.ts'
import { TicketGate } from '../../tickets/gate.ts'
import type { TicketValidator } from '../../tickets/ticket.ts'
import { CloseCode, type LinkClose } from '../../transport/close.ts'
import type { Logger, NetworkContext } from '../../transport/context.ts'
import type { Link } from '../../transport/link.ts'
import {
  Bond,
  BondHandshakeError,
  type BondInfo,
  BondMsg,
  BondRequestError,
  type BondSecrets,
  initiateBond,
} from '../bond.ts'
import type { ConsensusConfig } from '../config.ts'
import type { GroupKey } from '../key.ts'
import type { Preference } from '../raft/types.ts'
import type { BondView, GroupTransport, TransportHandlers } from './transport.ts'

/** What a mesh uses of its node: identity and links on the groups protocol. */
type MeshContext = Pick<NetworkContext, 'networkId' | 'peerId' | 'log' | 'protocol' | 'openLink'>

export interface MeshInit {
  ctx: MeshContext
  discovery: Discovery
  scope: Scope
  groupId: GroupId
  key: GroupKey
  preference: Preference
  config: ConsensusConfig
  /** Ticket validators every member must satisfy (none: no ticket check). */
  validators?: readonly TicketValidator[]
  /** Liveness and backoff deadlines (default: the system's monotonic clock). */
  clock?: Clock
  /** Request timeouts on the bonds (default: the system's timers; the mesh's own run on `scope`). */
  timers?: Timers
}

/**
 * The production transport of a group: a full mesh of authenticated bonds with every member the
 * catalog shows. It dials members (with backoff), accepts their bonds (through Groups), keeps idle
 * bonds alive, closes silent ones, tells members about new bonds so the mesh forms transitively, and
 * matches requests with responses. Raft frames and snapshot offers go to the worker.
 */
export class BondMesh implements GroupTransport {
  readonly bonds: Watch<ReadonlyMap<string, BondView>>
  readonly #ctx: MeshContext
  readonly #discovery: Discovery
  readonly #scope: Scope
  readonly #clock: Clock
  readonly #timers: Timers
  readonly #groupId: GroupId
  readonly #key: GroupKey
  readonly #preference: Preference
  readonly #config: ConsensusConfig
  readonly #log: Logger
  readonly #protocol: string
  readonly #bonds = new Map<string, Bond>()
  readonly #dialing = new Set<string>()
  readonly #dialBackoff = new Map<string, { backoff: Backoff; until: number }>()
  /** Members' tickets: checked before bonding, and again on entry updates and at expiry. */
  readonly #tickets: TicketGate
  #handlers: TransportHandlers | undefined
  #pending: boolean | undefined
  #closed = false

  constructor(init: MeshInit) {
    this.#ctx = init.ctx
    this.#discovery = init.discovery
    this.#scope = init.scope
    this.#clock = init.clock ?? systemClock
    this.#timers = init.timers ?? systemTimers
    this.#groupId = init.groupId
    this.#key = init.key
    this.#preference = init.preference
    this.#config = init.config
    this.#log = init.ctx.log(`group:${init.groupId.short()}:mesh`)
    this.#protocol = init.ctx.protocol('groups/1')
    this.bonds = new Watch<ReadonlyMap<string, BondView>>(new Map(), () => false)
    this.#tickets = new TicketGate(init.validators ?? [], () => this.reconcileBonds(), this.#timers)
  }

  start(handlers: TransportHandlers): void {
    this.#handlers = handlers
    // No jitter (mosaik adds up to 150 ms): each member's period starts when it joins, and a ping goes
    // only to a bond that carried nothing for a whole period, so members do not ping in step.
    this.#scope.every(
      () => this.#config.bondHeartbeatMs,
      () => this.#keepAlive(),
    )
    // Formation waits for discovery's first sync; tell the worker when it is done.
    this.#discovery.bootstrapped
      .until((done) => done, { signal: this.#scope.signal })
      .then(() => this.reconcileBonds())
      .catch(() => {})
  }

  formationPending(): boolean {
    if (!this.#discovery.bootstrapped.value) return true
    for (const peer of this.#discovery.catalog().signedPeers()) {
      if (peer.id === this.#ctx.peerId || !peer.groups.has(this.#groupId) || this.#bonds.has(peer.id))
        continue
      // A member whose tickets fail will never bond: formation does not wait for it.
      if (this.#tickets.status(peer.entry) !== 'invalid') return true
    }
    return false
  }

  send(peer: string, kind: number, body: unknown): boolean {
    const bond = this.#bonds.get(peer)
    if (!bond || bond.closed) return false
    bond.send(kind, body, this.#clock.now())
    return true
  }

  backlog(peer: string): number {
    return this.#bonds.get(peer)?.link.queuedSendBytes ?? 0
  }

  request(peer: string, kind: number, body: unknown, timeoutMs: number): Promise<unknown> {
    const bond = this.#bonds.get(peer)
    if (!bond) return Promise.reject(new BondRequestError(`not bonded with ${peer}`, false))
    return bond.request(kind, body, timeoutMs, this.#clock.now())
  }

  /** Creates bonds with every member the catalog shows that we are not bonded with yet. */
  reconcileBonds(): void {
    if (this.#closed) return
    const now = this.#clock.now()
    const catalog = this.#discovery.catalog()
    // Forget the backoff of members that left the catalog, so churn does not grow memory.
    for (const id of this.#dialBackoff.keys()) if (!catalog.has(id)) this.#dialBackoff.delete(id)
    if (this.#tickets.required) this.#checkBondTickets(catalog)
    for (const peer of catalog.signedPeers()) {
      if (!peer.groups.has(this.#groupId) || this.#bonds.has(peer.id) || this.#dialing.has(peer.id)) continue
      // A pending ticket check calls reconcileBonds again when it is done.
      if (this.#tickets.status(peer.entry) !== 'valid') continue
      const wait = this.#dialBackoff.get(peer.id)
      if (wait && now < wait.until) continue
      this.#scope.spawn(this.#dial(peer.id))
    }
    this.#formationMayHaveChanged()
  }

  /** Whether `entry`'s tickets admit its peer to the group (NotAllowed 30403 when not). */
  async authorize(entry: PeerEntry): Promise<{ ok: true } | { ok: false; code: number; reason: string }> {
    const d = await this.#tickets.authorize(entry)
    return d.ok
      ? d
      : { ok: false, code: CloseCode.GroupNotAllowed, reason: `ticket refused: ${d.error.code}` }
  }

  /** Closes bonds whose peers' tickets expired or whose latest entries fail them. */
  #checkBondTickets(catalog: ReturnType<Discovery['catalog']>): void {
    for (const bond of this.#bonds.values()) {
      const entry = catalog.getSigned(bond.peer)?.entry ?? this.#discovery.signedEntry(bond.peer)?.entry
      if (!entry || this.#tickets.status(entry) !== 'invalid') continue
      this.#log('closing the bond with %s: its tickets no longer pass', bond.peer)
      bond.link.beginClose(CloseCode.GroupNotAllowed, 'tickets no longer valid')
    }
    this.#tickets.prune((id) => catalog.has(id) || this.#bonds.has(id))
  }

  secrets(): BondSecrets {
    return {
      networkId: this.#ctx.networkId,
      groupId: this.#groupId,
      secret: this.#key.secret,
      localId: this.#ctx.peerId,
      observer: this.#preference === 'observer',
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
      link.beginClose(CloseCode.GroupAlreadyBonded, 'already bonded')
      return
    }
    const bond = new Bond(link, info, this.#clock.now(), this.#timers)
    this.#bonds.set(info.peer, bond)
    this.#membersChanged()
    this.#scope.spawn(this.#readBond(bond))
    // Tell the other members, so the mesh forms transitively even before their catalogs show the peer.
    const entry = this.#discovery.signedEntry(info.peer)
    if (!entry) return
    const now = this.#clock.now()
    for (const other of this.#bonds.values()) {
      if (other !== bond) other.send(BondMsg.BondFormed, entry.toWire(), now)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#tickets.close()
    const now = this.#clock.now()
    for (const bond of this.#bonds.values()) bond.send(BondMsg.Departure, null, now)
    await Promise.all([...this.#bonds.values()].map((b) => b.close(CloseCode.GracefulShutdown, 'leaving')))
    this.#bonds.clear()
    this.bonds.close()
  }

  async #dial(peer: string): Promise<void> {
    this.#dialing.add(peer)
    let link: Link | undefined
    const deadline = deadlineOf(this.#config.handshakeTimeoutMs, this.#timers)
    const linked = linkSignals(this.#scope.signal, deadline.signal)
    try {
      const signal = linked.signal
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
          backoff: new Backoff(
            { initialMs: 200, maxIntervalMs: 5000, maxElapsedMs: Number.POSITIVE_INFINITY },
            () => this.#clock.now(),
          ),
          until: 0,
        }
        entry.until = this.#clock.now() + (entry.backoff.next() ?? 5000)
        this.#dialBackoff.set(peer, entry)
        this.#log('bond with %s failed: %s', peer, (err as Error).message)
      }
    } finally {
      linked.clear()
      deadline.clear()
      this.#dialing.delete(peer)
    }
    if (!this.#bonds.has(peer)) this.#scope.setTimeout(() => this.reconcileBonds(), 50)
  }

  async #readBond(bond: Bond): Promise<void> {
    try {
      while (true) {
        const frame = await bond.link.recv()
        bond.lastHeard = this.#clock.now()
        if (!Array.isArray(frame) || frame.length !== 2 || typeof frame[0] !== 'number') {
          throw new DecodeError('malformed bond frame')
        }
        this.#onFrame(bond, frame[0], frame[1])
      }
    } catch (err) {
      if (err instanceof DecodeError) bond.link.beginClose(CloseCode.ProtocolViolation, err.message)
      else if (!bond.closed) {
        this.#log('bond with %s failed: %s', bond.peer, (err as Error).message)
        bond.link.beginClose(CloseCode.ProtocolViolation, (err as Error).message)
      }
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

  #onFrame(bond: Bond, kind: number, body: unknown): void {
    const now = this.#clock.now()
    switch (kind) {
      case BondMsg.Ping:
        bond.send(BondMsg.Pong, null, now)
        return
      case BondMsg.Pong:
        return
      case BondMsg.Departure:
        bond.close(CloseCode.GracefulShutdown, 'peer departed').catch(() => {})
        return
      case BondMsg.BondFormed:
        this.#scope.spawn(this.#onBondFormed(bond.peer, body))
        return
      case BondMsg.Request: {
        if (!Array.isArray(body) || body.length !== 3 || typeof body[0] !== 'number') {
          throw new DecodeError('malformed request')
        }
        const [id, reqKind, reqBody] = body as [number, number, unknown]
        const handlers = this.#handlers
        if (!handlers) return
        handlers.request(bond.peer, reqKind, reqBody).then(
          (result) => bond.respond(id, result, this.#clock.now()),
          (err: unknown) => bond.refuse(id, err, this.#clock.now()),
        )
        return
      }
      case BondMsg.Response:
        bond.onResponse(body)
        return
      case BondMsg.Raft:
      case BondMsg.SnapshotOffer:
        this.#handlers?.message(bond.peer, kind, body)
        return
      default:
        throw new DecodeError(`unknown bond frame kind ${kind}`)
    }
  }

  async #onBondFormed(from: string, body: unknown): Promise<void> {
    // Every new bond is announced to every member, mostly with an entry the catalog already holds:
    // discovery checks the signature only for an entry that would change something, and counts a
    // malformed or forged one against the member that relayed it.
    const result = await this.#discovery.ingestRelayed(body, from)
    if (result.status === 'rejected') {
      this.#log('a bond announced by %s carries an entry refused: %s', from, result.reason)
      return
    }
    this.reconcileBonds()
  }

  #membersChanged(): void {
    const views = new Map<string, BondView>()
    for (const [peer, b] of this.#bonds) views.set(peer, { peer, id: b.id, observer: b.observer })
    this.bonds.set(views)
    this.#pending = this.formationPending()
    this.#handlers?.membersChanged()
  }

  #formationMayHaveChanged(): void {
    const pending = this.formationPending()
    if (pending === this.#pending) return
    this.#pending = pending
    this.#handlers?.membersChanged()
  }

  /** Pings idle bonds and closes those silent for too long. */
  #keepAlive(): void {
    const now = this.#clock.now()
    const deadline = this.#config.bondHeartbeatMs * this.#config.maxMissedHeartbeats
    for (const bond of this.#bonds.values()) {
      if (now - bond.lastHeard > deadline) {
        bond.link.beginClose(CloseCode.GroupTimeout, 'missed heartbeats')
        continue
      }
      if (now - bond.lastSent >= this.#config.bondHeartbeatMs) bond.send(BondMsg.Ping, null, now)
    }
    // Members we lost (or never reached) are retried here once their backoff has passed.
    this.reconcileBonds()
  }
}

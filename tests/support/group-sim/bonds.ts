/**
 * The simulated network between the group's members: which members know of each other (discovery),
 * the bonds between them and their generations, cuts (partitions, one-way links), and the frames on
 * each bond with their delays, drops and duplicates.
 *
 * It models what bonds do in production: a bond between two members is up while both are alive and
 * can reach each other; a cut closes it after the keep-alive timeout, a crash after a connection
 * reset or the same timeout; it forms again once both sides are back and one knows the other
 * (discovery, or gossip of a new bond).
 */

import { decodeCanonical, encodeCanonical } from '../../../platform/node/index.ts'
import { BondMsg } from '../../../src/groups/bond.ts'
import { decodeRaftMessage } from '../../../src/groups/wire.ts'
import type { Prng, Simulation } from '../sim-network.ts'
import type { SimMember } from './members.ts'
import type { BondNetwork, NetConditions, SimTransport } from './transport.ts'

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

export interface SimBondsInit {
  readonly sim: Simulation
  readonly members: ReadonlyMap<string, SimMember>
  readonly keepAlive: { bondHeartbeatMs: number; maxMissedHeartbeats: number }
  readonly net: NetConditions
  /** A member learns of each other member this long after both exist. */
  readonly discoveryMs: readonly [number, number]
  /** How long forming a bond takes. */
  readonly dialMs: readonly [number, number]
  /** Frames' drops, duplicates and delays. */
  readonly netPrng: Prng
  /** Discovery, dials and how bonds break. */
  readonly topoPrng: Prng
  /** Records an event in the run's hash and trace. */
  trace(line: string): void
  /** Mixes an event into the run's hash only. */
  mix(text: string): void
  /** A frame delivered, for the trace (only called when tracing). */
  traceFrame?(from: string, to: string, kind: number, body: unknown): void
  /** Every frame a member sends, when it sends it (delivered or not). */
  sent?(from: string, to: string, kind: number, body: unknown): void
  problem(text: string): void
}

export class SimBonds implements BondNetwork {
  /** Frames sent on any bond. */
  frames = 0
  readonly #init: SimBondsInit
  readonly #pairs = new Map<string, Pair>()
  /** Directed links that drop everything, as "from>to". */
  readonly #blocked = new Set<string>()
  readonly #lastDelivery = new Map<string, number>()
  /** Who led each term of each cluster, as the appends and heartbeats sent show (Raft's election safety). */
  readonly #leaders = new Map<string, string>()
  #discoverySplit: Map<string, number> | undefined
  #genCounter = 0

  constructor(init: SimBondsInit) {
    this.#init = init
    const ids = [...init.members.keys()]
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
    const sweep = () => {
      for (const pair of this.#pairs.values()) this.#checkPair(pair)
      init.sim.after(init.keepAlive.bondHeartbeatMs, sweep)
    }
    init.sim.after(init.keepAlive.bondHeartbeatMs, sweep)
  }

  get #now(): number {
    return this.#init.sim.now
  }

  #member(id: string): SimMember {
    const m = this.#init.members.get(id)
    if (!m) throw new Error(`no member ${id}`)
    return m
  }

  // ================================================================================================
  // Members coming and going

  /** A member started: it learns of the others, and they of it, some time from now. */
  memberStarted(m: SimMember): void {
    for (const other of this.#init.members.values()) {
      if (other === m || !other.alive) continue
      this.#scheduleLearn(m, other)
      this.#scheduleLearn(other, m)
    }
    this.#refreshAll()
  }

  /** A member's process died: its bonds end by reset or keep-alive timeout. */
  memberCrashed(id: string): void {
    const reset = this.#init.topoPrng.chance(0.5)
    for (const pair of this.#pairs.values()) {
      if ((pair.a === id || pair.b === id) && pair.up) this.#break(pair, reset ? 'reset' : 'timeout')
    }
    this.#refreshAll()
  }

  // ================================================================================================
  // Faults

  /** Splits the members into groups that cannot reach each other (unlisted members form one more). */
  partition(...groups: string[][]): void {
    this.#init.trace(`partition ${groups.map((g) => g.join(',')).join(' | ')}`)
    const groupOf = new Map<string, number>()
    groups.forEach((g, i) => {
      for (const id of g) groupOf.set(id, i + 1)
    })
    const ids = [...this.#init.members.keys()]
    for (const a of ids) {
      for (const b of ids) {
        if (a !== b && (groupOf.get(a) ?? 0) !== (groupOf.get(b) ?? 0)) this.#blocked.add(`${a}>${b}`)
      }
    }
    this.#topologyChanged()
  }

  /** Frames from `from` to `to` are lost (the other direction still works). */
  oneWay(from: string, to: string): void {
    this.#init.trace(`block ${from}>${to}`)
    this.#blocked.add(`${from}>${to}`)
    this.#topologyChanged()
  }

  heal(): void {
    this.#init.trace('heal')
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
    this.#init.trace('join discovery')
    this.#discoverySplit = undefined
    for (const a of this.#init.members.values()) {
      for (const b of this.#init.members.values()) {
        if (a !== b && a.alive && b.alive && !a.knows.has(b.id)) this.#scheduleLearn(a, b)
      }
    }
    this.#refreshAll()
  }

  connected(a: string, b: string): boolean {
    return !this.#blocked.has(`${a}>${b}`) && !this.#blocked.has(`${b}>${a}`)
  }

  // ================================================================================================
  // What the transports ask (BondNetwork)

  transmit(from: string, to: string, gen: number, kind: number, body: unknown): void {
    const bytes = encodeCanonical([kind, body])
    this.frames++
    const { netPrng: prng, net: c, sim } = this.#init
    // Bonds are reliable streams: only Raft frames, which Raft must tolerate losing or receiving
    // twice, are dropped or duplicated on a live bond; requests, responses and offers are lost only
    // with the bond (or a cut direction).
    const raft = kind === BondMsg.Raft
    if (raft) this.#checkOneLeader(from, to, body)
    this.#init.sent?.(from, to, kind, body)
    if (this.#blocked.has(`${from}>${to}`) || (raft && prng.chance(c.dropRate))) return
    const copies = raft && prng.chance(c.duplicateRate) ? 2 : 1
    const pair = this.#pair(from, to)
    for (let i = 0; i < copies; i++) {
      let at = this.#now + prng.between(c.minDelayMs, c.maxDelayMs)
      if (c.ordered) {
        const link = `${from}>${to}`
        at = Math.max(at, this.#lastDelivery.get(link) ?? 0)
        this.#lastDelivery.set(link, at)
      }
      sim.at(at, () => {
        if (!pair.up || pair.gen !== gen || this.#blocked.has(`${from}>${to}`)) return
        const receiver = this.#init.members.get(to)?.transport
        if (!receiver || receiver.viewGen(from) !== gen) return
        this.#init.mix(`f${from}${to}${kind}${bytes.length}`)
        const [k, b] = decodeCanonical(bytes) as [number, unknown]
        this.#init.traceFrame?.(from, to, k, b)
        try {
          receiver.receive(from, k, b)
        } catch (err) {
          this.#init.problem(`${to} threw on a frame of kind ${k} from ${from}: ${(err as Error).stack}`)
        }
      })
    }
  }

  /**
   * Only a leader sends appends and heartbeats, and a term has at most one leader in a cluster: a
   * member that voted twice in a term (a vote sent before it was durable, then lost in a crash) shows
   * here as a second sender, whether or not the two leaders ever commit.
   */
  #checkOneLeader(from: string, to: string, body: unknown): void {
    const m = decodeRaftMessage(body, from, to)
    if (m.type !== 'append' && m.type !== 'heartbeat') return
    const key = `${m.clusterId}/${m.term}`
    const leader = this.#leaders.get(key)
    if (leader === undefined) this.#leaders.set(key, from)
    else if (leader !== from)
      this.#init.problem(`two leaders in term ${m.term} of cluster ${m.clusterId}: ${leader} and ${from}`)
  }

  /**
   * The production rule (BondMesh.formationPending) on the simulated catalog: a member that ever
   * started stays in the catalog after a crash (discovery purges it only after minutes, longer than
   * any run), so a fresh member holds while one it could learn of is not bonded, alive or not.
   */
  formationPending(id: string): boolean {
    const m = this.#member(id)
    const view = m.transport?.bonds.value
    for (const other of this.#init.members.values()) {
      if (other === m || !other.everStarted) continue
      if (!m.knows.has(other.id)) {
        if (this.#discoverable(m.id, other.id)) return true
      } else if (!view?.has(other.id)) return true
    }
    return false
  }

  preferenceOf(id: string): string {
    return this.#member(id).preference
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

  // ================================================================================================
  // Discovery and bonds

  #discoverable(a: string, b: string): boolean {
    const split = this.#discoverySplit
    return split === undefined || split.get(a) === split.get(b)
  }

  #scheduleLearn(m: SimMember, of: SimMember): void {
    const [lo, hi] = this.#init.discoveryMs
    const incarnation = m.incarnation
    this.#init.sim.after(this.#init.topoPrng.between(lo, hi), () => {
      if (m.incarnation !== incarnation || !of.alive || !this.#discoverable(m.id, of.id)) return
      this.#learn(m, of.id)
    })
  }

  #learn(m: SimMember, of: string): void {
    if (!m.alive || m.knows.has(of) || m.id === of) return
    m.knows.add(of)
    this.#init.trace(`${m.id} learns ${of}`)
    m.transport?.refreshPending()
    this.#tryForm(this.#pair(m.id, of))
  }

  #pair(a: string, b: string): Pair {
    return this.#pairs.get(a < b ? `${a}|${b}` : `${b}|${a}`)!
  }

  #bondable(pair: Pair): boolean {
    const a = this.#member(pair.a)
    const b = this.#member(pair.b)
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
    const a = this.#member(pair.a)
    const b = this.#member(pair.b)
    const incA = a.incarnation
    const incB = b.incarnation
    const [lo, hi] = this.#init.dialMs
    const { sim, topoPrng } = this.#init
    sim.after(topoPrng.between(lo, hi), () => {
      pair.forming = false
      if (a.incarnation !== incA || b.incarnation !== incB || pair.up || !this.#bondable(pair)) return
      pair.up = true
      pair.gen = ++this.#genCounter
      pair.cutSince = undefined
      this.#init.trace(`bond ${pair.a}-${pair.b} #${pair.gen}`)
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
          const p = this.#member(peer)
          const inc = p.incarnation
          sim.after(topoPrng.between(1, 10), () => {
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
    this.#init.trace(`unbond ${pair.a}-${pair.b} #${gen} (${how})`)
    const { bondHeartbeatMs, maxMissedHeartbeats } = this.#init.keepAlive
    const keepAlive = bondHeartbeatMs * maxMissedHeartbeats
    for (const [end, peer] of [
      [pair.a, pair.b],
      [pair.b, pair.a],
    ] as const) {
      const m = this.#member(end)
      const t = m.transport
      if (!t) continue
      const delay =
        how === 'reset'
          ? this.#init.topoPrng.between(1, 20)
          : keepAlive + this.#init.topoPrng.between(0, bondHeartbeatMs)
      this.#init.sim.after(delay, () => {
        if (m.transport !== t || t.viewGen(peer) !== gen) return
        t.setView(peer, undefined)
        this.#refreshAll()
        this.#tryForm(pair)
      })
    }
  }

  #checkPair(pair: Pair): void {
    if (pair.up) {
      const a = this.#member(pair.a)
      const b = this.#member(pair.b)
      if (!a.transport?.live || !b.transport?.live) this.#break(pair, 'reset')
      else if (!this.connected(pair.a, pair.b)) {
        pair.cutSince ??= this.#now
        const { bondHeartbeatMs, maxMissedHeartbeats } = this.#init.keepAlive
        // Both sides were already deaf for the keep-alive timeout: they notice within a period.
        if (this.#now - pair.cutSince >= bondHeartbeatMs * maxMissedHeartbeats) this.#break(pair, 'reset')
      } else pair.cutSince = undefined
    } else this.#tryForm(pair)
  }

  #topologyChanged(): void {
    for (const pair of this.#pairs.values()) this.#checkPair(pair)
  }

  #refreshAll(): void {
    for (const m of this.#init.members.values()) m.transport?.refreshPending()
  }
}

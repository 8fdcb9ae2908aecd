import { BondMsg, BondRequestError, RequestRefusedError } from '../../../src/groups/bond.ts'
import type { BondView, GroupTransport, TransportHandlers } from '../../../src/groups/worker/transport.ts'
import { Watch } from '../../../src/primitives/watch.ts'
import type { SimRuntime } from './runtime.ts'

/** What a transport asks of the simulated network its bonds run on (see bonds.ts). */
export interface BondNetwork {
  /** Sends a frame on the bond of generation `gen` from `from` to `to`. */
  transmit(from: string, to: string, gen: number, kind: number, body: unknown): void
  /** Whether a fresh member `id` should hold off forming a group (BondMesh.formationPending). */
  formationPending(id: string): boolean
  /** How `id` takes part in elections, as its bond handshake tells. */
  preferenceOf(id: string): string
  transportStarted(t: SimTransport): void
  transportClosed(t: SimTransport): void
}

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

export const DEFAULT_NET: NetConditions = {
  minDelayMs: 1,
  maxDelayMs: 8,
  dropRate: 0,
  duplicateRate: 0,
  ordered: false,
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
  readonly #net: BondNetwork
  readonly #rt: SimRuntime
  #handlers: TransportHandlers | undefined
  readonly #pending = new Map<number, PendingRequest>()
  #nextId = 1
  #lastPending: boolean | undefined
  closed = false
  dead = false

  constructor(net: BondNetwork, id: string, rt: SimRuntime) {
    this.#net = net
    this.id = id
    this.#rt = rt
  }

  get live(): boolean {
    return !this.closed && !this.dead && this.#handlers !== undefined
  }

  formationPending(): boolean {
    return this.#net.formationPending(this.id)
  }

  send(peer: string, kind: number, body: unknown): boolean {
    const view = this.bonds.value.get(peer)
    if (!view || !this.live) return false
    this.#net.transmit(this.id, peer, Number(view.id), kind, body)
    return true
  }

  /** The simulated network delivers without credit: nothing waits to be sent. */
  backlog(_peer: string): number {
    return 0
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
    this.#net.transmit(this.id, peer, Number(view.id), BondMsg.Request, [id, kind, body])
    return promise
  }

  start(handlers: TransportHandlers): void {
    this.#handlers = handlers
    this.#net.transportStarted(this)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.#failPending(() => true)
    this.bonds.set(new Map())
    this.bonds.close()
    this.#net.transportClosed(this)
  }

  /** The process crashed: nothing more happens here, not even rejections. */
  kill(): void {
    this.dead = true
    for (const p of this.#pending.values()) p.cancel()
    this.#pending.clear()
  }

  // Called by the bond network.

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
      const observer = this.#net.preferenceOf(peer) === 'observer'
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
          (err: unknown) => this.#respond(peer, id, false, RequestRefusedError.wire(err)),
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
        else pending.reject(RequestRefusedError.parse(value))
        return
      }
      default:
        handlers.message(peer, kind, body)
    }
  }

  #respond(peer: string, id: number, ok: boolean, body: unknown): void {
    const view = this.bonds.value.get(peer)
    if (!view || !this.live) return
    this.#net.transmit(this.id, peer, Number(view.id), BondMsg.Response, [id, ok, body])
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

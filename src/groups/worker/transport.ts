import type { Watch } from '../../primitives/watch.ts'

/** A bonded member as the worker sees it. */
export interface BondView {
  peer: string
  /** Unique per bond; a member that reconnects gets a new one. */
  id: string
  observer: boolean
}

/** What the transport hands the worker. */
export interface TransportHandlers {
  /** A one-way frame from a bonded member (Raft messages, snapshot offers). */
  message(peer: string, kind: number, body: unknown): void
  /** A request from a bonded member; the promise's value (or error message) is the response. */
  request(peer: string, kind: number, body: unknown): Promise<unknown>
  /** The bonds changed, or whether formation is pending did. */
  membersChanged(): void
}

/**
 * How a group worker reaches the other members: authenticated bonds in production (`BondMesh`),
 * a seeded in-memory network in the simulation. The worker never sees links, catalogs or dials.
 */
export interface GroupTransport {
  /** The bonded members; changes whenever a bond forms or ends. */
  readonly bonds: Watch<ReadonlyMap<string, BondView>>
  /**
   * True while this node may not know every member of the group yet: discovery has not finished its
   * initial sync, or the catalog shows members it is not bonded with. A fresh node must not found a
   * cluster then, or a second history could be born next to an existing one.
   */
  formationPending(): boolean
  /** Sends a frame; false when `peer` is not bonded (nothing was sent). */
  send(peer: string, kind: number, body: unknown): boolean
  /**
   * Bytes of frames to `peer` not yet handed to the network: they wait for its credit (it reads
   * slowly, or not at all) or for the transport. 0 when not bonded.
   */
  backlog(peer: string): number
  /**
   * Sends a request and resolves with the response body. Rejects with `RequestRefusedError` when the
   * peer answered with a refusal, and with another error when no answer came (timeout, bond closed):
   * then the peer may or may not have acted on it.
   */
  request(peer: string, kind: number, body: unknown, timeoutMs: number): Promise<unknown>
  start(handlers: TransportHandlers): void
  /** Tells every member this node leaves, and closes the bonds. */
  close(): Promise<void>
}

import { blake3 } from '@noble/hashes/blake3.js'
import { equalBytes, randomBytes, toHex } from '../primitives/bytes.ts'
import { encodeCanonical } from '../primitives/codec.ts'
import type { Digest, GroupId, NetworkId } from '../primitives/digest.ts'
import { DecodeError, describeValue, MosaikError } from '../primitives/errors.ts'
import { systemTimers, type Timers } from '../primitives/time.ts'
import { CloseCode, type LinkClose } from '../transport/close.ts'
import type { Link } from '../transport/link.ts'

/**
 * A bond is an authenticated link between two members of one group. Every pair of members bonds (a
 * full mesh, formed transitively), and all group traffic (Raft, forwarded commands, reads, catch-up)
 * travels over bonds.
 *
 * Handshake on `/mosaik/<net>/groups/1` (libp2p Noise has no TLS exporter to bind a proof to, so both
 * sides contribute a fresh nonce and each proves the secret over the whole transcript):
 *
 *   initiator → acceptor  [version, networkId, groupId, nonceI, observer]
 *   acceptor  → initiator [nonceA, proofA, observer]          or a close code
 *   initiator → acceptor  [proofI]                            or InvalidProof
 *   acceptor  → initiator [true]                              (accepted)
 *
 * proofX = blake3-keyed(secret, canonical([domain, network, group, nonceI, nonceA, initiator, acceptor,
 * role of X])). Peer ids are those Noise authenticated, so a proof cannot be relayed to another
 * connection, and fresh nonces make a recorded handshake useless. Each side sends group data only after
 * the other has proven the secret, so a node with the wrong secret learns nothing of the group.
 *
 * Why the acceptor says it accepted: until then it reads frames of at most a handshake's size (an
 * acceptor takes `BOND_HANDSHAKE_FRAME`), so a peer that has proven nothing cannot make it buffer a
 * large frame; the initiator sends bond traffic (appends of up to about 1 MiB) only after the word.
 */
export const BOND_PROTOCOL_VERSION = 5
/** The largest frame of a bond handshake (a hello or a proof is about 100 bytes). */
export const BOND_HANDSHAKE_FRAME = 4 * 1024
const PROOF_DOMAIN = 'mosaik/group-bond/v1'
const NONCE_BYTES = 32

/** Frames exchanged on an established bond: `[kind, body]`. */
export const BondMsg = {
  Ping: 0,
  Pong: 1,
  Departure: 2,
  Raft: 3,
  /** A member bonded with a peer: `[signedEntryWire]`, so the receiver bonds with it too. */
  BondFormed: 4,
  /** A request to the other side: `[requestId, kind, body]`. */
  Request: 5,
  /**
   * The answer to a request: `[requestId, true, body]`, or `[requestId, false, [refusal, reason,
   * limit?]]` when the peer refused it (see `Refusal`).
   */
  Response: 6,
  /** A member snapshotted at the index a catching-up member asked for: `[meta, size, hash]`. */
  SnapshotOffer: 7,
} as const

/** What the two sides learned of each other in the handshake. */
export interface BondInfo {
  peer: string
  observer: boolean
  /** Identifies this bond (both sides compute the same value). */
  id: string
}

export interface BondSecrets {
  networkId: NetworkId
  groupId: GroupId
  secret: Digest
  localId: string
  observer: boolean
}

export class BondHandshakeError extends MosaikError {
  readonly closeCode: number
  constructor(closeCode: number, message: string) {
    super('BOND_HANDSHAKE', message)
    this.closeCode = closeCode
  }
}

function proof(
  s: BondSecrets,
  nonceI: Uint8Array,
  nonceA: Uint8Array,
  initiator: string,
  acceptor: string,
  role: string,
) {
  const transcript = encodeCanonical([
    PROOF_DOMAIN,
    s.networkId.bytes,
    s.groupId.bytes,
    nonceI,
    nonceA,
    initiator,
    acceptor,
    role,
  ])
  return blake3(transcript, { key: s.secret.bytes })
}

function bondId(nonceI: Uint8Array, nonceA: Uint8Array): string {
  return toHex(blake3(new Uint8Array([...nonceI, ...nonceA]))).slice(0, 16)
}

/** Runs the initiator's side of the handshake; throws BondHandshakeError (after closing the link). */
export async function initiateBond(link: Link, s: BondSecrets, signal: AbortSignal): Promise<BondInfo> {
  const nonceI = randomBytes(NONCE_BYTES)
  await link.send([BOND_PROTOCOL_VERSION, s.networkId.bytes, s.groupId.bytes, nonceI, s.observer], { signal })
  const reply = await link.recv({ signal })
  if (
    !Array.isArray(reply) ||
    reply.length !== 3 ||
    !(reply[0] instanceof Uint8Array) ||
    reply[0].length !== NONCE_BYTES ||
    !(reply[1] instanceof Uint8Array) ||
    typeof reply[2] !== 'boolean'
  ) {
    return fail(link, CloseCode.GroupInvalidHandshake, 'malformed handshake reply')
  }
  const [nonceA, proofA, observer] = reply as [Uint8Array, Uint8Array, boolean]
  const acceptor = link.remotePeer
  if (!equalBytes(proofA, proof(s, nonceI, nonceA, s.localId, acceptor, 'acceptor'))) {
    return fail(link, CloseCode.GroupInvalidProof, 'the remote does not hold the group secret')
  }
  await link.send([proof(s, nonceI, nonceA, s.localId, acceptor, 'initiator')], { signal })
  const accepted = await link.recv({ signal })
  if (!Array.isArray(accepted) || accepted.length !== 1 || accepted[0] !== true) {
    return fail(link, CloseCode.GroupInvalidHandshake, 'malformed acceptance')
  }
  return { peer: acceptor, observer, id: bondId(nonceI, nonceA) }
}

/** What the acceptor decides once it has read the initiator's hello. */
export type AcceptDecision = { ok: true; secrets: BondSecrets } | { ok: false; code: number; reason: string }

/**
 * Runs the acceptor's side: reads the hello, asks `decide` whether this group and peer are welcome
 * (unknown group, unknown peer, already bonded, tickets...), then exchanges proofs. Once the proofs
 * passed, it raises the link's frame limit to `maxFrameSize` and says it accepted.
 */
export async function acceptBond(
  link: Link,
  networkId: NetworkId,
  decide: (groupId: Uint8Array) => AcceptDecision | Promise<AcceptDecision>,
  signal: AbortSignal,
  maxFrameSize?: number,
): Promise<BondInfo & { secrets: BondSecrets }> {
  const hello = await link.recv({ signal })
  if (!Array.isArray(hello) || hello.length < 1)
    return fail(link, CloseCode.GroupInvalidHandshake, 'malformed hello')
  if (hello[0] !== BOND_PROTOCOL_VERSION) {
    return fail(link, CloseCode.UnsupportedVersion, `bond protocol version ${describeValue(hello[0])}`)
  }
  const [, network, group, nonceI, observer] = hello
  if (
    hello.length !== 5 ||
    !(network instanceof Uint8Array) ||
    !(group instanceof Uint8Array) ||
    group.length !== 32 ||
    !(nonceI instanceof Uint8Array) ||
    nonceI.length !== NONCE_BYTES ||
    typeof observer !== 'boolean'
  ) {
    return fail(link, CloseCode.GroupInvalidHandshake, 'malformed hello')
  }
  if (!equalBytes(network, networkId.bytes))
    return fail(link, CloseCode.DifferentNetwork, 'different network')
  const decision = await decide(group)
  if (!decision.ok) return fail(link, decision.code, decision.reason)
  const s = decision.secrets
  const nonceA = randomBytes(NONCE_BYTES)
  const initiator = link.remotePeer
  await link.send([nonceA, proof(s, nonceI, nonceA, initiator, s.localId, 'acceptor'), s.observer], {
    signal,
  })
  const answer = await link.recv({ signal })
  if (!Array.isArray(answer) || answer.length !== 1 || !(answer[0] instanceof Uint8Array)) {
    return fail(link, CloseCode.GroupInvalidHandshake, 'malformed proof')
  }
  if (!equalBytes(answer[0], proof(s, nonceI, nonceA, initiator, s.localId, 'initiator'))) {
    return fail(link, CloseCode.GroupInvalidProof, 'the remote does not hold the group secret')
  }
  if (maxFrameSize !== undefined) link.setMaxFrameSize(maxFrameSize)
  await link.send([true], { signal })
  return { peer: initiator, observer, id: bondId(nonceI, nonceA), secrets: s }
}

function fail(link: Link, code: number, reason: string): never {
  link.beginClose(code, reason)
  throw new BondHandshakeError(code, reason)
}

/**
 * A bond closes when this many frames wait to be sent to a peer that has read nothing of what it was
 * sent for `STALL_MS`: a member that keeps asking but never reads would otherwise have its answers
 * pile up here without end (Raft appends in flight and catch-up answers are capped on their own).
 * A member that stalls altogether is closed by its missed heartbeats; this one still sends them. A
 * member that reads, however slowly, or this node's own requests waiting for credit, close nothing.
 */
export const MAX_SEND_BACKLOG = 4096
const STALL_MS = 2000

/** A pending request sent over a bond. */
interface PendingRequest {
  resolve(body: unknown): void
  reject(err: Error): void
  cancelTimer: () => void
  /** Handed to the transport: from then on the peer may act on it. */
  sent: boolean
}

/**
 * A request over a bond got no answer. `sent` is false when it never left this node (the bond was
 * closed already): then the peer certainly did not act on it.
 */
export class BondRequestError extends MosaikError {
  readonly sent: boolean
  constructor(message: string, sent = true, code = 'BOND_REQUEST') {
    super(code, message)
    this.sent = sent
  }
}

/**
 * Why a member refused a request, as it travels: the requester acts on the code, never on the words.
 * - `NOT_LEADER`: the request needs the leader and this member does not lead (try the new one).
 * - `STOPPED`: the group stopped on this member (closed, or halted by its disk).
 * - `BUSY`: this requester already has as many forwards waiting here as the limits allow.
 * - `TOO_LARGE`: a command is over this member's `maxCommandBytes` (the refusal carries the limit).
 * - `OTHER_CLUSTER`: the requester belongs to another cluster of the group.
 * - `TOO_SOON`: the same request came moments ago (snapshots are rate-limited per member).
 * - `MALFORMED`: the request did not decode here.
 * - `FAILED`: anything else (a failure reading the store, for example).
 */
export const Refusal = {
  NotLeader: 'NOT_LEADER',
  Stopped: 'STOPPED',
  Busy: 'BUSY',
  TooLarge: 'TOO_LARGE',
  OtherCluster: 'OTHER_CLUSTER',
  TooSoon: 'TOO_SOON',
  Malformed: 'MALFORMED',
  Failed: 'FAILED',
} as const
export type Refusal = (typeof Refusal)[keyof typeof Refusal]
const REFUSALS: ReadonlySet<string> = new Set(Object.values(Refusal))

/**
 * A member refused a request: it did not act on it. Thrown by the member's request handlers, sent as
 * `[refusal, reason, limit?]`, and raised again on the requester's side.
 */
export class RequestRefusedError extends BondRequestError {
  readonly refusal: Refusal
  /** With `TOO_LARGE`: the refusing member's limit, in bytes. */
  readonly limit: number | undefined
  constructor(refusal: Refusal, reason: string, limit?: number) {
    super(reason, true, 'REQUEST_REFUSED')
    this.refusal = refusal
    this.limit = limit
  }

  /** How `err`, thrown by a request handler, travels back to the requester. */
  static wire(err: unknown): [Refusal, string] | [Refusal, string, number] {
    if (err instanceof RequestRefusedError) {
      return err.limit === undefined ? [err.refusal, err.message] : [err.refusal, err.message, err.limit]
    }
    const reason = err instanceof Error ? err.message : String(err)
    return [err instanceof DecodeError ? Refusal.Malformed : Refusal.Failed, reason]
  }

  /** The refusal a Response frame carries; a code this version does not know reads as `FAILED`. */
  static parse(body: unknown): RequestRefusedError {
    if (!Array.isArray(body) || body.length < 2 || body.length > 3 || typeof body[1] !== 'string') {
      throw new DecodeError('malformed refusal')
    }
    const code = typeof body[0] === 'string' && REFUSALS.has(body[0]) ? (body[0] as Refusal) : Refusal.Failed
    const limit = typeof body[2] === 'number' && Number.isSafeInteger(body[2]) ? body[2] : undefined
    return new RequestRefusedError(code, body[1], limit)
  }
}

/**
 * An established bond: sends frames without blocking the group worker (the link's credit window
 * bounds what is in flight), tracks liveness, and matches requests with their responses.
 */
export class Bond {
  readonly peer: string
  readonly id: string
  readonly observer: boolean
  readonly link: Link
  /** When the last frame arrived (ms, monotonic). */
  lastHeard: number
  lastSent: number
  readonly #pending = new Map<number, PendingRequest>()
  #nextRequest = 1
  /** What the peer had read when last seen (`link.remoteConsumed`), and since when it has not read. */
  #consumed = 0
  #readAt: number

  readonly #timers: Timers

  /** `timers` run the request timeouts. */
  constructor(link: Link, info: BondInfo, now: number, timers: Timers = systemTimers) {
    this.link = link
    this.#timers = timers
    this.peer = info.peer
    this.id = info.id
    this.observer = info.observer
    this.lastHeard = now
    this.lastSent = now
    this.#readAt = now
  }

  get closed(): boolean {
    return this.link.isClosed
  }

  send(kind: number, body: unknown, now: number): void {
    if (this.link.isClosed) return
    if (this.#stalled(now)) {
      this.link.beginClose(CloseCode.GroupTimeout, `${this.peer} does not read what it is sent`)
      return
    }
    this.lastSent = now
    this.link.send([kind, body]).catch(() => {})
  }

  /** Whether MAX_SEND_BACKLOG frames wait for a peer that has read nothing for STALL_MS. */
  #stalled(now: number): boolean {
    const link = this.link
    if (link.queuedSends === 0 || link.remoteConsumed !== this.#consumed) {
      this.#consumed = link.remoteConsumed
      this.#readAt = now
      return false
    }
    return link.queuedSends >= MAX_SEND_BACKLOG && now - this.#readAt >= STALL_MS
  }

  /** Sends a request and resolves with the peer's response body; rejects on error, timeout or close. */
  request(kind: number, body: unknown, timeoutMs: number, now: number): Promise<unknown> {
    if (this.link.isClosed)
      return Promise.reject(new BondRequestError(`bond with ${this.peer} is closed`, false))
    const id = this.#nextRequest++
    const { promise, resolve, reject } = Promise.withResolvers<unknown>()
    const cancelTimer = this.#timers.setTimeout(() => {
      this.#pending.delete(id)
      reject(new BondRequestError(`request to ${this.peer} timed out after ${timeoutMs} ms`))
    }, timeoutMs)
    const pending: PendingRequest = { resolve, reject, cancelTimer, sent: false }
    this.#pending.set(id, pending)
    // This node's own requests wait for credit however many there are: the caller asked for them.
    this.lastSent = now
    this.link.send([BondMsg.Request, [id, kind, body]]).then(
      () => {
        pending.sent = true
      },
      () => {},
    )
    return promise
  }

  respond(requestId: number, body: unknown, now: number): void {
    this.send(BondMsg.Response, [requestId, true, body], now)
  }

  /** Answers a request with the refusal `err` (see `RequestRefusedError.wire`). */
  refuse(requestId: number, err: unknown, now: number): void {
    this.send(BondMsg.Response, [requestId, false, RequestRefusedError.wire(err)], now)
  }

  /** Routes a Response frame to its request. */
  onResponse(body: unknown): void {
    if (!Array.isArray(body) || body.length !== 3 || typeof body[0] !== 'number')
      throw new DecodeError('bad response')
    const refused = body[1] === true ? undefined : RequestRefusedError.parse(body[2])
    const pending = this.#pending.get(body[0])
    if (!pending) return
    this.#pending.delete(body[0])
    pending.cancelTimer()
    if (refused) pending.reject(refused)
    else pending.resolve(body[2])
  }

  /** Fails every pending request; called once the link has closed. */
  failPending(close: LinkClose): void {
    for (const [, p] of this.#pending) {
      p.cancelTimer()
      // One still waiting for credit when the link closed never left: the peer did not act on it.
      p.reject(new BondRequestError(`bond with ${this.peer} closed: ${close.reason || close.code}`, p.sent))
    }
    this.#pending.clear()
  }

  close(code: number = CloseCode.GracefulShutdown, reason = ''): Promise<void> {
    return this.link.close(code, reason)
  }
}

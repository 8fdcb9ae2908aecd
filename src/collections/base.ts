import type { StandardSchemaV1 } from '@standard-schema/spec'
import type { ConsensusOptions } from '../groups/config.ts'
import type { Group } from '../groups/group.ts'
import { GroupKey } from '../groups/key.ts'
import type { ApplyContext, StateMachine } from '../groups/state-machine.ts'
import type { LogStore } from '../groups/storage/log-store.ts'
import { CommitUnknownError } from '../groups/worker.ts'
import type { Network } from '../network/network.ts'
import { type AbortOptions, raceSignal } from '../primitives/abort.ts'
import { type Codec, cborOf } from '../primitives/codec.ts'
import { Digest, type DigestLike, type StoreId } from '../primitives/digest.ts'
import {
  ClosedError,
  DecodeError,
  InvalidArgumentError,
  MosaikError,
  OfflineError,
} from '../primitives/errors.ts'
import { Emitter } from '../primitives/events.ts'
import { Watch } from '../primitives/watch.ts'
import type { TicketValidator } from '../tickets/ticket.ts'

/** The log index at which a mutation was committed; any replica can await it with `when.reaches`. */
export type Version = number

/** Options every collection accepts. */
export interface CollectionOptions {
  /** Consensus timing of the collection's group (shared by all its writers and readers). */
  consensus?: ConsensusOptions
  /** Where the log lives; by default memory, or a FileLogStore under the node's `dataDir`. */
  storage?: LogStore
  /**
   * Ticket validators every writer and reader must satisfy (an array: all of them); part of the
   * collection's GroupId. A collection's group secret is its public store id, so tickets are the only
   * admission control a collection has.
   */
  requireTicket?: TicketValidator | readonly TicketValidator[]
}

/** How values of one type cross the wire: a codec (canonical CBOR by default) and an optional schema. */
export interface ValueType<T> {
  codec?: Codec<T>
  /** A Standard Schema (zod, valibot, arktype): writers validate every value before proposing it. */
  schema?: StandardSchemaV1<T>
}

/** A value with its canonical bytes: equality of keys and compare-and-swap compare the bytes. */
export interface Encoded<T> {
  readonly value: T
  readonly bytes: Uint8Array
}

/** Encodes and decodes values of one type, validating them against the schema on the way in. */
export class ValueCodec<T> {
  readonly #codec: Codec<T>
  readonly #schema: StandardSchemaV1<T> | undefined

  constructor(type: ValueType<T> = {}) {
    this.#codec = type.codec ?? cborOf<T>()
    this.#schema = type.schema
  }

  /** Validates (when a schema is set) and encodes; throws InvalidValueError carrying the value. */
  async encode(value: T): Promise<Uint8Array> {
    if (this.#schema) {
      const result = await this.#schema['~standard'].validate(value)
      if (result.issues) {
        throw new InvalidValueError(value, result.issues.map((i) => i.message).join('; '))
      }
    }
    return this.#codec.encode(value)
  }

  /** Encodes without the schema: for keys used in lookups. */
  encodeUnchecked(value: T): Uint8Array {
    return this.#codec.encode(value)
  }

  decode(bytes: Uint8Array): T {
    return this.#codec.decode(bytes)
  }
}

/** A value failed the collection's schema; nothing was proposed. */
export class InvalidValueError<T = unknown> extends MosaikError {
  readonly value: T
  constructor(value: T, issues: string) {
    super('INVALID_VALUE', `value rejected by the schema: ${issues}`)
    this.value = value
  }
}

/** Keys of the replicas' maps: canonical bytes as a string (latin1), cheap to hash and compare. */
export function bytesKey(bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i += 8192) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[])
  }
  return out
}

/**
 * The state machine behind a collection. Commands are canonical-CBOR arrays whose user values are
 * already encoded bytes, so every replica sees the same bytes and compares them, not re-encodings.
 */
export abstract class CollectionMachine<Command extends readonly unknown[]>
  implements StateMachine<Command, null, null>
{
  readonly signature: Digest
  /** Grows with every applied command or restore, so handles can tell when to emit `updated`. */
  revision = 0

  /** `parameters` are parts of the machine's behaviour that replicas must share (e.g. a capacity). */
  constructor(kind: string, storeId: StoreId, ...parameters: Uint8Array[]) {
    let signature = Digest.from(`mosaik_collections_${kind}`).derive(storeId)
    for (const p of parameters) signature = signature.derive(p)
    this.signature = signature
  }

  abstract applyCommand(command: Command, ctx: ApplyContext): unknown

  apply(command: Command, ctx: ApplyContext): unknown {
    this.revision++
    return this.applyCommand(command, ctx)
  }

  applyBatch(commands: readonly Command[], ctxs: readonly ApplyContext[]): unknown[] {
    this.revision++
    return commands.map((c, i) => this.applyCommand(c, ctxs[i]!))
  }

  query(): null {
    return null
  }

  /**
   * The state as items of `arity` byte strings each, in the machine's deterministic order, packed as
   * `[format][arity][varint length, bytes]…`: far cheaper to write and read than CBOR for 100k items,
   * and the same bytes on every replica at the same version.
   */
  snapshot(): Uint8Array {
    return packItems(this.arity, this.snapshotItems())
  }

  restore(snapshot: Uint8Array): void {
    this.restoreItems(snapshot.length === 0 ? [] : unpackItems(this.arity, snapshot))
    this.revision++
  }

  /** How many byte strings make one item of this machine's snapshot. */
  protected abstract readonly arity: number
  protected abstract snapshotItems(): Uint8Array[][]
  protected abstract restoreItems(items: Uint8Array[][]): void
}

const SNAPSHOT_FORMAT = 1

/** Packs items of `arity` byte strings each. */
export function packItems(arity: number, items: readonly (readonly Uint8Array[])[]): Uint8Array {
  let size = 2
  for (const item of items) for (const b of item) size += varintLength(b.length) + b.length
  const out = new Uint8Array(size)
  out[0] = SNAPSHOT_FORMAT
  out[1] = arity
  let at = 2
  for (const item of items) {
    for (const b of item) {
      let n = b.length
      while (n >= 0x80) {
        out[at++] = (n & 0x7f) | 0x80
        n >>>= 7
      }
      out[at++] = n
      out.set(b, at)
      at += b.length
    }
  }
  return out
}

export function unpackItems(arity: number, bytes: Uint8Array): Uint8Array[][] {
  if (bytes[0] !== SNAPSHOT_FORMAT || bytes[1] !== arity)
    throw new DecodeError('unknown collection snapshot format')
  const items: Uint8Array[][] = []
  let at = 2
  let item: Uint8Array[] = []
  while (at < bytes.length) {
    let n = 0
    let shift = 0
    let b: number
    do {
      if (at >= bytes.length || shift > 28) throw new DecodeError('malformed collection snapshot')
      b = bytes[at++]!
      n |= (b & 0x7f) << shift
      shift += 7
    } while (b & 0x80)
    if (at + n > bytes.length) throw new DecodeError('truncated collection snapshot')
    item.push(bytes.subarray(at, at + n))
    at += n
    if (item.length === arity) {
      items.push(item)
      item = []
    }
  }
  if (item.length !== 0) throw new DecodeError('truncated collection snapshot')
  return items
}

function varintLength(n: number): number {
  let len = 1
  while (n >= 0x80) {
    n >>>= 7
    len++
  }
  return len
}

/** A value kept as its canonical bytes and decoded on first read (replicas often hold far more than they read). */
export class Lazy<T> {
  readonly bytes: Uint8Array
  readonly #codec: ValueCodec<T>
  #decoded: { value: T } | undefined

  constructor(bytes: Uint8Array, codec: ValueCodec<T>) {
    this.bytes = bytes
    this.#codec = codec
  }

  get value(): T {
    this.#decoded ??= { value: this.#codec.decode(this.bytes) }
    return this.#decoded.value
  }
}

export interface CollectionEvents {
  /**
   * The replica applied a committed change; `version` is its new version. Also emitted once when a
   * replica joins with state restored from its own store, with `restored: true`: a UI shows that state
   * at once, marked as not yet confirmed by a live leader (see `restored`).
   */
  updated: { version: Version; restored?: boolean }
}

export type Role = 'writer' | 'reader'

/**
 * What every collection handle shares: the group (joined in the background), the version, the `when`
 * conditions and the `updated` events. Writers vote in the collection's group; readers join it as
 * observers and never vote.
 */
export class CollectionCore<M extends CollectionMachine<readonly unknown[]>> {
  readonly storeId: StoreId
  readonly role: Role
  readonly events = new Emitter<CollectionEvents>()
  readonly ready: Promise<Group<M>>
  #group: Group<M> | undefined
  #machine: M
  readonly #version = new Watch(0)
  #closed = false
  /** Iterators of `updates()` waiting for a change; closing wakes them so they end. */
  readonly #wakeOnClose = new Set<() => void>()
  #unwatch: (() => void) | undefined
  /** The version this replica restored from its store and announced with `updated`, if it did. */
  #restoredAt: Version | undefined

  constructor(
    net: Network,
    storeId: DigestLike,
    role: Role,
    machine: (storeId: StoreId) => M,
    options: CollectionOptions,
  ) {
    this.storeId = Digest.from(storeId)
    this.role = role
    this.#machine = machine(this.storeId)
    this.ready = net.groups
      .join({
        key: GroupKey.fromSecret(this.storeId),
        stateMachine: this.#machine,
        preference: role === 'writer' ? 'normal' : 'observer',
        consensus: options.consensus,
        storage: options.storage,
        requireTicket: options.requireTicket,
      })
      .then((group) => {
        if (this.#closed) {
          void group.close()
          throw new ClosedError('collection closed')
        }
        this.#group = group
        // Another handle on this node may have joined first: its machine is the replica.
        this.#machine = group.stateMachine
        this.#version.set(group.committed)
        this.#unwatch = this.#follow(group)
        if (group.restored) {
          // State from this node's own store, served before any leader is heard from.
          this.#restoredAt = group.committed
          this.events.emit('updated', { version: group.committed, restored: true })
        }
        return group
      })
    this.ready.catch(() => {})
  }

  /** The local replica's state (the group's machine once joined). */
  get machine(): M {
    return this.#machine
  }

  get version(): Version {
    return this.#version.value
  }

  get group(): Group<M> | undefined {
    return this.#group
  }

  /** Shows state restored from its store that no live leader has confirmed yet (false until joined). */
  get restored(): boolean {
    return this.#group?.restored ?? false
  }

  /** Tracks the replica's applied version and emits `updated` when a batch changed something. */
  #follow(group: Group<M>): () => void {
    let stopped = false
    let revision = group.stateMachine.revision
    const loop = async () => {
      while (!stopped) {
        try {
          await group.when.committed().reaches(this.#version.value + 1)
        } catch {
          return
        }
        if (stopped) return
        const version = group.committed
        this.#version.set(version)
        const now = group.stateMachine.revision
        if (now !== revision) {
          revision = now
          this.events.emit('updated', { version })
        }
      }
    }
    void loop()
    return () => {
      stopped = true
    }
  }

  /**
   * Proposes one command. Resolves with its version once committed on this node; fails fast with
   * OfflineError (carrying `valueBack`) when the group has no reachable leader.
   */
  async mutate(
    command: readonly unknown[],
    valueBack: unknown,
    options?: AbortOptions,
  ): Promise<{ version: Version; result: unknown }> {
    if (this.role !== 'writer') throw new InvalidArgumentError('readers cannot mutate a collection')
    const group = await this.ready
    try {
      const { index, result } = await group.executeForResult(command as never, options)
      return { version: index, result }
    } catch (err) {
      if (err instanceof OfflineError) throw new OfflineError(valueBack, err.message, { cause: err })
      if (err instanceof CommitUnknownError) throw new CommitUnknownError(valueBack, err.message)
      throw err
    }
  }

  // ---- conditions ----------------------------------------------------------------------------------

  async online(options?: AbortOptions): Promise<void> {
    const group = await this.ready
    await group.when.online(options)
  }

  async offline(options?: AbortOptions): Promise<void> {
    const group = await this.ready
    await group.when.offline(options)
  }

  /**
   * Resolves once the replica serves what its own store kept (right after joining; it never waits for
   * a leader), with the version it shows then: 0 when the store held nothing.
   */
  async restoredVersion(options?: AbortOptions): Promise<Version> {
    await raceSignal(this.ready, options?.signal)
    return this.#version.value
  }

  /** Resolves once this replica has applied version `v` (any later state satisfies it too). */
  async reaches(v: Version, options?: AbortOptions): Promise<Version> {
    await this.ready
    return this.#version.until((x) => x >= v, options)
  }

  /** Resolves with the version of the next committed change this replica applies. */
  updated(options?: AbortOptions): Promise<Version> {
    if (options?.signal?.aborted) return Promise.reject(options.signal.reason)
    return new Promise((resolve, reject) => {
      const off = this.events.on('updated', ({ version }) => {
        off()
        options?.signal?.removeEventListener('abort', onAbort)
        resolve(version)
      })
      const onAbort = () => {
        off()
        reject(options!.signal!.reason)
      }
      options?.signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /**
   * Versions as changes are applied, until the signal aborts or the collection closes. It listens from
   * the first call on, so no change is missed while the consumer is busy; changes that arrive while it
   * is busy are coalesced into the latest version. A replica that still shows the state it restored
   * from its store yields that version first, even when iteration starts after the restore.
   */
  async *updates(options?: AbortOptions): AsyncIterable<Version> {
    let pending: Version | undefined =
      this.#restoredAt !== undefined && this.#version.value === this.#restoredAt
        ? this.#restoredAt
        : undefined
    let wake: (() => void) | undefined
    const off = this.events.on('updated', ({ version }) => {
      pending = version
      wake?.()
    })
    const onAbort = () => wake?.()
    options?.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      while (!this.#closed && !options?.signal?.aborted) {
        if (pending === undefined) {
          await new Promise<void>((resolve) => {
            wake = resolve
            this.#wakeOnClose.add(resolve)
          })
          if (wake) this.#wakeOnClose.delete(wake)
          wake = undefined
          continue
        }
        const version = pending
        pending = undefined
        yield version
      }
    } finally {
      off()
      options?.signal?.removeEventListener('abort', onAbort)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const wake of this.#wakeOnClose) wake()
    this.#wakeOnClose.clear()
    this.#unwatch?.()
    this.#version.close()
    this.events.removeAllListeners()
    const group = await this.ready.catch(() => undefined)
    await group?.close()
  }
}

/** Awaitable conditions every collection handle offers. */
export class CollectionConditions {
  readonly #core: CollectionCore<CollectionMachine<readonly unknown[]>>

  constructor(core: CollectionCore<CollectionMachine<readonly unknown[]>>) {
    this.#core = core
  }

  /**
   * Writers: a leader is reachable, so mutations can commit. Readers: in step with a live leader. A
   * replica restored from its store is not online until then (await `restored()` to show what it kept).
   */
  online(options?: AbortOptions): Promise<void> {
    return this.#core.online(options)
  }

  /**
   * Resolves once the replica serves what its own store (the node's `dataDir`) kept, with the version it
   * shows: right after joining, with no leader needed; 0 when the store held nothing (or is in memory).
   */
  restored(options?: AbortOptions): Promise<Version> {
    return this.#core.restoredVersion(options)
  }

  offline(options?: AbortOptions): Promise<void> {
    return this.#core.offline(options)
  }

  /** Resolves once this replica shows version `v` or later. */
  reaches(v: Version, options?: AbortOptions): Promise<Version> {
    return this.#core.reaches(v, options)
  }

  /** Resolves with the version of the next change applied here. */
  updated(options?: AbortOptions): Promise<Version> {
    return this.#core.updated(options)
  }
}

/** A mutation whose outcome says the caller's request could not apply (e.g. an index out of range). */
export class OutOfRangeError<T = unknown> extends MosaikError {
  readonly value: T
  readonly version: Version
  constructor(value: T, version: Version, message: string) {
    super('OUT_OF_RANGE', message)
    this.value = value
    this.version = version
  }
}

/**
 * The part of every collection handle that does not depend on its type: identity, version, conditions,
 * change notifications and lifecycle.
 */
export class CollectionHandle<M extends CollectionMachine<readonly unknown[]>> {
  readonly when: CollectionConditions
  protected readonly core: CollectionCore<M>

  protected constructor(
    net: Network,
    storeId: DigestLike,
    role: Role,
    machine: (storeId: StoreId) => M,
    options: CollectionOptions,
  ) {
    this.core = new CollectionCore(net, storeId, role, machine, options)
    this.when = new CollectionConditions(this.core)
  }

  get storeId(): StoreId {
    return this.core.storeId
  }

  /** The version (log index) of the state this replica shows. */
  get version(): Version {
    return this.core.version
  }

  /**
   * True while the replica shows state restored from its own store that no live leader has confirmed
   * yet (possibly stale by any amount); false once it is first online, and for a replica that restored
   * nothing. Reads serve the restored state either way.
   */
  get restored(): boolean {
    return this.core.restored
  }

  /** Listens for applied changes; returns an unsubscribe function. */
  on(event: 'updated', listener: (e: CollectionEvents['updated']) => void): () => void {
    return this.core.events.on(event, listener)
  }

  /** Versions as changes are applied (for re-rendering a UI). */
  updates(options?: AbortOptions): AsyncIterable<Version> {
    return this.core.updates(options)
  }

  /** Leaves the collection's group (once every handle of this node has closed). */
  close(): Promise<void> {
    return this.core.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  protected get machine(): M {
    return this.core.machine
  }

  protected async mutate(
    command: readonly unknown[],
    valueBack: unknown,
    options?: AbortOptions,
  ): Promise<Version> {
    return (await this.core.mutate(command, valueBack, options)).version
  }
}

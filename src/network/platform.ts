import type { ConnectionGater, PrivateKey, Transport } from '@libp2p/interface'
import type { LogStore } from '../groups/storage/log-store.ts'
import { InvalidArgumentError } from '../primitives/errors.ts'

/**
 * What the isomorphic core needs from the runtime it runs in. `platform/node` and `platform/browser`
 * each provide one and register it when their entry module loads, so `Network.create` picks the right
 * transports without the core importing anything platform-specific (the nats.js pattern).
 */
export interface Platform {
  /** The platform's name, for logs and errors (`'node'`, `'browser'`). */
  readonly name: string
  /**
   * Throws UnsupportedRuntimeError when the runtime lacks what the SDK needs (Node: a version before
   * 22). `Network.create` calls it first, before it touches `dataDir` or starts libp2p, so an old
   * runtime fails with a clear message instead of a TypeError deep inside a transport.
   */
  checkRuntime?(): void
  /**
   * Loads what the runtime can only load asynchronously (optional native transports such as QUIC),
   * once per process; `Network.create` awaits it before it calls `transports()` or `defaultListen()`,
   * which then reflect what loaded.
   *
   * Gotchas: it must not throw for a missing optional transport; it drops the transport (warning
   * once) so that a node still forms over the others.
   */
  prepare?(): Promise<void>
  /** libp2p transport factories this runtime can use (listening and dialing). */
  transports(): TransportFactory[]
  /** Listen addresses when the caller gives none. */
  defaultListen(): string[]
  /** Optional connection gater (browsers use it to allow loopback dials in development). */
  connectionGater?(): ConnectionGater
  /**
   * Takes `dataDir` for this node until the lock is released, refusing (DataDirLockedError) while another
   * process or Network holds it: two nodes on one directory would lose acknowledged writes.
   */
  lockDataDir?(dataDir: string): Promise<DataDirLock>
  /** Loads the node's identity from `dataDir`, creating and storing one the first time. */
  loadIdentity?(dataDir: string): Promise<PrivateKey>
  /** Opens (creating if needed) the durable log store `name` under `dataDir`. */
  openLogStore?(dataDir: string, name: string): Promise<LogStore>
  /**
   * False when members on this runtime must never vote in a group; default true. Then groups and
   * collection writers join as observers, and a voting preference is refused.
   *
   * Why browsers set it: a hidden tab's timers run at most once a minute, so a voting tab would hold up
   * elections and commits, and tabs come and go with their users.
   */
  readonly groupVoting?: boolean
}

/** A held `dataDir`; `release` is idempotent. */
export interface DataDirLock {
  release(): Promise<void>
}

/** A libp2p transport factory (what `tcp()`, `webSockets()`... return), as a Platform provides them. */
// biome-ignore lint/suspicious/noExplicitAny: libp2p's transport factories take component bags of varying shape
export type TransportFactory = (components: any) => Transport

let registered: Platform | undefined

/** Called by a platform entry module; the last registration wins. */
export function registerPlatform(platform: Platform): void {
  registered = platform
}

export function currentPlatform(): Platform {
  if (!registered) {
    throw new InvalidArgumentError(
      "no platform registered: import the SDK through its package entry ('mosaik'), or pass `platform`",
    )
  }
  return registered
}

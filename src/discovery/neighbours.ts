import type { Connection } from '@libp2p/interface'
import { deadline, delay, linkSignals } from '../primitives/abort.ts'
import { Backoff, jittered } from '../primitives/backoff.ts'
import type { Watch } from '../primitives/watch.ts'
import { hostKey } from '../transport/hosts.ts'
import type { CatalogExchange } from './exchange.ts'
import type { DiscoveryState } from './state.ts'

/** Failed attempts in a row after which a bootstrap address counts as unreachable (and is reported). */
export const BOOTSTRAP_UNREACHABLE_AFTER = 3

/**
 * Neighbour dials go out one at a time; one that has not finished within this lets the next start.
 * Dialing every missing neighbour at once made a burst of n joining nodes run ~5n handshakes together:
 * on a busy host they all finished late, together, and each node overshot its target (inbound
 * connections arrived meanwhile). 50 nodes in one process reached a full catalog in 8 s over 279
 * connections; one at a time, in 4 s over 97 (and 194 once settled, against 279).
 */
export const DIAL_STAGGER_MS = 1000

/** `connecting` until the first successful sync, `unreachable` after failed attempts in a row. */
export type BootstrapState = 'connecting' | 'synced' | 'unreachable'

/** Where one bootstrap address stands (see Discovery.bootstrapStatus). */
export interface BootstrapStatus {
  /** The bootstrap address, as configured. */
  readonly address: string
  /** Where it stands: connecting, synced or unreachable. */
  readonly state: BootstrapState
  /** Failed attempts so far. */
  readonly failures: number
  /** The message of the last failure, if any. */
  readonly lastError?: string
}

/**
 * Neighbour upkeep: bootstrap syncs, the first-contact sync of every new outbound connection, a few
 * random connected neighbours, periodic anti-entropy syncs and RTT probes.
 */
export class Neighbours {
  readonly #state: DiscoveryState
  readonly #exchange: CatalogExchange
  readonly #bootstrap: string[]
  /** True once one sync with a bootstrap address succeeded (or there was none to make). */
  readonly #bootstrapped: Watch<boolean>
  readonly #bootstrapStatus = new Map<string, BootstrapStatus>()
  /** Neighbour dials in flight, and when each started (the state's clock). */
  readonly #dialing = new Map<string, number>()
  #maintenanceScheduled = false

  constructor(
    state: DiscoveryState,
    exchange: CatalogExchange,
    bootstrap: string[],
    bootstrapped: Watch<boolean>,
  ) {
    this.#state = state
    this.#exchange = exchange
    this.#bootstrap = bootstrap
    this.#bootstrapped = bootstrapped
    for (const address of bootstrap)
      this.#bootstrapStatus.set(address, { address, state: 'connecting', failures: 0 })
  }

  /** One status per bootstrap address, in the order given. */
  bootstrapStatus(): BootstrapStatus[] {
    return [...this.#bootstrapStatus.values()]
  }

  /** Starts the periodic probes, maintenance and anti-entropy, and the bootstrap syncs. */
  start(): void {
    const { config, scope } = this.#state
    scope.every(
      () => jittered(config.rttProbeIntervalMs, 0.5),
      () => this.#probeRtts(),
    )
    scope.every(
      () => jittered(2000, 0.5),
      () => this.#maintainNeighbors(),
    )
    // Gossip is best effort (a message can miss a node whose mesh is being rebuilt); a periodic full
    // sync with a random neighbour repairs whatever it missed, departures included.
    scope.every(
      () => jittered(config.antiEntropyIntervalMs, 0.5),
      () => this.#antiEntropy(),
    )
    for (const address of this.#bootstrap) scope.spawn(this.#bootstrapFrom(address))
  }

  /** First contact: the dialing side of a new connection syncs catalogs with the peer once per run. */
  readonly onConnectionOpen = (evt: CustomEvent<Connection>): void => {
    const { scope, store, synced, log } = this.#state
    const connection = evt.detail
    const peer = connection.remotePeer.toString()
    // The connection proves the peer holds its key: its entry, if held, now counts as direct.
    store.connected(peer, hostKey(connection.remoteAddr) ?? `peer:${peer}`)
    if (connection.direction !== 'outbound' || synced.has(peer) || this.#state.departed) return
    synced.add(peer)
    scope.spawn(
      this.#exchange.syncWith(peer).catch((err) => {
        synced.delete(peer)
        log('first-contact sync with %s failed: %s', peer, (err as Error).message)
      }),
    )
  }

  /**
   * Retries a bootstrap address with backoff until one sync with it succeeds. After
   * BOOTSTRAP_UNREACHABLE_AFTER failures in a row it reports the address (`bootstrap:unreachable`,
   * once) and keeps retrying.
   */
  async #bootstrapFrom(address: string): Promise<void> {
    const { scope, log, events } = this.#state
    const backoff = new Backoff(
      { initialMs: 100, maxIntervalMs: 5000, maxElapsedMs: Number.POSITIVE_INFINITY },
      () => this.#state.ctx.clock.now(),
    )
    let failures = 0
    while (!scope.closed) {
      try {
        await this.#exchange.syncWith(address)
        this.#bootstrapStatus.set(address, { address, state: 'synced', failures })
        this.#bootstrapped.set(true)
        return
      } catch (err) {
        if (scope.closed) return
        const error = err as Error
        failures++
        log('bootstrap via %s failed (%d): %s', address, failures, error.message)
        const unreachable = failures >= BOOTSTRAP_UNREACHABLE_AFTER
        this.#bootstrapStatus.set(address, {
          address,
          state: unreachable ? 'unreachable' : 'connecting',
          failures,
          lastError: error.message,
        })
        if (failures === BOOTSTRAP_UNREACHABLE_AFTER) {
          log.error('bootstrap address %s is unreachable so far: %s', address, error.message)
          events.emit('bootstrap:unreachable', { address, error, failures })
        }
      }
      await delay(backoff.next() ?? 5000, scope.signal).catch(() => {})
    }
  }

  /** Runs neighbour maintenance soon, coalescing bursts of discoveries into one pass. */
  scheduleMaintenance(): void {
    if (this.#maintenanceScheduled || this.#state.departed) return
    this.#maintenanceScheduled = true
    this.#state.scope.setTimeout(() => {
      this.#maintenanceScheduled = false
      this.#maintainNeighbors()
    }, 20)
  }

  /**
   * Keeps `targetNeighbors` peers of the catalog connected, chosen at random. Gossipsub only talks to
   * connected peers, so without this a star around the bootstrap node would leave most announcements
   * to lazy gossip; a random graph of a few links per node lets the mesh carry them to everyone, and
   * each new link starts with a catalog sync.
   */
  #maintainNeighbors(): void {
    const { ctx, config, scope } = this.#state
    // One dial at a time (see DIAL_STAGGER_MS). A dial older than that no longer counts against the
    // target: a blackholed address would otherwise hold the last missing neighbour back for the whole
    // request timeout once inbound connections had filled the rest. If it still succeeds, the node
    // overshoots by one, which the connection manager's limits absorb.
    const now = ctx.clock.now()
    for (const startedAt of this.#dialing.values()) if (now - startedAt < DIAL_STAGGER_MS) return
    const peers = this.#state.catalog().signedPeers()
    const connected = peers.filter((p) => ctx.isConnected(p.id)).length
    if (connected >= config.targetNeighbors) return
    const candidates = peers.filter((p) => !this.#dialing.has(p.id) && !ctx.isConnected(p.id))
    if (candidates.length === 0) return
    const id = candidates[Math.floor(Math.random() * candidates.length)]!.id
    this.#dialing.set(id, now)
    const stagger = scope.setTimeout(() => this.scheduleMaintenance(), DIAL_STAGGER_MS)
    const timeout = deadline(config.requestTimeoutMs, scope)
    const linked = linkSignals(timeout.signal, scope.signal)
    scope.spawn(
      ctx
        .dialPeer(id, { signal: linked.signal })
        .catch(() => {})
        .finally(() => {
          linked.clear()
          timeout.clear()
          this.#dialing.delete(id)
          stagger()
          this.scheduleMaintenance()
        }),
    )
  }

  #antiEntropy(): void {
    const { ctx, scope } = this.#state
    const connected = this.#state
      .catalog()
      .signedPeers()
      .filter((p) => ctx.isConnected(p.id))
    const peer = connected[Math.floor(Math.random() * connected.length)]
    if (peer) scope.spawn(this.#exchange.syncWith(peer.id).catch(() => {}))
  }

  #probeRtts(): void {
    const { ctx, scope } = this.#state
    for (const peer of this.#state.catalog().signedPeers()) {
      if (ctx.isConnected(peer.id)) scope.spawn(this.#exchange.ping(peer.id).catch(() => {}))
    }
  }
}

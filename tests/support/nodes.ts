import { Network, type NetworkOptions } from '../../platform/node/index.ts'
import { randomBytes, toHex } from '../../src/primitives/bytes.ts'
import type { Partition } from './partition.ts'

export type Transport = 'memory' | 'quic' | 'tcp'

/** Listen addresses on loopback only, for the given transport. */
export function listenOn(transport: Transport): string[] {
  switch (transport) {
    case 'memory':
      return [`/memory/${toHex(randomBytes(8))}`]
    case 'quic':
      return ['/ip4/127.0.0.1/udp/0/quic-v1']
    case 'tcp':
      return ['/ip4/127.0.0.1/tcp/0']
  }
}

/** A fresh unique network name, so tests never see each other's nodes. */
export function uniqueNetwork(label = 'test'): string {
  return `${label}-${toHex(randomBytes(6))}`
}

/**
 * Tracks every node a test starts and closes them all in `closeAll()` (call it from afterEach), so no
 * test leaves a socket or timer behind.
 */
export class Nodes {
  readonly transport: Transport
  readonly network: string
  readonly #nodes: Network[] = []

  constructor(transport: Transport = 'memory', network = uniqueNetwork()) {
    this.transport = transport
    this.network = network
  }

  async create(options: Partial<NetworkOptions> & { partition?: Partition } = {}): Promise<Network> {
    const { partition, ...rest } = options
    const gate = partition?.gater()
    const net = await Network.create({
      network: this.network,
      listen: listenOn(this.transport),
      connectionGater: gate?.gater,
      ...rest,
      discovery: { departureWindowMs: 100, ...rest.discovery },
    })
    gate?.bind(net)
    this.#nodes.push(net)
    return net
  }

  /** Crashes a node: stops libp2p without any goodbye (no departure, no bond departures). */
  async crash(net: Network): Promise<void> {
    const i = this.#nodes.indexOf(net)
    if (i >= 0) this.#nodes.splice(i, 1)
    await net.libp2p.stop()
    // Timers and workers of the crashed node stop too (they would only fail against a stopped libp2p).
    await net.close().catch(() => {})
  }

  /** n nodes, each bootstrapped from the first. */
  async star(n: number, options: Partial<NetworkOptions> = {}): Promise<Network[]> {
    const first = await this.create(options)
    const rest = await Promise.all(
      Array.from({ length: n - 1 }, () => this.create({ ...options, bootstrap: first.addresses })),
    )
    return [first, ...rest]
  }

  get all(): readonly Network[] {
    return this.#nodes
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.#nodes.splice(0).map((n) => n.close()))
  }
}

/**
 * The Node side of the browser tests: the relay binary (a child process, as operators run it) and a
 * few full Node peers bootstrapped from it, reachable from browsers through the relay.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Network, type NetworkOptions } from '../../platform/node/index.ts'
import { RelayProcess } from '../../tests/relay/support.ts'
import { uniqueNetwork } from '../../tests/support/nodes.ts'
import { secs, within } from '../../tests/support/time.ts'

/** Loopback only, on free ports: TCP for Node peers, WebSockets and WebRTC-direct for browsers. */
const RELAY_LISTEN = ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws', '/ip4/127.0.0.1/udp/0/webrtc-direct']

export class Cluster {
  readonly network: string
  readonly nodes: Network[] = []
  relay!: RelayProcess
  readonly #dir: string

  private constructor(network: string, dir: string) {
    this.network = network
    this.#dir = dir
  }

  static async start(options: { nodes?: number } = {}): Promise<Cluster> {
    const cluster = new Cluster(uniqueNetwork('e2e'), await mkdtemp(join(tmpdir(), 'mosaik-e2e-')))
    await cluster.startRelay()
    for (let i = 0; i < (options.nodes ?? 0); i++) await cluster.addNode()
    return cluster
  }

  /** Starts the relay on free ports. */
  async startRelay(listen: readonly string[] = RELAY_LISTEN): Promise<RelayProcess> {
    this.relay = await RelayProcess.start([
      `--network=${this.network}`,
      `--listen=${listen.join(',')}`,
      `--identity=${join(this.#dir, 'relay.key')}`,
      '--http-port=off',
    ])
    return this.relay
  }

  /**
   * Stops the relay (SIGKILL, as a crash, or SIGTERM) and starts it again with the same identity on
   * the same ports, so the addresses peers hold stay valid (except WebRTC-direct's certhash).
   */
  async restartRelay(how: 'kill' | 'terminate' = 'kill'): Promise<RelayProcess> {
    const listen = this.relay.addresses.map((a) => a.replace(/\/(certhash|p2p)\/.*$/, ''))
    if (how === 'kill') {
      this.relay.child.kill('SIGKILL')
      await this.relay.exited
    } else await this.relay.terminate()
    return this.startRelay(listen)
  }

  /** The relay's WebSockets address: what a browser bootstraps from. */
  get wsAddress(): string {
    return this.relay.address('ws')
  }

  get webrtcDirectAddress(): string {
    return this.relay.address('webrtc-direct')
  }

  /** A full Node peer bootstrapped from the relay (it reserves a slot there, so browsers reach it). */
  async addNode(options: Partial<NetworkOptions> = {}): Promise<Network> {
    const net = await Network.create({
      network: this.network,
      // As the platform default, on loopback: a reservation on the relay, and WebRTC through it.
      listen: ['/ip4/127.0.0.1/tcp/0', '/p2p-circuit', '/webrtc'],
      bootstrap: [this.relay.address('tcp')],
      ...options,
    })
    this.nodes.push(net)
    await within(secs(20), reserved(net), 'the node holds a reservation on the relay')
    return net
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.splice(0).map((n) => n.close()))
    await this.relay?.terminate()
    await rm(this.#dir, { recursive: true, force: true })
  }
}

/** Resolves once the node advertises a relayed (`/p2p-circuit`) address. */
export function reserved(net: Network): Promise<void> {
  const has = () => net.addresses.some((a) => a.includes('/p2p-circuit'))
  if (has()) return Promise.resolve()
  return new Promise((resolve) => {
    const check = () => {
      if (!has()) return
      net.libp2p.removeEventListener('self:peer:update', check)
      resolve()
    }
    net.libp2p.addEventListener('self:peer:update', check)
  })
}

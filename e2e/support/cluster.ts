/**
 * The Node side of the browser tests, as operators run it: the relay binary and full Node peers, each
 * in its own OS process on loopback. Peers bootstrap from the relay, hold a reservation there and take
 * WebRTC, so pages reach them through the relay (see peer-process.ts for what they do on command).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Network, type NetworkOptions } from '../../platform/node/index.ts'
import { killAll, RelayProcess } from '../../tests/relay/support.ts'
import { uniqueNetwork } from '../../tests/support/nodes.ts'
import { NodeProcess } from '../../tests/support/processes.ts'
import { secs } from '../../tests/support/time.ts'
import { reserved } from './reserved.ts'

/** Loopback only, on free ports: TCP for Node peers, WebSockets and WebRTC-direct for browsers. */
const RELAY_LISTEN = ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws', '/ip4/127.0.0.1/udp/0/webrtc-direct']

export class Cluster {
  readonly network: string
  /** Full Node peers, each in its own process. */
  readonly peers: NodeProcess[] = []
  /** Full Node peers in this process (benchmarks, which need raw libp2p access). */
  readonly nodes: Network[] = []
  relay!: RelayProcess
  readonly #dir: string

  private constructor(network: string, dir: string) {
    this.network = network
    this.#dir = dir
  }

  static async start(options: { peers?: number } = {}): Promise<Cluster> {
    const cluster = new Cluster(uniqueNetwork('e2e'), await mkdtemp(join(tmpdir(), 'mosaik-e2e-')))
    try {
      await cluster.startRelay()
      await Promise.all(Array.from({ length: options.peers ?? 0 }, () => cluster.addPeer()))
    } catch (err) {
      await cluster.close()
      throw err
    }
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
   * the same ports, so the addresses peers hold stay valid (its WebRTC certhash is kept too).
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

  /** A full Node peer in its own process, ready once it holds a reservation on the relay. */
  async addPeer(options: { dataDir?: string } = {}): Promise<NodeProcess> {
    const peer = await NodeProcess.start(
      { network: this.network, bootstrap: [this.relay.address('tcp')], ...options },
      secs(30),
      'browserPeer',
    )
    this.peers.push(peer)
    return peer
  }

  /** A full Node peer in this process (as the platform default, on loopback). */
  async addNode(options: Partial<NetworkOptions> = {}): Promise<Network> {
    const net = await Network.create({
      network: this.network,
      listen: ['/ip4/127.0.0.1/tcp/0', '/p2p-circuit', '/webrtc'],
      bootstrap: [this.relay.address('tcp')],
      ...options,
    })
    this.nodes.push(net)
    await reserved(net, AbortSignal.timeout(secs(20)))
    return net
  }

  async close(): Promise<void> {
    await Promise.all(this.peers.splice(0).map((p) => p.terminate()))
    await Promise.all(this.nodes.splice(0).map((n) => n.close()))
    await this.relay?.terminate()
    killAll() // a relay that never got ready, or one left by a failed restart
    await rm(this.#dir, { recursive: true, force: true })
  }
}

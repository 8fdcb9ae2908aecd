import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { memory } from '@libp2p/memory'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { createLibp2p } from 'libp2p'
import { Network } from '../../platform/node/index.ts'
import { randomBytes, toHex } from '../../src/primitives/bytes.ts'
import { log, median, type Row } from './table.ts'

const memAddr = () => `/memory/${toHex(randomBytes(8))}`

/** Time for n mosaik nodes, all bootstrapped from the first, to reach a full catalog. */
async function catalogConvergence(n: number): Promise<{ converge: number; departure: number }> {
  const network = `bench-${toHex(randomBytes(4))}`
  const first = await Network.create({ network, listen: [memAddr()], discovery: { departureWindowMs: 50 } })
  const started = performance.now()
  const rest = await Promise.all(
    Array.from({ length: n - 1 }, () =>
      Network.create({
        network,
        listen: [memAddr()],
        bootstrap: first.addresses,
        discovery: { departureWindowMs: 50 },
      }),
    ),
  )
  const all = [first, ...rest]
  await Promise.all(all.map((node) => node.discovery.when.peers(n - 1)))
  const converge = performance.now() - started
  // Departures are measured in steady state: once gossipsub has grafted its meshes (two heartbeats).
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const leaving = rest[0]!
  const stay = all.filter((x) => x !== leaving)
  const gone = Promise.all(stay.map((x) => x.discovery.when.gone(leaving.peerId)))
  const t0 = performance.now()
  void leaving.close()
  await gone
  const departure = performance.now() - t0
  await Promise.all(all.map((x) => x.close()))
  return { converge, departure }
}

/**
 * Baseline: n raw libp2p nodes with the same transport and gossipsub config, all dialing the first;
 * time until every node has a gossipsub mesh peer on a topic, and one publish's time to reach all.
 */
async function gossipsubBaseline(n: number): Promise<{ mesh: number; propagate: number }> {
  const make = () =>
    createLibp2p({
      addresses: { listen: [memAddr()] },
      transports: [memory()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionManager: { inboundConnectionThreshold: Number.POSITIVE_INFINITY },
      services: {
        identify: identify(),
        pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false }),
      },
    })
  const topic = 'bench'
  const first = await make()
  first.services.pubsub.subscribe(topic)
  const started = performance.now()
  // Same topology as mosaik's neighbour maintenance: every node dials the first and a few random others.
  const rest: Awaited<ReturnType<typeof make>>[] = []
  await Promise.all(
    Array.from({ length: n - 1 }, async () => {
      const node = await make()
      node.services.pubsub.subscribe(topic)
      const earlier = [first, ...rest]
      rest.push(node)
      await node.dial(first.getMultiaddrs()[0]!)
      for (let i = 0; i < 5 && earlier.length > 1; i++) {
        const peer = earlier[1 + Math.floor(Math.random() * (earlier.length - 1))]!
        await node.dial(peer.getMultiaddrs()[0]!).catch(() => {})
      }
    }),
  )
  const all = [first, ...rest]
  await new Promise<void>((resolve) => {
    const check = () =>
      all.every((x) => x.services.pubsub.getSubscribers(topic).length > 0 && meshSize(x, topic) > 0)
        ? resolve()
        : setTimeout(check, 5)
    check()
  })
  const mesh = performance.now() - started
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const received = Promise.all(
    all
      .slice(0, -1)
      .map(
        (x) =>
          new Promise<void>((resolve) =>
            x.services.pubsub.addEventListener('message', () => resolve(), { once: true }),
          ),
      ),
  )
  const t0 = performance.now()
  await all[all.length - 1]!.services.pubsub.publish(topic, new Uint8Array([1]))
  await received
  const propagate = performance.now() - t0
  await Promise.all(all.map((x) => x.stop()))
  return { mesh, propagate }
}

// biome-ignore lint/suspicious/noExplicitAny: getMeshPeers exists on the implementation, not the interface
const meshSize = (node: any, topic: string): number => node.services.pubsub.getMeshPeers(topic).length

export async function benchDiscovery(): Promise<Row[]> {
  const rows: Row[] = []
  for (const n of [10, 50]) {
    const runs = n === 10 ? 3 : 2
    const ours: { converge: number; departure: number }[] = []
    const base: { mesh: number; propagate: number }[] = []
    for (let i = 0; i < runs; i++) {
      ours.push(await catalogConvergence(n))
      log(`discovery n=${n} run ${i}: ${JSON.stringify(ours.at(-1))}`)
      base.push(await gossipsubBaseline(n))
      log(`gossipsub n=${n} run ${i}: ${JSON.stringify(base.at(-1))}`)
    }
    rows.push({
      section: 'discovery (memory)',
      name: `${n} nodes reach a full catalog`,
      value: median(ours.map((r) => r.converge)),
      unit: 'ms',
      baselineName: 'raw libp2p+gossipsub: every node meshed',
      baseline: median(base.map((r) => r.mesh)),
    })
    rows.push({
      section: 'discovery (memory)',
      name: `departure seen by all ${n - 1} peers`,
      value: median(ours.map((r) => r.departure)),
      unit: 'ms',
      baselineName: 'raw gossipsub: one publish reaching all',
      baseline: median(base.map((r) => r.propagate)),
    })
  }
  return rows
}

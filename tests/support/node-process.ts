/**
 * A mosaik node in its own OS process, for discovery tests over real QUIC between processes.
 * Usage: node tests/support/node-process.ts '<json options>' (see child.ts for the protocol).
 */
import { Network } from '../../platform/node/index.ts'
import { serve, timeout } from './child.ts'

const options = JSON.parse(process.argv[2] ?? '{}')
const net = await Network.create({
  network: options.network,
  tags: options.tags ?? [],
  bootstrap: options.bootstrap ?? [],
  listen: ['/ip4/127.0.0.1/udp/0/quic-v1'],
  discovery: options.discovery ?? {},
})

await serve(
  { peerId: net.peerId, addresses: net.addresses },
  {
    async peers() {
      return net.discovery
        .catalog()
        .peers()
        .map((p) => p.id)
    },
    async awaitPeers(args) {
      await net.discovery.when.peers(Number(args.n), () => true, timeout(args))
      return net.discovery
        .catalog()
        .peers()
        .map((p) => p.id)
    },
    async awaitGone(args) {
      await net.discovery.when.gone(String(args.peer), timeout(args))
      return true
    },
    async addTags(args) {
      await net.discovery.addTags(...(args.tags as string[]))
      return true
    },
  },
  () => net.close(),
)

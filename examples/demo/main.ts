/**
 * The demo: a small cluster on this machine that finds itself with nothing but a network name, one
 * bootstrap address and role tags. Run it with `npm start`; stop it with Ctrl-C.
 *
 * Flags: --nodes <n> (default 3), --once (exit after the cluster has converged).
 */
import { Network } from '../../platform/node/index.ts'

const args = process.argv.slice(2)
const once = args.includes('--once')
const count = Number(args[args.indexOf('--nodes') + 1]) || 3
const roles = ['role:bootstrap', 'role:indexer', 'role:api', 'role:worker']

const bootstrap = await Network.create({
  network: 'mosaik-demo',
  tags: [roles[0]!],
  listen: ['/ip4/127.0.0.1/udp/0/quic-v1'],
})
console.log(`bootstrap node ${bootstrap.peerId} listening on ${bootstrap.addresses.join(', ')}`)

const others = await Promise.all(
  Array.from({ length: count - 1 }, (_, i) =>
    Network.create({
      network: 'mosaik-demo',
      tags: [roles[1 + (i % (roles.length - 1))]!],
      bootstrap: bootstrap.addresses,
      listen: ['/ip4/127.0.0.1/udp/0/quic-v1'],
    }),
  ),
)
const nodes = [bootstrap, ...others]
const started = performance.now()
await Promise.all(
  nodes.map((n) => n.discovery.when.peers(count - 1, () => true, { signal: AbortSignal.timeout(30_000) })),
)
console.log(`\n${count} nodes converged in ${(performance.now() - started).toFixed(0)} ms\n`)

for (const node of nodes) {
  const roleOf = (id: string) => {
    const peer = id === node.peerId ? node.discovery.catalog().local : node.discovery.catalog().get(id)
    return roles.find((r) => peer?.tags.has(r)) ?? '?'
  }
  console.log(`${node.peerId.slice(-8)} (${roleOf(node.peerId)}) sees:`)
  for (const peer of node.discovery.catalog().peers()) {
    console.log(`  ${peer.id.slice(-8)}  ${roleOf(peer.id).padEnd(15)} ${peer.addresses[0] ?? ''}`)
  }
}

for (const node of nodes) {
  node.discovery.on('peer:discovered', (p) =>
    console.log(`${node.peerId.slice(-8)}: discovered ${p.id.slice(-8)}`),
  )
  node.discovery.on('peer:departed', (d) =>
    console.log(`${node.peerId.slice(-8)}: ${d.id.slice(-8)} ${d.reason}`),
  )
}

async function shutdown(): Promise<void> {
  await Promise.all(nodes.map((n) => n.close()))
  process.exit(0)
}
if (once) await shutdown()
else {
  console.log('\nrunning; press Ctrl-C to stop')
  process.on('SIGINT', () => void shutdown())
  process.on('SIGTERM', () => void shutdown())
}

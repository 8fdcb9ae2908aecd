/**
 * Nodes in separate OS processes on one machine, joined by one bootstrap address.
 *
 * The parent process is `node-1` (a seed: no bootstrap). It forks this same file twice with
 * `--child --name node-N --bootstrap <its address>`; each child starts a node, awaits the condition
 * "the catalog shows the two other nodes" (`discovery.when.peers(2)`) and prints whom it sees. The
 * children bootstrap from node-1 only, yet see each other: the catalog sync and gossip teach them the
 * whole network. When all three have seen each other, the parent tells the children to stop (over the
 * IPC channel), they close their nodes (announcing their departure) and everyone exits 0.
 *
 * Run: npx node examples/processes.ts      (exits by itself in a few seconds)
 * By hand, in separate terminals: run one node, then others with its printed address:
 *   npx node examples/processes.ts --child --name a
 *   npx node examples/processes.ts --child --name b --bootstrap /ip4/127.0.0.1/tcp/…/p2p/12D3…
 * (a child started by hand stops on Ctrl-C)
 */
import { fork } from 'node:child_process'
import { parseArgs } from 'node:util'
import { Network, type PeerInfo } from '../platform/node/index.ts'

const NETWORK = 'examples/processes'
const { values: flags } = parseArgs({
  options: {
    child: { type: 'boolean', default: false },
    name: { type: 'string', default: 'node-1' },
    bootstrap: { type: 'string', default: '' },
  },
})
const name = flags.name
const log = (msg: string) => console.log(`${name} (pid ${process.pid}): ${msg}`)
const nameOf = (p: PeerInfo) =>
  p.tags.has('name:node-1')
    ? 'node-1'
    : p.tags.has('name:node-2')
      ? 'node-2'
      : p.tags.has('name:node-3')
        ? 'node-3'
        : p.id.slice(-6)

const net = await Network.create({
  network: NETWORK,
  tags: [`name:${name}`],
  listen: ['/ip4/127.0.0.1/tcp/0'],
  bootstrap: flags.bootstrap ? [flags.bootstrap] : [],
})
log(`up at ${net.addresses[0]}`)
const signal = AbortSignal.timeout(15_000)

if (flags.child) {
  // A child: stop on the parent's word (or its death: the IPC channel closes), or on Ctrl-C.
  const stop = async () => {
    await net.close()
    process.exit(0)
  }
  process.once('disconnect', stop)
  process.once('SIGINT', stop)
  process.once('message', stop)
  const catalog = await net.discovery.when.peers(2, undefined, { signal })
  log(`sees ${catalog.peers().map(nameOf).sort().join(' and ')}`)
  process.send?.('seen')
} else {
  // The parent: fork two children of this same file, bootstrapping from this node's address.
  const children = ['node-2', 'node-3'].map((child) =>
    fork(process.argv[1]!, ['--child', '--name', child, '--bootstrap', net.addresses[0]!], {
      stdio: 'inherit',
    }),
  )
  const seen = children.map(
    (c) =>
      new Promise<void>((resolve, reject) => {
        c.once('message', () => resolve())
        c.once('exit', (code) => reject(new Error(`a child exited with ${code} before seeing its peers`)))
      }),
  )
  const exited = children.map((c) => new Promise((resolve) => c.once('exit', resolve)))
  try {
    const catalog = await net.discovery.when.peers(2, undefined, { signal })
    log(`sees ${catalog.peers().map(nameOf).sort().join(' and ')}`)
    await Promise.all(seen)
    log('all 3 processes see each other; stopping the children')
  } finally {
    for (const c of children) if (c.connected) c.send('stop')
  }
  const codes = await Promise.all(exited)
  await net.close()
  log(`children exited with ${codes.join(', ')}`)
  process.exitCode = codes.every((c) => c === 0) ? 0 : 1
}

/**
 * The demo: a small cluster on this machine that organizes itself from nothing but a network name, one
 * bootstrap address and role tags, then uses all four primitives:
 * - discovery: every node finds every other and prints its catalog;
 * - streams: the indexer produces a stream of ticks that every other node consumes;
 * - groups: all nodes run a replicated counter and elect a leader without any configuration;
 * - collections: every node writes its score into a replicated leaderboard Map.
 *
 * Run it with `npm start`; stop it with Ctrl-C. Flags: --nodes <n> (default 3), --once (exit after one
 * round), --data <dir> (persist group state under <dir>/<node>; restarts keep it).
 */
import { collections, defineStream, GroupKey, Network, type StateMachine } from '../../platform/node/index.ts'

const args = process.argv.slice(2)
const once = args.includes('--once')
const count = Math.max(2, Number(args[args.indexOf('--nodes') + 1]) || 3)
const dataRoot = args.includes('--data') ? args[args.indexOf('--data') + 1] : undefined
const roles = ['role:bootstrap', 'role:indexer', 'role:api', 'role:worker']
const short = (id: string) => id.slice(-6)
const log = (who: string, msg: string) => console.log(`${who.padEnd(15)} ${msg}`)

// ---- discovery: one bootstrap address is all the others need -----------------------------------------

const listen = ['/ip4/127.0.0.1/udp/0/quic-v1']
const bootstrap = await Network.create({
  network: 'mosaik-demo',
  tags: [roles[0]!],
  listen,
  dataDir: dataRoot && `${dataRoot}/node-0`,
})
const others = await Promise.all(
  Array.from({ length: count - 1 }, (_, i) =>
    Network.create({
      network: 'mosaik-demo',
      tags: [roles[1 + (i % (roles.length - 1))]!],
      bootstrap: bootstrap.addresses,
      listen,
      dataDir: dataRoot && `${dataRoot}/node-${i + 1}`,
    }),
  ),
)
const nodes = [bootstrap, ...others]
const name = (net: Network) => {
  const tags = net.discovery.catalog().local.tags
  return `${roles.find((r) => tags.has(r))?.slice(5) ?? '?'}@${short(net.peerId)}`
}
const started = performance.now()
const signal = () => AbortSignal.timeout(30_000)
await Promise.all(nodes.map((n) => n.discovery.when.peers(count - 1, () => true, { signal: signal() })))
console.log(`\n${count} nodes found each other in ${(performance.now() - started).toFixed(0)} ms\n`)
for (const node of nodes) {
  const peers = node.discovery.catalog().peers()
  log(
    name(node),
    `sees ${peers.map((p) => `${roles.find((r) => p.tags.has(r))?.slice(5)}@${short(p.id)}`).join(', ')}`,
  )
}

// ---- streams: the indexer publishes, everyone else subscribes -----------------------------------------

interface Tick {
  seq: number
  at: number
}
const Ticks = defineStream<Tick>('demo/ticks')
const indexer = nodes[1]!
const producer = indexer.streams.producer(Ticks, { onlineWhen: (c) => c.minimumOf(count - 1) })
const consumers = nodes
  .filter((n) => n !== indexer)
  .map((n) => ({ node: n, consumer: n.streams.consumer(Ticks) }))
await producer.when.online().wait({ signal: signal() })
log(name(indexer), `producing demo/ticks to ${producer.consumers().length} consumers`)
for (let seq = 0; seq < 100; seq++) await producer.send({ seq, at: Date.now() })
await Promise.all(
  consumers.map(async ({ node, consumer }) => {
    let received = 0
    for await (const tick of consumer) {
      received++
      if (tick.seq === 99) break
    }
    log(name(node), `received ${received} ticks in order`)
  }),
)

// ---- groups: a replicated counter with an elected leader ----------------------------------------------

class Counter implements StateMachine<{ add: number }, null, number> {
  readonly signature = 'demo/counter/v1'
  value = 0
  apply(cmd: { add: number }): void {
    this.value += cmd.add
  }
  query(): number {
    return this.value
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.value))
  }
  restore(bytes: Uint8Array): void {
    this.value = bytes.length === 0 ? 0 : Number(new TextDecoder().decode(bytes))
  }
}
const groups = await Promise.all(
  nodes.map((n) => n.groups.join({ key: GroupKey.fromSecret('demo-counter'), stateMachine: new Counter() })),
)
const leader = await groups[0]!.when.leaderElected({ signal: signal() })
await Promise.all(groups.map((g) => g.when.online({ signal: signal() })))
log('group', `leader ${short(leader)}, voters ${groups[0]!.voters.map(short).join(', ')}`)
const last = Math.max(...(await Promise.all(groups.map((g, i) => g.execute({ add: i + 1 })))))
await Promise.all(groups.map((g) => g.when.committed().reaches(last, { signal: signal() })))
for (const [i, g] of groups.entries()) {
  const { result } = await g.query(null, 'strong')
  log(name(nodes[i]!), `counter = ${result} (strong read at index ${g.committed})`)
}

// ---- collections: a replicated leaderboard every node writes ------------------------------------------

const boards = nodes.map((n) => collections.Map.writer<string, number>(n, 'demo/leaderboard'))
await Promise.all(boards.map((b) => b.when.online({ signal: signal() })))
const versions = await Promise.all(boards.map((b, i) => b.set(name(nodes[i]!), 100 * (i + 1))))
await Promise.all(boards.map((b) => b.when.reaches(Math.max(...versions), { signal: signal() })))
const board = [...boards[0]!.entries()].sort((a, b) => b[1] - a[1])
log('leaderboard', board.map(([who, score]) => `${who}=${score}`).join('  '))
if (!boards.every((b) => b.size === count)) throw new Error('the leaderboards differ')

// ---- keep running, or stop ----------------------------------------------------------------------------

for (const node of nodes) {
  node.discovery.on('peer:discovered', (p) => log(name(node), `discovered ${short(p.id)}`))
  node.discovery.on('peer:departed', (d) => log(name(node), `${short(d.id)} ${d.reason}`))
}

async function shutdown(): Promise<void> {
  await Promise.all(nodes.map((n) => n.close()))
  console.log('\nall nodes closed')
  process.exit(0)
}
if (once) await shutdown()
else {
  console.log('\nrunning; the indexer keeps producing. Press Ctrl-C to stop.')
  let seq = 100
  const timer = setInterval(() => void producer.send({ seq: seq++, at: Date.now() }).catch(() => {}), 1000)
  const stop = () => {
    clearInterval(timer)
    void shutdown()
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

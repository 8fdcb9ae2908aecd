/**
 * One full node of the demo, as its own process (the start script, main.ts, forks three or more).
 * It bootstraps from the relay, listens on QUIC (TCP where QUIC is unavailable), reserves a slot on
 * the relay so browsers reach it, and then:
 * - joins the replicated counter group and adds 1 every second;
 * - writes its status under its name into the `demo/status` Map, and jobs into the `demo/jobs`
 *   PriorityQueue (a `role:worker` node takes the highest-priority job every second);
 * - with `--produce`, streams synthetic prices at `--rate` datums/s; with `--consume`, consumes them;
 * - streams what it sees of its connections (`demo/links`), from which the dashboard draws the graph.
 *
 * It reports to the start script over the IPC channel (`NodeReport`) and exits when that channel
 * closes, so no node outlives the script. SIGINT / SIGTERM close it cleanly.
 *
 * Flags: --name <name> --bootstrap <multiaddr,...> --data <dir> [--tags a,b] [--produce] [--consume]
 * [--rate <datums/s>] [--network <name>].
 */
import { parseArgs } from 'node:util'
import { collections, GroupKey, Network, quicAvailable } from '../../platform/node/index.ts'
import {
  COUNTER_SECRET,
  Counter,
  JOBS_QUEUE,
  type Job,
  type Link,
  LinksStream,
  linkKind,
  NETWORK,
  type NodeReport,
  type NodeStatus,
  Prices,
  STATUS_MAP,
  SYMBOLS,
} from './shared.ts'

const { values: flags } = parseArgs({
  options: {
    name: { type: 'string', default: 'node' },
    network: { type: 'string', default: NETWORK },
    bootstrap: { type: 'string', default: '' },
    data: { type: 'string' },
    tags: { type: 'string', default: '' },
    produce: { type: 'boolean', default: false },
    consume: { type: 'boolean', default: false },
    rate: { type: 'string', default: '300' },
  },
})
const name = flags.name
const tags = [`node:${name}`, ...flags.tags.split(',').filter(Boolean)]
const report = (r: NodeReport) => {
  if (process.connected) process.send?.(r)
}
const log = (msg: string) => console.log(`${name.padEnd(8)} ${msg}`)

const quic = await quicAvailable()
const net = await Network.create({
  network: flags.network,
  tags,
  bootstrap: flags.bootstrap.split(',').filter(Boolean),
  // QUIC between nodes (TCP where QUIC is unavailable), a reservation on the relay (/p2p-circuit) so
  // browsers can dial us through it, and WebRTC signalled over that.
  listen: [quic ? '/ip4/127.0.0.1/udp/0/quic-v1' : '/ip4/127.0.0.1/tcp/0', '/p2p-circuit', '/webrtc'],
  ...(flags.data ? { dataDir: flags.data } : {}),
})
log(`up as ${net.peerId} over ${quic ? 'QUIC' : 'TCP'} (tags ${tags.join(', ')})`)

const timers: ReturnType<typeof setInterval>[] = []
const every = (ms: number, fn: () => void) => timers.push(setInterval(fn, ms))
const ignore = () => {}
/** Runs a periodic write unless the previous one is still pending (no pile-up while offline). */
const pending = new Set<string>()
const once = (what: string, write: () => Promise<unknown>) => {
  if (pending.has(what)) return
  pending.add(what)
  write()
    .catch(ignore)
    .finally(() => pending.delete(what))
}

// ---- the replicated counter ---------------------------------------------------------------------------

const group = await net.groups.join({ key: GroupKey.fromSecret(COUNTER_SECRET), stateMachine: new Counter() })
every(1000, () => {
  once('counter', () => group.execute({ add: 1 }))
})

// ---- collections: a status Map and a job PriorityQueue ------------------------------------------------

const statusMap = collections.Map.writer<string, NodeStatus>(net, STATUS_MAP)
const jobs = collections.PriorityQueue.writer<number, string, Job>(net, JOBS_QUEUE)
let beat = 0
let jobSeq = 0
every(2000, () => {
  once('status', () =>
    statusMap.set(name, {
      peerId: net.peerId,
      pid: process.pid,
      tags,
      counter: group.stateMachine.value,
      prices: consumed + produced,
      beat: ++beat,
      at: Date.now(),
    }),
  )
})
every(1500, () => {
  const priority = Math.floor(Math.random() * 100)
  once('insert', () => jobs.insert(priority, `${name}-${++jobSeq}`, { by: name, at: Date.now() }))
  const min = jobs.size > 12 ? jobs.getMin() : undefined
  if (min) once('trim', () => jobs.remove(min.key))
})
if (tags.includes('role:worker'))
  every(1000, () => {
    const max = jobs.getMax()
    if (max) once('take', () => jobs.remove(max.key))
  })

// ---- streams: prices, and the links this node sees ----------------------------------------------------

let produced = 0
let consumed = 0
if (flags.produce) {
  const producer = net.streams.producer(Prices, { maxConsumers: 32 })
  const rate = Math.max(1, Number(flags.rate) || 300)
  const prices = new Map<string, number>(SYMBOLS.map((s, i) => [s, 100 * (i + 1)]))
  let seq = 0
  const tickMs = 20
  let owed = 0
  every(tickMs, () => {
    owed += (rate * tickMs) / 1000
    for (; owed >= 1; owed--) {
      const symbol = SYMBOLS[seq % SYMBOLS.length]!
      const price = Math.max(1, prices.get(symbol)! * (1 + (Math.random() - 0.5) * 0.004))
      prices.set(symbol, price)
      try {
        producer.trySend({ seq: seq++, at: Date.now(), symbol, price })
        produced++
      } catch {
        // offline (nobody subscribed yet) or a full queue: a live feed drops, it does not wait
      }
    }
  })
}
if (flags.consume) {
  const consumer = net.streams.consumer(Prices)
  void (async () => {
    for await (const _ of consumer) consumed++
  })().catch(ignore)
}

const links = net.streams.producer(LinksStream)
let linkTicks = 0
every(1000, () => {
  // RTT: discovery measures it when it pings; ping the peers we are connected to every few seconds.
  if (linkTicks++ % 3 === 0)
    for (const peer of new Set(net.libp2p.getConnections().map((c) => c.remotePeer.toString())))
      net.discovery.ping(peer, { signal: AbortSignal.timeout(2000) }).catch(ignore)
  const rtts = new Map(
    net.discovery
      .catalog()
      .peers()
      .map((p) => [p.id, p.rtt]),
  )
  const seen: Link[] = net.libp2p.getConnections().map((c) => {
    const peer = c.remotePeer.toString()
    return { peer, ...linkKind(c.remoteAddr.toString()), rtt: rtts.get(peer) }
  })
  try {
    links.trySend({ name, peerId: net.peerId, at: Date.now(), links: seen })
  } catch {
    // nobody is watching
  }
})

// ---- reporting to the start script --------------------------------------------------------------------

report({ type: 'ready', name, peerId: net.peerId, pid: process.pid, addresses: net.addresses })
every(250, () => {
  const s = group.status
  report({
    type: 'status',
    name,
    peerId: net.peerId,
    role: s.role,
    leader: s.leader,
    term: s.term,
    applied: group.applied,
    counter: group.stateMachine.value,
    voters: s.voters,
    consumed,
    produced,
    peers: net.discovery.catalog().peers().length,
    statusEntries: statusMap.size,
    jobs: jobs.size,
  })
})

// ---- stopping -----------------------------------------------------------------------------------------

let stopping = false
async function stop(why: string): Promise<void> {
  if (stopping) return
  stopping = true
  for (const t of timers) clearInterval(t)
  const force = setTimeout(() => process.exit(1), 5000)
  force.unref()
  await net.close().catch(ignore)
  log(`closed (${why})`)
  process.exit(0)
}
process.on('SIGINT', () => void stop('SIGINT'))
process.on('SIGTERM', () => void stop('SIGTERM'))
// The start script went away (even by SIGKILL): do not outlive it.
process.on('disconnect', () => void stop('the start script exited'))

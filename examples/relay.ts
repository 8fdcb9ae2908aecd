/**
 * Peers that have no address of their own, meeting through the mosaik relay.
 *
 * 1. Start a relay on loopback (in a checkout; `npx mosaik-relay` from the published package):
 *      npx node relay/main.ts --network demo --listen /ip4/127.0.0.1/tcp/4001,/ip4/127.0.0.1/tcp/4002/ws \
 *        --identity /tmp/relay.key --http-port off
 *    It prints "peers bootstrap from:" and "browsers dial:" addresses (…/p2p/12D3…).
 * 2. Run this file with the relay's TCP address:
 *      npx node examples/relay.ts --network demo --relay /ip4/127.0.0.1/tcp/4001/p2p/12D3…
 *    It starts two peers, `home` and `visitor`, that bootstrap from the relay and listen *only*
 *    through it (`listen: ['<relay>/p2p-circuit']`: a reservation, no socket of their own). `home`
 *    produces a `relay/ticks` stream; `visitor` finds it in its catalog, dials `home` through the relay
 *    and consumes it. With `--once` it exits after three ticks; otherwise `home` ticks every second
 *    until Ctrl-C, for pages to watch.
 * 3. A page joins the same way, with the relay's `/ws` address (browsers refuse loopback unless
 *    allowed, so development pages set `allowPrivateAddresses`); bundle it like examples/map-browser:
 *      import { defineStream, Network } from 'mosaik'   // the browser build
 *      const net = await Network.create({ network: 'demo', bootstrap: ['/ip4/127.0.0.1/tcp/4002/ws/p2p/12D3…'],
 *                                         allowPrivateAddresses: true })
 *      for await (const t of net.streams.consumer(defineStream<{ n: number }>('relay/ticks'))) console.log(t)
 */
import { parseArgs } from 'node:util'
import { defineStream, Network } from '../platform/node/index.ts'

const { values: flags } = parseArgs({
  options: {
    network: { type: 'string', default: 'demo' },
    relay: { type: 'string' },
    once: { type: 'boolean', default: false },
  },
})
if (!flags.relay) {
  console.error(
    'usage: npx node examples/relay.ts --relay <relay multiaddr with /p2p/…> [--network demo] [--once]',
  )
  process.exit(2)
}
const relay = flags.relay
const Ticks = defineStream<{ n: number; at: number }>('relay/ticks')
const signal = AbortSignal.timeout(20_000) // every wait below gives up after 20 s
const short = (id: string) => `…${id.slice(-6)}`

const peer = () =>
  Network.create({ network: flags.network, bootstrap: [relay], listen: [`${relay}/p2p-circuit`] })
const [home, visitor] = await Promise.all([peer(), peer()])

// The relay is a discovery peer like any other, tagged role:relay.
const catalog = await home.discovery.when.peers(1, (p) => p.tags.has('role:relay'), { signal })
const relayId = catalog.peers().find((p) => p.tags.has('role:relay'))!.id
console.log(`home ${short(home.peerId)} sees the relay ${short(relayId)} (role:relay)`)
// Once the relay grants a reservation, the relayed address is the only one the peer advertises.
const relayed = (net: Network) => net.addresses.find((a) => a.includes('/p2p-circuit/'))
await new Promise<void>((resolve, reject) => {
  const check = () => relayed(home) && resolve()
  home.libp2p.addEventListener('self:peer:update', check)
  signal.addEventListener('abort', () => reject(new Error('no reservation on the relay')), { once: true })
  check()
})
console.log(`home is reachable at ${relayed(home)}`)

const producer = home.streams.producer(Ticks)
const consumer = visitor.streams.consumer(Ticks)
await producer.when.subscribed().minimumOf(1).wait({ signal })
const path = home.libp2p.getConnections(visitor.libp2p.peerId).map((c) => c.remoteAddr.toString())
console.log(
  `visitor ${short(visitor.peerId)} subscribed through ${path.some((a) => a.includes('/p2p-circuit')) ? 'the relay' : 'a direct connection'}`,
)

let n = 0
const tick = () => producer.send({ n: ++n, at: Date.now() }, { signal })
if (flags.once) {
  for (let i = 0; i < 3; i++) await tick()
  for (let i = 0; i < 3; i++) console.log(`visitor got tick ${(await consumer.recv({ signal })).n}`)
  await Promise.all([home.close(), visitor.close()])
  console.log('done')
} else {
  const timer = setInterval(() => void tick().catch(() => {}), 1000)
  void (async () => {
    for await (const t of consumer) console.log(`visitor got tick ${t.n}`)
  })().catch(() => {})
  process.once('SIGINT', async () => {
    clearInterval(timer)
    await Promise.all([home.close(), visitor.close()])
    process.exit(0)
  })
}

/**
 * Who gets a stream's data: a producer admits consumers by a predicate on their signed peer entry
 * (`require`), and goes online only once enough of the right consumers are subscribed (`onlineWhen`).
 *
 * - `require: p => p.tags.has('team:blue')`: only team:blue nodes may subscribe; others are refused
 *   (NotAllowed, 10403) at the handshake, and a consumer that stops passing is closed.
 * - `onlineWhen: c => c.minimumOf(2).withTags('dashboard')`: `send` waits until two subscribed
 *   consumers carry the `dashboard` tag; an admitted consumer without it does not count, but gets data.
 *
 * Four nodes on loopback: the producer, `logger` (team:blue), `intruder` (team:red), then `dash-a` and
 * `dash-b` (team:blue + dashboard). Once both dashboards are in, three ticks go out.
 *
 * Run: npx node examples/stream-predicates.ts      (exits by itself in a few seconds)
 */
import { type Consumer, defineStream, Network } from '../platform/node/index.ts'

const NETWORK = 'examples/stream-predicates'
const LISTEN = ['/ip4/127.0.0.1/tcp/0']
const Ticks = defineStream<{ n: number }>('examples/ticks')
const signal = AbortSignal.timeout(15_000) // every wait below gives up after 15 s

const source = await Network.create({ network: NETWORK, tags: ['role:source'], listen: LISTEN })
const producer = source.streams.producer(Ticks, {
  require: (peer) => peer.tags.has('team:blue'),
  onlineWhen: (c) => c.minimumOf(2).withTags('dashboard'),
})
const node = (tags: string[]) =>
  Network.create({ network: NETWORK, tags, listen: LISTEN, bootstrap: source.addresses })
const status = () => {
  const dashboards = producer.when.subscribed().withTags('dashboard').count
  return `${producer.consumers().length} subscribed, ${dashboards} dashboard(s), online: ${producer.isOnline}`
}

// 1. A team:blue logger is admitted; a team:red intruder is refused at the handshake.
const [logger, intruder] = await Promise.all([node(['team:blue']), node(['team:red'])])
const refused = new Promise<string>((resolve) =>
  producer.on('consumer:rejected', (e) => {
    if (e.peerId === intruder.peerId) resolve(e.reason)
  }),
)
const consumers: Record<string, Consumer<{ n: number }>> = {
  logger: logger.streams.consumer(Ticks),
  intruder: intruder.streams.consumer(Ticks),
}
await producer.when.subscribed().minimumOf(1).wait({ signal })
console.log(`intruder refused: ${await refused}`)
console.log(`logger subscribed: ${status()}`)

// 2. Two dashboards join; the producer goes online once both are subscribed.
const dashes = await Promise.all([node(['team:blue', 'dashboard']), node(['team:blue', 'dashboard'])])
consumers['dash-a'] = dashes[0]!.streams.consumer(Ticks)
await producer.when.subscribed().withTags('dashboard').minimumOf(1).wait({ signal })
console.log(`dash-a subscribed: ${status()}`)
consumers['dash-b'] = dashes[1]!.streams.consumer(Ticks)
await producer.when.online().wait({ signal })
console.log(`dash-b subscribed: ${status()}`)

// 3. Three ticks: each admitted consumer gets all three, in order; the intruder gets nothing.
for (let n = 1; n <= 3; n++) await producer.send({ n }, { signal })
for (const name of ['logger', 'dash-a', 'dash-b']) {
  const got = []
  for (let i = 0; i < 3; i++) got.push((await consumers[name]!.recv({ signal })).n)
  console.log(`${name} got ticks ${got.join(', ')}`)
}
console.log(`intruder got ${consumers.intruder!.stats.datums} ticks`)

await Promise.all([...dashes, logger, intruder, source].map((n) => n.close()))
console.log('done')

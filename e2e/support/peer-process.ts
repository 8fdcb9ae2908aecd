/**
 * A full Node peer in its own OS process for the browser tests, driven over stdin/stdout (see
 * tests/support/child.ts): it bootstraps from the relay over TCP, holds a reservation there and takes
 * WebRTC (the platform's defaults, on loopback), and produces streams and writes Maps on command.
 */
import { collections, defineStream, Network, type Producer } from '../../platform/node/index.ts'
import { serve, timeout } from '../../tests/support/child.ts'
import { reserved } from './reserved.ts'

const options = JSON.parse(process.argv[2] ?? '{}')
const net = await Network.create({
  network: options.network,
  bootstrap: options.bootstrap ?? [],
  listen: ['/ip4/127.0.0.1/tcp/0', '/p2p-circuit', '/webrtc'],
  dataDir: options.dataDir,
  discovery: { departureWindowMs: 50 },
})
await reserved(net, AbortSignal.timeout(20_000))

const producers = new Map<string, Producer<{ seq: number }>>()
const producer = (name: string) => {
  let p = producers.get(name)
  if (!p) {
    p = net.streams.producer(defineStream<{ seq: number }>(name))
    producers.set(name, p)
  }
  return p
}
const maps = new Map<string, ReturnType<typeof collections.Map.writer<string, number>>>()
const map = (store: string) => {
  let m = maps.get(store)
  if (!m) {
    m = collections.Map.writer<string, number>(net, store)
    maps.set(store, m)
  }
  return m
}
let ticking: { stop: boolean; seq: number; done: Promise<void> } | undefined

await serve(
  { peerId: net.peerId, addresses: net.addresses },
  {
    async awaitSubscribed(args) {
      await producer(String(args.stream)).when.subscribed().wait(timeout(args))
      return true
    },
    /** Sends `count` datums `{ seq }` numbered from `from`, once a consumer subscribed. */
    async produce(args) {
      const p = producer(String(args.stream))
      await p.when.subscribed().wait(timeout(args))
      const from = Number(args.from ?? 0)
      for (let seq = from; seq < from + Number(args.count); seq++) await p.send({ seq })
      return true
    },
    /** Sends `{ seq }` every `intervalMs` until `stopTicking`, which returns the last seq sent. */
    async startTicking(args) {
      const p = producer(String(args.stream))
      const state = { stop: false, seq: -1, done: Promise.resolve() }
      state.done = (async () => {
        while (!state.stop) {
          await p.send({ seq: state.seq + 1 })
          state.seq++
          await new Promise((r) => setTimeout(r, Number(args.intervalMs ?? 10)))
        }
      })()
      ticking = state
      return true
    },
    async sentSoFar() {
      return ticking?.seq ?? -1
    },
    async stopTicking() {
      if (!ticking) return -1
      ticking.stop = true
      await ticking.done
      return ticking.seq
    },
    async mapOnline(args) {
      await map(String(args.store)).when.online(timeout(args))
      return true
    },
    async mapSet(args) {
      return map(String(args.store)).set(String(args.key), Number(args.value))
    },
    /** The value of `key` once this writer's replica reached `version`. */
    async mapGet(args) {
      const m = map(String(args.store))
      await m.when.reaches(Number(args.version), timeout(args))
      return m.get(String(args.key)) ?? null
    },
  },
  () => net.close(),
)

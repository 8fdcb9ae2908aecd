/**
 * A mosaik node in its own OS process that produces or consumes a stream, for tests over real QUIC
 * between processes.
 *
 * As a script: `node tests/support/streams-process.ts '<json options>'` (see child.ts for the protocol);
 * the test side is `NodeProcess.start(options, timeoutMs, 'streams')`. SIGTERM closes the node
 * gracefully; SIGKILL is a crash.
 *
 * Datums are `{ run, seq }`: `run` names the producer process's run, `seq` counts from 0 in it, so a
 * consumer can tell runs apart and check that each arrives in order.
 */
import { fileURLToPath } from 'node:url'
import { type Commands, serve } from './child.ts'

export interface Tick {
  run: string
  seq: number
}

export interface StreamsProcessOptions {
  network: string
  bootstrap?: string[]
  /** Hex of a protobuf-encoded Ed25519 key: a restarted process keeps its peer id. */
  privateKey?: string
  discovery?: Record<string, unknown>
  streams?: Record<string, unknown>
}

// ---- the child -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { privateKeyFromProtobuf } = await import('@libp2p/crypto/keys')
  const { defineStream, Network } = await import('../../platform/node/index.ts')
  const { fromHex, randomBytes, toHex } = await import('../../src/primitives/bytes.ts')
  type Producer = import('../../platform/node/index.ts').Producer<Tick>
  type Consumer = import('../../platform/node/index.ts').Consumer<Tick>

  const options = JSON.parse(process.argv[2] ?? '{}') as StreamsProcessOptions
  const net = await Network.create({
    network: options.network,
    bootstrap: options.bootstrap ?? [],
    listen: ['/ip4/127.0.0.1/udp/0/quic-v1'],
    privateKey: options.privateKey ? privateKeyFromProtobuf(fromHex(options.privateKey)!) : undefined,
    discovery: options.discovery ?? {},
    streams: options.streams ?? {},
  })

  const run = toHex(randomBytes(4))
  const producers = new Map<string, Producer>()
  const consumers = new Map<string, { consumer: Consumer; byRun: Record<string, number>; disorder: number }>()

  // Waiters re-checked on every tick received, so waits need no polling.
  const waiters = new Set<() => void>()
  const until = (check: () => boolean, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      if (check()) return resolve()
      const waiter = () => {
        if (!check()) return
        waiters.delete(waiter)
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        waiters.delete(waiter)
        reject(new Error('timed out'))
      }, timeoutMs)
      waiters.add(waiter)
    })

  const commands: Commands = {
    /** Produces ticks of this run every `intervalMs`, waiting while offline. */
    async produce(args) {
      const p = net.streams.producer(defineStream<Tick>(String(args.stream)))
      producers.set(String(args.stream), p)
      void (async () => {
        for (let seq = 0; !p.isClosed; seq++) {
          await p.send({ run, seq }).catch(() => {})
          await new Promise((r) => setTimeout(r, Number(args.intervalMs ?? 5)))
        }
      })()
      return run
    },
    async awaitSubscribed(args) {
      const p = producers.get(String(args.stream))!
      await p.when
        .subscribed()
        .minimumOf(Number(args.n ?? 1))
        .wait({
          signal: AbortSignal.timeout(Number(args.timeoutMs ?? 20_000)),
        })
      return p.consumers().map((c) => c.consumerId)
    },
    /** Consumes ticks, counting them per producer run and noting any out-of-order one. */
    async consume(args) {
      const consumer = net.streams.consumer(defineStream<Tick>(String(args.stream)), {
        backoff: (args.backoff as object) ?? { initialMs: 100, maxIntervalMs: 1000 },
      })
      const state = { consumer, byRun: {} as Record<string, number>, disorder: 0 }
      consumers.set(String(args.stream), state)
      const last = new Map<string, number>()
      void (async () => {
        for await (const tick of consumer) {
          state.byRun[tick.run] = (state.byRun[tick.run] ?? 0) + 1
          if ((last.get(tick.run) ?? -1) >= tick.seq) state.disorder++
          last.set(tick.run, tick.seq)
          for (const w of [...waiters]) w()
        }
      })()
      return true
    },
    /** Resolves once `n` ticks of `run` arrived (of any run when omitted). */
    async awaitReceived(args) {
      const state = consumers.get(String(args.stream))!
      const count = () =>
        args.run === undefined
          ? Object.values(state.byRun).reduce((a, b) => a + b, 0)
          : (state.byRun[String(args.run)] ?? 0)
      await until(() => count() >= Number(args.n), Number(args.timeoutMs ?? 20_000))
      return { byRun: state.byRun, disorder: state.disorder }
    },
    /** Resolves once the consumer has no producer left. */
    async awaitUnsubscribed(args) {
      const state = consumers.get(String(args.stream))!
      await state.consumer.when
        .unsubscribed()
        .wait({ signal: AbortSignal.timeout(Number(args.timeoutMs ?? 20_000)) })
      return { byRun: state.byRun, disorder: state.disorder }
    },
  }

  await serve({ peerId: net.peerId, addresses: net.addresses }, commands, () => net.close())
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main()

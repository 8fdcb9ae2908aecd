/**
 * A mosaik node in its own OS process that produces or consumes a stream, for tests over real QUIC
 * between processes.
 *
 * As a script: `node tests/support/streams-process.ts '<json options>'`. It prints JSON lines on stdout
 * ({ event: 'ready', peerId, addresses } and command replies) and reads JSON commands on stdin. SIGTERM
 * closes the node gracefully; SIGKILL is a crash. Imported, it exports `StreamsProcess`, the test side.
 *
 * Datums are `{ run, seq }`: `run` names the producer process's run, `seq` counts from 0 in it, so a
 * consumer can tell runs apart and check that each arrives in order.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

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

const script = fileURLToPath(import.meta.url)

/** The test side: a child node driven over stdin/stdout. */
export class StreamsProcess {
  readonly peerId: string
  readonly addresses: string[]
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  #nextId = 1

  private constructor(child: ChildProcess, ready: { peerId: string; addresses: string[] }) {
    this.child = child
    this.peerId = ready.peerId
    this.addresses = ready.addresses
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  }

  static async start(options: StreamsProcessOptions, timeoutMs = 20_000): Promise<StreamsProcess> {
    const child = spawn(process.execPath, [script, JSON.stringify(options)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    const lines = createInterface({ input: child.stdout! })
    let proc: StreamsProcess | undefined
    return new Promise<StreamsProcess>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error('child node did not start'))
      }, timeoutMs)
      child.once('exit', (code) => reject(new Error(`child node exited with ${code} before ready`)))
      lines.on('line', (line) => {
        let msg: {
          event?: string
          id?: number
          result?: unknown
          error?: string
          peerId?: string
          addresses?: string[]
        }
        try {
          msg = JSON.parse(line)
        } catch {
          return
        }
        if (msg.event === 'ready') {
          clearTimeout(timer)
          proc = new StreamsProcess(child, { peerId: msg.peerId!, addresses: msg.addresses! })
          resolve(proc)
        } else if (msg.id !== undefined && proc) {
          const p = proc.#pending.get(msg.id)
          proc.#pending.delete(msg.id)
          if (msg.error) p?.reject(new Error(msg.error))
          else p?.resolve(msg.result)
        }
      })
    })
  }

  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.child.stdin!.write(`${JSON.stringify({ id, cmd, ...args })}\n`)
    })
  }

  /** Graceful stop: streams close with GracefulShutdown, the node announces its departure. */
  async terminate(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGTERM')
    await this.exited
  }

  /** A crash: no close frames, no departure. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGKILL')
    await this.exited
  }
}

// ---- the child -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { privateKeyFromProtobuf } = await import('@libp2p/crypto/keys')
  const { defineStream, Network } = await import('../../platform/node/index.ts')
  const { fromHex, randomBytes, toHex } = await import('../../src/primitives/bytes.ts')
  type Producer = import('../../src/streams/producer.ts').Producer<Tick>
  type Consumer = import('../../src/streams/consumer.ts').Consumer<Tick>

  const options = JSON.parse(process.argv[2] ?? '{}') as StreamsProcessOptions
  const net = await Network.create({
    network: options.network,
    bootstrap: options.bootstrap ?? [],
    listen: ['/ip4/127.0.0.1/udp/0/quic-v1'],
    privateKey: options.privateKey ? privateKeyFromProtobuf(fromHex(options.privateKey)!) : undefined,
    discovery: options.discovery ?? {},
    streams: options.streams ?? {},
  })
  const emit = (msg: unknown) => process.stdout.write(`${JSON.stringify(msg)}\n`)
  emit({ event: 'ready', peerId: net.peerId, addresses: net.addresses })

  const run = toHex(randomBytes(4))
  const producers = new Map<string, Producer>()
  const consumers = new Map<string, { consumer: Consumer; byRun: Record<string, number>; disorder: number }>()
  let closing = false
  const shutdown = async () => {
    if (closing) return
    closing = true
    await net.close()
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown())

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

  const commands: Record<string, (args: Record<string, unknown>) => Promise<unknown>> = {
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

  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue
    const { id, cmd, ...args } = JSON.parse(line)
    const handler = commands[cmd]
    if (!handler) {
      emit({ id, error: `unknown command ${cmd}` })
      continue
    }
    handler(args).then(
      (result) => emit({ id, result }),
      (err: Error) => emit({ id, error: err.message }),
    )
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main()

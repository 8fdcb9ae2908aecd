/**
 * Streams throughput with the consumer in another process, over QUIC: what two nodes on two hosts
 * see, against raw libp2p between the same two processes, interleaved in the same run.
 *
 * Why a second process: in the in-process rows the producer's work and the consumer's share one event
 * loop, and over QUIC that loop is the bottleneck of both figures. The QUIC binding reads a stream 4 KiB
 * at a time, each read a hop to its own threads and back, so a receiver's throughput is 4 KiB per turn
 * of that loop, and every microsecond the sender spends on the same thread lengthens the turn. The raw
 * baseline's sender does almost nothing per datum, the SDK's producer batches, frames and grants
 * credit: on one thread that reads as 0.71-0.86× raw for 1 KiB datums, where between two processes
 * the same code reads 0.88-1.03×. Both rows are kept: one is the loopback figure, one is a deployment's.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { peerIdFromString } from '@libp2p/peer-id'
import { codecs, defineStream, Network } from '../../platform/node/index.ts'
import { randomBytes, toHex } from '../../src/primitives/bytes.ts'
import { rawSend } from './raw-records.ts'
import type { ConsumerCommand, ConsumerReport } from './remote-consumer.ts'
import { log, median, type Row } from './table.ts'

const SIZES = [
  { size: 64, label: '64 B', count: 600_000 },
  { size: 1024, label: '1 KiB', count: 150_000 },
  { size: 64 * 1024, label: '64 KiB', count: 3_000 },
]
/** Interleaved pairs per size: one pair swings by ±15 % between processes on the bench machine. */
const ROUNDS = 5

/** The child process and the one report each command waits for. */
class RemoteConsumer {
  readonly #child: ChildProcess
  readonly #exited: Promise<never>

  constructor(bootstrap: string, network: string) {
    this.#child = fork(fileURLToPath(new URL('./remote-consumer.ts', import.meta.url)), [bootstrap], {
      execArgv: process.execArgv,
      env: { ...process.env, MOSAIK_BENCH_NETWORK: network },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    this.#exited = new Promise((_, reject) => {
      this.#child.once('exit', (code) => reject(new Error(`the remote consumer exited with ${code}`)))
    })
    this.#exited.catch(() => {})
  }

  /** The next report of `kind`, or a rejection if the child exits first. */
  next<K extends ConsumerReport['kind']>(kind: K): Promise<Extract<ConsumerReport, { kind: K }>> {
    const report = new Promise<Extract<ConsumerReport, { kind: K }>>((resolve) => {
      const onMessage = (m: ConsumerReport) => {
        if (m.kind !== kind) return
        this.#child.off('message', onMessage)
        resolve(m as Extract<ConsumerReport, { kind: K }>)
      }
      this.#child.on('message', onMessage)
    })
    return Promise.race([report, this.#exited])
  }

  /** Sends `command` and waits for the child to say it is ready for the data. */
  async ask(command: ConsumerCommand): Promise<void> {
    const ready = this.next('ready')
    this.#child.send(command)
    await ready
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    const exited = new Promise((resolve) => this.#child.once('exit', resolve))
    this.#child.send({ kind: 'exit' } satisfies ConsumerCommand)
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}

/** Datums per second from `a`'s producer to the child's consumer. */
async function oursRate(a: Network, remote: RemoteConsumer, datum: Uint8Array, count: number) {
  const stream = `remote-${toHex(randomBytes(4))}`
  const producer = a.streams.producer(defineStream<Uint8Array>(stream, { codec: codecs.raw }))
  try {
    await remote.ask({ kind: 'subscribe', stream, count })
    await producer.when.subscribed()
    const done = remote.next('done')
    const t0 = performance.now()
    for (let i = 0; i < count; i++) await producer.send(datum)
    await done
    return (count * 1000) / (performance.now() - t0)
  } finally {
    await producer.close()
  }
}

/** Datums per second over a raw libp2p stream from `a` to the child, in the same framing. */
async function rawRate(a: Network, remote: RemoteConsumer, peerId: string, datum: Uint8Array, count: number) {
  const protocol = `/bench/raw-remote/${toHex(randomBytes(4))}`
  await remote.ask({ kind: 'raw', protocol, count })
  const stream = await a.libp2p.dialProtocol(peerIdFromString(peerId), protocol)
  try {
    const done = remote.next('done')
    const t0 = performance.now()
    await rawSend(stream, datum, count)
    await done
    return (count * 1000) / (performance.now() - t0)
  } finally {
    stream.abort(new Error('done'))
  }
}

export async function twoProcessRows(): Promise<Row[]> {
  const network = `bench-${toHex(randomBytes(4))}`
  const a = await Network.create({
    network,
    listen: ['/ip4/127.0.0.1/udp/0/quic-v1'],
    discovery: { departureWindowMs: 0 },
  })
  const remote = new RemoteConsumer(a.addresses[0]!, network)
  try {
    const { peerId } = await remote.next('up')
    await a.discovery.when.peer(peerId)
    const rows: Row[] = []
    for (const { size, label, count } of SIZES) {
      const datum = randomBytes(size)
      // warm-up: JIT and connection windows, in both processes
      await oursRate(a, remote, datum, Math.ceil(count / 10))
      await rawRate(a, remote, peerId, datum, Math.ceil(count / 10))
      const ours: number[] = []
      const raw: number[] = []
      for (let round = 0; round < ROUNDS; round++) {
        ours.push(await oursRate(a, remote, datum, count))
        raw.push(await rawRate(a, remote, peerId, datum, count))
      }
      log(
        `quic, two processes, ${label}: streams ${median(ours).toFixed(0)}/s, raw ${median(raw).toFixed(0)}/s`,
      )
      rows.push({
        section: 'streams (quic, two processes)',
        name: `1→1 throughput, ${label} datums`,
        value: median(ours),
        unit: 'datums/s',
        baselineName: 'raw libp2p stream between the same processes',
        baseline: median(raw),
        higherIsBetter: true,
      })
    }
    return rows
  } finally {
    await remote.close()
    await a.close()
  }
}

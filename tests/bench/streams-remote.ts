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
import { peerIdFromString } from '@libp2p/peer-id'
import { codecs, defineStream, Network } from '../../platform/node/index.ts'
import { randomBytes, toHex } from '../../src/primitives/bytes.ts'
import { BenchChild } from './child.ts'
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

/** The consuming node in its child process. */
type RemoteConsumer = BenchChild<ConsumerCommand, ConsumerReport>

/** Datums per second from `a`'s producer to the child's consumer. */
async function oursRate(a: Network, remote: RemoteConsumer, datum: Uint8Array, count: number) {
  const stream = `remote-${toHex(randomBytes(4))}`
  const producer = a.streams.producer(defineStream<Uint8Array>(stream, { codec: codecs.raw }))
  try {
    await remote.ask({ kind: 'subscribe', stream, count }, 'ready')
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
  await remote.ask({ kind: 'raw', protocol, count }, 'ready')
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
  const remote: RemoteConsumer = new BenchChild(
    new URL('./remote-consumer.ts', import.meta.url),
    [a.addresses[0]!],
    {
      MOSAIK_BENCH_NETWORK: network,
    },
  )
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

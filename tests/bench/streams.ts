/**
 * Streams benchmarks: every figure next to raw libp2p on the same nodes, transport and framing,
 * measured in the same run. Both ends run in this process (sender and receiver share one event loop),
 * so figures are loopback figures; streams-remote.ts measures QUIC with the consumer in another process.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { peerIdFromString } from '@libp2p/peer-id'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { codecs, defineStream, Network } from '../../platform/node/index.ts'
import { randomBytes, toHex } from '../../src/primitives/bytes.ts'
import { packBatch, varintLength } from '../../src/streams/wire.ts'
import { countRecords, rawSend } from './raw-records.ts'
import { twoProcessRows } from './streams-remote.ts'
import { log, median, percentile, type Row } from './table.ts'

type Transport = 'memory' | 'quic' | 'tcp'

const listenOn = (t: Transport) =>
  t === 'memory'
    ? [`/memory/${toHex(randomBytes(8))}`]
    : t === 'tcp'
      ? ['/ip4/127.0.0.1/tcp/0']
      : ['/ip4/127.0.0.1/udp/0/quic-v1']

/** `npm run bench` passes --expose-gc; run directly, the flag is set here. */
const gc: () => void =
  (globalThis as { gc?: () => void }).gc ??
  (() => {
    setFlagsFromString('--expose-gc')
    return runInNewContext('gc') as () => void
  })()

/** A producer node and `n` consumer nodes that know each other. */
async function cluster(transport: Transport, n: number): Promise<{ a: Network; bs: Network[] }> {
  const network = `bench-${toHex(randomBytes(4))}`
  const discovery = { departureWindowMs: 0 }
  const a = await Network.create({ network, listen: listenOn(transport), discovery })
  const bs = await Promise.all(
    Array.from({ length: n }, () =>
      Network.create({ network, listen: listenOn(transport), bootstrap: a.addresses, discovery }),
    ),
  )
  await Promise.all(bs.map((b) => b.discovery.when.peer(a.peerId)))
  await a.discovery.when.peers(n)
  return { a, bs }
}

const closeAll = (nodes: Network[]) => Promise.all(nodes.map((x) => x.close()))

// ---- mosaik streams ------------------------------------------------------------------------------

/** Seconds for `count` datums of `size` bytes from a's producer to every consumer in bs. */
async function streamRun(a: Network, bs: Network[], size: number, count: number): Promise<number> {
  const def = defineStream<Uint8Array>(`bench-${toHex(randomBytes(4))}`, { codec: codecs.raw })
  const producer = a.streams.producer(def)
  const consumers = bs.map((b) => b.streams.consumer(def))
  await producer.when.subscribed().minimumOf(bs.length)
  const datum = randomBytes(size)
  const received = consumers.map(async (c) => {
    let n = 0
    for await (const _ of c) if (++n === count) return
  })
  const t0 = performance.now()
  for (let i = 0; i < count; i++) await producer.send(datum)
  await Promise.all(received)
  const secs = (performance.now() - t0) / 1000
  await producer.close()
  await Promise.all(consumers.map((c) => c.close()))
  return secs
}

/** One-way latency samples (ms) of 64 B datums, one sent per millisecond. */
async function streamLatency(a: Network, b: Network, samples: number): Promise<number[]> {
  const def = defineStream<Uint8Array>(`lat-${toHex(randomBytes(4))}`, { codec: codecs.raw })
  const producer = a.streams.producer(def)
  const consumer = b.streams.consumer(def)
  await producer.when.subscribed()
  const out: number[] = []
  const reader = (async () => {
    for await (const d of consumer) {
      out.push(performance.now() - new DataView(d.buffer, d.byteOffset).getFloat64(0))
      if (out.length === samples) return
    }
  })()
  for (let i = 0; i < samples; i++) {
    const d = new Uint8Array(64)
    new DataView(d.buffer).setFloat64(0, performance.now())
    await producer.send(d)
    await new Promise((r) => setTimeout(r, 1))
  }
  await reader
  await producer.close()
  await consumer.close()
  return out.slice(samples / 10)
}

// ---- raw libp2p baseline -------------------------------------------------------------------------

/** Seconds for `count` datums over raw libp2p streams from a to every b, decoded by each receiver. */
async function rawRun(a: Network, bs: Network[], size: number, count: number): Promise<number> {
  const protocol = `/bench/raw/${toHex(randomBytes(4))}`
  const done = bs.map(async (b) => {
    const { promise, resolve } = Promise.withResolvers<void>()
    await b.libp2p.handle(protocol, (stream) => {
      countRecords(stream, (n) => {
        if (n >= count) resolve()
      })
    })
    return promise
  })
  const streams = await Promise.all(
    bs.map((b) => a.libp2p.dialProtocol(peerIdFromString(b.peerId), protocol)),
  )
  const datum = randomBytes(size)
  const t0 = performance.now()
  await Promise.all(streams.map((s) => rawSend(s, datum, count)))
  await Promise.all(done)
  const secs = (performance.now() - t0) / 1000
  for (const s of streams) s.abort(new Error('done'))
  await Promise.all(bs.map((b) => b.libp2p.unhandle(protocol)))
  return secs
}

/** Round trips (ms) of 64 B length-prefixed ping-pong on one raw libp2p stream. */
async function rawPingPong(a: Network, b: Network, samples: number): Promise<number[]> {
  const protocol = `/bench/ping/${toHex(randomBytes(4))}`
  await b.libp2p.handle(protocol, (stream) => {
    const decoder = new LengthPrefixedDecoder()
    stream.addEventListener('message', (evt) => {
      for (const frame of decoder.decode(evt.data)) stream.send(lp(frame.subarray()))
    })
  })
  const stream = await a.libp2p.dialProtocol(peerIdFromString(b.peerId), protocol)
  const decoder = new LengthPrefixedDecoder()
  let pong: (() => void) | undefined
  stream.addEventListener('message', (evt) => {
    for (const _ of decoder.decode(evt.data)) pong?.()
  })
  const out: number[] = []
  const ping = lp(new Uint8Array(64))
  for (let i = 0; i < samples; i++) {
    const { promise, resolve } = Promise.withResolvers<void>()
    pong = resolve
    const t0 = performance.now()
    stream.send(ping)
    await promise
    out.push(performance.now() - t0)
    await new Promise((r) => setTimeout(r, 1))
  }
  stream.abort(new Error('done'))
  await b.libp2p.unhandle(protocol)
  return out.slice(samples / 10)
}

function lp(payload: Uint8Array): Uint8Array {
  return packBatch([payload], 0, 1, varintLength(payload.length) + payload.length)
}

// ---- the section ---------------------------------------------------------------------------------

const SIZES: { size: number; label: string; count: Record<'memory' | 'quic', number> }[] = [
  { size: 64, label: '64 B', count: { memory: 600_000, quic: 600_000 } },
  { size: 1024, label: '1 KiB', count: { memory: 200_000, quic: 150_000 } },
  { size: 64 * 1024, label: '64 KiB', count: { memory: 6_000, quic: 3_000 } },
]

const THROUGHPUT_ROUNDS = 3

async function transportRows(transport: 'memory' | 'quic'): Promise<Row[]> {
  const rows: Row[] = []
  const section = `streams (${transport})`
  const { a, bs } = await cluster(transport, 1)
  try {
    for (const { size, label, count } of SIZES) {
      const n = count[transport]
      // warm-up: JIT and connection windows
      await streamRun(a, bs, size, Math.ceil(n / 10))
      await rawRun(a, bs, size, Math.ceil(n / 10))
      // One pair of runs swings by ±30 % on QUIC (0.63-0.96× for the same code): interleave three
      // pairs and take the median of each side, so a noisy spell hits both.
      const oursRuns: number[] = []
      const rawRuns: number[] = []
      for (let round = 0; round < THROUGHPUT_ROUNDS; round++) {
        oursRuns.push(await streamRun(a, bs, size, n))
        rawRuns.push(await rawRun(a, bs, size, n))
      }
      const ours = median(oursRuns)
      const raw = median(rawRuns)
      log(`${transport} ${label}: streams ${(n / ours).toFixed(0)}/s, raw ${(n / raw).toFixed(0)}/s`)
      rows.push({
        section,
        name: `1→1 throughput, ${label} datums`,
        value: n / ours,
        unit: 'datums/s',
        baselineName: 'raw libp2p stream, same framing',
        baseline: n / raw,
        higherIsBetter: true,
      })
      rows.push({
        section,
        name: `1→1 throughput, ${label} datums`,
        value: (n * size) / ours / 1e6,
        unit: 'MB/s',
        baselineName: 'raw libp2p stream, same framing',
        baseline: (n * size) / raw / 1e6,
        higherIsBetter: true,
      })
    }
    // Latency is noisy on a shared 2-core box: interleave rounds of both and pool the samples.
    // Warm-up first: a process's first few subscriptions run partly unoptimized code for their first
    // few hundred datums (in a fresh process, rounds read 47 and 92 µs, then 28-33 against 27-29 raw;
    // with V8's optimizing tiers off, every round reads 80-90 µs), and one such round moves the p50.
    for (let round = 0; round < 3; round++) {
      await streamLatency(a, bs[0]!, 400)
      await rawPingPong(a, bs[0]!, 400)
    }
    const ours: number[] = []
    const raw: number[] = []
    for (let round = 0; round < 3; round++) {
      ours.push(...(await streamLatency(a, bs[0]!, 400)))
      raw.push(...(await rawPingPong(a, bs[0]!, 400)).map((r) => r / 2))
    }
    log(
      `${transport} latency p50: streams ${percentile(ours, 50).toFixed(3)} ms, raw ${percentile(raw, 50).toFixed(3)} ms`,
    )
    for (const p of [50, 99]) {
      rows.push({
        section,
        name: `one-way latency p${p}, 64 B at 1 datum/ms`,
        value: percentile(ours, p),
        unit: 'ms',
        baselineName: 'raw libp2p ping-pong ÷ 2',
        baseline: percentile(raw, p),
        higherIsBetter: false,
      })
    }
  } finally {
    await closeAll([a, ...bs])
  }
  return rows
}

async function fanOutRows(transport: Transport, consumers: number): Promise<Row[]> {
  const { a, bs } = await cluster(transport, consumers)
  const count = 100_000
  try {
    await streamRun(a, bs, 64, 10_000)
    const ours = await streamRun(a, bs, 64, count)
    const raw = await rawRun(a, bs, 64, count)
    log(`${transport} fan-out ${consumers}: streams ${((count * consumers) / ours).toFixed(0)}/s`)
    return [
      {
        section: `streams (${transport})`,
        name: `fan-out 1→${consumers}, 64 B datums, aggregate`,
        value: (count * consumers) / ours,
        unit: 'datums/s',
        baselineName: `raw libp2p, ${consumers} streams`,
        baseline: (count * consumers) / raw,
        higherIsBetter: true,
      },
    ]
  } finally {
    await closeAll([a, ...bs])
  }
}

/** Heap growth over 1M datums through one subscription: it must stay within the buffers' bound. */
async function heapRows(): Promise<Row[]> {
  const { a, bs } = await cluster('memory', 1)
  try {
    const def = defineStream<Uint8Array>('heap', { codec: codecs.raw })
    const producer = a.streams.producer(def)
    const consumer = bs[0]!.streams.consumer(def)
    await producer.when.subscribed()
    const datum = randomBytes(64)
    const pump = async (count: number) => {
      const received = (async () => {
        let n = 0
        for await (const _ of consumer) if (++n === count) return
      })()
      for (let i = 0; i < count; i++) await producer.send(datum)
      await received
    }
    await pump(100_000)
    gc()
    const before = process.memoryUsage().heapUsed
    await pump(1_000_000)
    await new Promise((r) => setTimeout(r, 50))
    gc()
    const growth = (process.memoryUsage().heapUsed - before) / 1e6
    // What may legitimately stay allocated: a full producer queue and consumer buffer of datum
    // references, and two credit windows of bytes (1 MiB each).
    const bound = (1024 * 64 + 1024 * 64 + 2 * 1024 * 1024) / 1e6
    log(`heap growth after 1M datums: ${growth.toFixed(2)} MB`)
    await producer.close()
    await consumer.close()
    return [
      {
        section: 'streams (memory)',
        name: 'heap growth after 1M × 64 B datums',
        value: growth,
        unit: 'MB',
        baselineName: 'bound: full queues + credit windows',
        baseline: bound,
        higherIsBetter: false,
      },
    ]
  } finally {
    await closeAll([a, ...bs])
  }
}

/**
 * An honest consumer's rate while `lazyNodes × linksPerNode` raw subscribers never read past
 * StartStream and re-subscribe the moment the producer closes them, against the same consumer alone
 * in the same run (the better of a window before and one after the attack). Two figures: the first window of the
 * attack (every lazy link is new and fills its credit window once) and a window once the producer
 * has found each of them lagging and their turns to re-subscribe are seconds apart (3 s after the
 * last was found out; the window in between is logged).
 *
 * Run alone: `npx node --input-type=module -e "import('./tests/bench/streams.ts').then((m) =>
 * m.lazyRows('memory')).then((r) => console.log(r))"` (or 'quic', 'tcp').
 */
export async function lazyRows(transport: Transport, lazyNodes = 10, linksPerNode = 5): Promise<Row[]> {
  const { a, bs } = await cluster(transport, lazyNodes + 1)
  const [honestNode, ...lazies] = bs as [Network, ...Network[]]
  const def = defineStream<Uint8Array>('lazy-bench', { codec: codecs.raw })
  const p = a.streams.producer(def)
  const honest = honestNode.streams.consumer(def)
  let producing = true
  let attacking = true
  let received = 0
  try {
    await p.when.subscribed()
    const datum = new Uint8Array(256)
    const sending = (async () => {
      while (producing) await p.send(datum).catch(() => {})
    })()
    const reading = (async () => {
      for await (const _ of honest) received++
    })()
    const rate = async (ms: number) => {
      const before = received
      const t0 = performance.now()
      await new Promise((r) => setTimeout(r, ms))
      return ((received - before) * 1000) / (performance.now() - t0)
    }
    await rate(3000) // warm-up: cold code, and the new nodes' first catalog syncs
    const before = await rate(2000)

    const protocol = a.context.protocol('streams/1')
    const handshake = [1, a.networkId.bytes, def.streamId.bytes, new Map()]
    let tooSlow = 0
    const offTooSlow = p.on('consumer:disconnected', ({ close }) => {
      if (close.code === 10413) tooSlow++
    })
    const open = new Set<{ abort(reason: string): void }>()
    const lazyLoop = async (net: Network) => {
      while (attacking) {
        try {
          const link = await net.context.openLink(a.peerId, protocol)
          open.add(link)
          await link.send(handshake).catch(() => {})
          await link.closed
          open.delete(link)
        } catch {}
      }
    }
    const loops = lazies.flatMap((net) => Array.from({ length: linksPerNode }, () => lazyLoop(net)))
    const first = await rate(2000)
    const deadline = performance.now() + 30_000
    while (tooSlow < lazyNodes * linksPerNode && performance.now() < deadline) await rate(100)
    // Their first turns come fast (the grace, doubling per strike); measure once they are 2 s apart.
    const settling = await rate(3000)
    const foundOut = await rate(3000)
    offTooSlow()
    attacking = false
    for (const link of open) link.abort('bench over')
    await Promise.all(loops)
    const after = await rate(2000)
    // The better window alone is the baseline: on a noisy machine, the conservative choice.
    const baseline = Math.max(before, after)
    const n = lazyNodes * linksPerNode
    log(
      `${transport} honest rate: alone ${before.toFixed(0)}/${after.toFixed(0)}, with ${n} lazy ` +
        `first ${first.toFixed(0)}, found out ${settling.toFixed(0)} then ${foundOut.toFixed(0)} /s`,
    )
    producing = false
    await honest.close()
    await p.close()
    await Promise.all([sending, reading])
    const row = (name: string, value: number): Row => ({
      section: `streams (${transport})`,
      name,
      value,
      unit: 'datums/s',
      baselineName: 'the same consumer alone',
      baseline,
      higherIsBetter: true,
    })
    return [
      row(`honest consumer, first 2 s of ${n} lazy re-subscribers`, first),
      row(`honest consumer, ${n} lazy re-subscribers found out`, foundOut),
    ]
  } finally {
    producing = false
    attacking = false
    await closeAll([a, ...bs])
  }
}

export async function benchStreams(): Promise<Row[]> {
  const rows: Row[] = []
  for (const transport of ['quic', 'memory'] as const) rows.push(...(await transportRows(transport)))
  rows.push(...(await twoProcessRows()))
  rows.push(...(await fanOutRows('quic', 10)))
  rows.push(...(await fanOutRows('memory', 10)))
  rows.push(...(await heapRows()))
  rows.push(...(await lazyRows('memory')))
  rows.push(...(await lazyRows('quic')))
  return rows
}

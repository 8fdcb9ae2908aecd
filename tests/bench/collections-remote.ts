/**
 * `Map.set` with each of the three writers in a process of its own, as on three hosts: sequential
 * inserts through each writer (PER_WRITER at a time, one writer after the other: one leads, two
 * forward), against raw Link round trips between two of the same processes, interleaved in the same
 * run. Over TCP, which every Node has; the QUIC binding's own thread hops make its loopback round
 * trip twice as long, which would flatter the ratio.
 *
 * Why separate processes: in the in-process rows (collections.ts) the three replicas share one event
 * loop, so an insert costs the CPU of every message at both of its ends, one after the other, where
 * raw Link's round trip costs two. Even the protocol's own messages over raw Links read 0.29–0.46× a
 * round trip there. Between processes each replica works on its own loop, as it does in a deployment,
 * and the round trip includes the hops between processes that a write's messages pay too. On a
 * 2-core machine the three processes still share the cores.
 */
import { collections, Network } from '../../platform/node/index.ts'
import { randomBytes, toHex } from '../../src/primitives/bytes.ts'
import { ECHO_PROTOCOL, echoRoundTrips, resendWhileOffline } from './baselines.ts'
import { BenchChild } from './child.ts'
import { log, median, percentile, type Row, sequentialRate } from './table.ts'

/** What the parent asks. */
export type WriterCommand = { kind: 'sets'; n: number } | { kind: 'exit' }

/** What this process tells its parent. */
export type WriterReport =
  | { kind: 'up'; peerId: string; address: string }
  | { kind: 'online' }
  | { kind: 'latencies'; ms: number[] }

/** Where each of the three processes listens: TCP on loopback (see the header for why not QUIC). */
export const LISTEN = ['/ip4/127.0.0.1/tcp/0']

/**
 * `n` sequential inserts through `writer` with fresh keys; their latencies (ms). An insert refused
 * by a leader change is sent again (see resendWhileOffline), and its time counts.
 */
export async function sequentialSets(
  writer: { set(key: string, value: number): Promise<unknown>; when: { online(): Promise<unknown> } },
  prefix: string,
  n: number,
): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await resendWhileOffline(
      () => writer.set(`${prefix}-${i}`, i),
      () => writer.when.online(),
    )
    out.push(performance.now() - t)
  }
  return out
}

/** Interleaved rounds, and inserts through each writer per round. */
const ROUNDS = 7
const PER_WRITER = 300

export async function threeProcessRows(): Promise<Row[]> {
  const network = `bench-${toHex(randomBytes(4))}`
  const store = `bench-seq-${toHex(randomBytes(4))}`
  const a = await Network.create({
    network,
    listen: LISTEN,
    discovery: { departureWindowMs: 0 },
  })
  const env = { MOSAIK_BENCH_NETWORK: network, MOSAIK_BENCH_STORE: store }
  const script = new URL('./remote-writer.ts', import.meta.url)
  const children = [0, 1].map(
    () => new BenchChild<WriterCommand, WriterReport>(script, [a.addresses[0]!], env),
  )
  try {
    const ups = await Promise.all(children.map((c) => c.next('up')))
    const onlines = children.map((c) => c.next('online'))
    await a.discovery.when.peers(2)
    const writer = collections.Map.writer<string, number>(a, store)
    await writer.when.online()
    await Promise.all(onlines)
    const echo = await a.context.openLink(ups[0]!.address, a.context.protocol(ECHO_PROTOCOL))
    const roundTrips = (n: number) => echoRoundTrips(echo, n)
    let batch = 0
    /** `n` inserts through each writer, ours first, one writer after the other. */
    const inserts = async (n: number) => [
      ...(await sequentialSets(writer, `a-${batch++}`, n)),
      ...(await children[0]!.ask({ kind: 'sets', n }, 'latencies')).ms,
      ...(await children[1]!.ask({ kind: 'sets', n }, 'latencies')).ms,
    ]
    // warm-up: JIT in all three processes, and the connections' windows
    await roundTrips(3000)
    await inserts(1000)
    const ours: number[][] = []
    const raw: number[][] = []
    for (let round = 0; round < ROUNDS; round++) {
      raw.push(await roundTrips(3 * PER_WRITER))
      ours.push(await inserts(PER_WRITER))
    }
    await echo.close()
    await writer.close()
    const section = 'collections (3 processes, tcp)'
    log(
      `${section}: Map.set ${median(ours.map(sequentialRate)).toFixed(0)}/s, raw ${median(raw.map(sequentialRate)).toFixed(0)}/s`,
    )
    const allOurs = ours.flat()
    const allRaw = raw.flat()
    const baselineName = 'raw Link 64 B round trips between two of the processes'
    return [
      {
        section,
        name: 'Map.set latency p50, 3 writers',
        value: median(allOurs),
        unit: 'ms',
        baselineName: `${baselineName}, p50`,
        baseline: median(allRaw),
      },
      {
        section,
        name: 'Map.set latency p99, 3 writers',
        value: percentile(allOurs, 99),
        unit: 'ms',
        baselineName: `${baselineName}, p99`,
        baseline: percentile(allRaw, 99),
      },
      {
        section,
        name: 'Map.set sequential',
        value: median(ours.map(sequentialRate)),
        unit: 'inserts/s',
        baselineName: `${baselineName}, sequential`,
        baseline: median(raw.map(sequentialRate)),
        higherIsBetter: true,
      },
    ]
  } finally {
    await Promise.all(children.map((c) => c.close()))
    await a.close()
  }
}

import { collections, type Network, type Version } from '../../platform/node/index.ts'
import type { MapReader, MapWriter } from '../../src/collections/map.ts'
import { encodeCanonical } from '../../src/primitives/codec.ts'
import { prng } from '../support/prng.ts'
import {
  interleavedLatencies,
  memoryNetworks,
  rawCommitPattern,
  rawPipelined,
  resendWhileOffline,
} from './baselines.ts'
import { threeProcessRows } from './collections-remote.ts'
import { median, percentile, type Row, sequentialRate } from './table.ts'

/** One stream, same transport: how long the same bytes take to cross without any protocol on top. */
async function rawTransfer(bytes: number): Promise<number> {
  const [a, b] = await memoryNetworks(2)
  const protocol = b!.context.protocol('bench-raw/1')
  const chunk = new Uint8Array(256 * 1024)
  let received = 0
  const done = Promise.withResolvers<void>()
  await b!.context.handle(protocol, async (link) => {
    for await (const c of link) {
      received += c.length
      if (received >= bytes) done.resolve()
    }
  })
  const link = await a!.context.openLink(b!.addresses[0]!, protocol)
  const t = performance.now()
  for (let sent = 0; sent < bytes; sent += chunk.length)
    await link.sendBytes(chunk.subarray(0, Math.min(chunk.length, bytes - sent)))
  await done.promise
  const ms = performance.now() - t
  await link.close()
  await Promise.all([a!.close(), b!.close()])
  return ms
}

/**
 * Collects garbage until the typed arrays' buffers are freed too: V8 frees array buffers after the
 * collection that found them dead, so this collects a few times, letting the event loop turn between.
 */
async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    globalThis.gc?.()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** The JS heap and the typed arrays' buffers (kept outside it), after collecting garbage. */
async function memoryInUse(): Promise<number> {
  await collectGarbage()
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return heapUsed + arrayBuffers
}

async function plainMapBytesPerEntry(n: number): Promise<number> {
  const before = await memoryInUse()
  const m = new Map<string, number>()
  for (let i = 0; i < n; i++) m.set(`fill-${i}`, i)
  const per = ((await memoryInUse()) - before) / n
  if (m.size !== n) throw new Error('unreachable')
  return per
}

const CATCH_UP_ROUNDS = 5

const SEQ_ROUNDS = 7
const SEQ_PER_ROUND = 500

/**
 * The median of the rates of each round of `SEQ_PER_ROUND` sequential latencies. Why rounds: on the
 * bench machine one pooled mean over three rounds of 1 000 read 0.40-0.62x of the same messages in
 * back-to-back runs of the same code; a slow spell now moves one round of seven, not the figure.
 */
function roundRate(latencies: number[]): number {
  const rates: number[] = []
  for (let i = 0; i < latencies.length; i += SEQ_PER_ROUND)
    rates.push(sequentialRate(latencies.slice(i, i + SEQ_PER_ROUND)))
  return median(rates)
}

export async function benchCollections(): Promise<Row[]> {
  const section = 'collections (memory transport)'
  const rows: Row[] = []
  const nets = await memoryNetworks(4)

  // Sequential inserts through each writer in turn: one of them leads (one round trip to the followers
  // at best), the other two forward (two), so the figure does not depend on who won the election. A
  // Map of their own: their thousands of log entries would change what the catch-up below replays.
  const seqWriters = nets.slice(0, 3).map((n) => collections.Map.writer<string, number>(n, 'bench-seq'))
  await Promise.all(seqWriters.map((x) => x.when.online()))
  let seq = 0
  const pattern = await rawCommitPattern()
  const {
    ours: lat,
    raw: rtt,
    floor,
  } = await interleavedLatencies(
    () => {
      seq++
      return seqWriters[seq % 3]!.set(`seq-${seq}`, seq)
    },
    { warmUp: 3000, rounds: SEQ_ROUNDS, n: SEQ_PER_ROUND, floor: pattern },
  )
  await pattern.close()
  await Promise.all(seqWriters.map((x) => x.close()))

  rows.push({
    section,
    name: 'Map.set latency p50, 3 writers',
    value: median(lat),
    unit: 'ms',
    baselineName: 'raw Link 64 B round trip p50',
    baseline: median(rtt),
  })
  rows.push({
    section,
    name: 'Map.set latency p99, 3 writers',
    value: percentile(lat, 99),
    unit: 'ms',
    baselineName: 'raw Link 64 B round trip p99',
    baseline: percentile(rtt, 99),
  })
  rows.push({
    section,
    name: 'Map.set sequential',
    value: roundRate(lat),
    unit: 'inserts/s',
    baselineName: 'raw Link sequential round trips',
    baseline: roundRate(rtt),
    higherIsBetter: true,
  })
  rows.push({
    section,
    name: 'the messages of those inserts over raw Links (4 or 6 each)',
    value: roundRate(floor),
    unit: 'inserts/s',
    baselineName: 'raw Link sequential round trips',
    baseline: roundRate(rtt),
    higherIsBetter: true,
  })
  // The ratio the protocol's own messages leave room for: the SDK's cost over them alone.
  rows.push({
    section,
    name: 'Map.set sequential, against its own messages',
    value: roundRate(lat),
    unit: 'inserts/s',
    baselineName: 'the same messages over raw Links',
    baseline: roundRate(floor),
    higherIsBetter: true,
  })

  // A Map of their own too: as many entries as the writers manage in 3 s would otherwise decide how
  // large the Map the reader catches up on below is (164k entries at 55k inserts/s, not 100k).
  const concurrent = nets
    .slice(0, 3)
    .map((n) => collections.Map.writer<string, number>(n, 'bench-concurrent'))
  await Promise.all(concurrent.map((x) => x.when.online()))
  let done = 0
  const end = performance.now() + 3000
  await Promise.all(
    Array.from({ length: 100 }, async (_, c) => {
      for (let i = 0; performance.now() < end; i++) {
        await concurrent[c % 3]!.set(`c${c}-${i}`, i)
        done++
      }
    }),
  )
  await Promise.all(concurrent.map((x) => x.close()))
  rows.push({
    section,
    name: 'Map.set, 100 concurrent writers over 3 nodes',
    value: done / 3,
    unit: 'inserts/s',
    baselineName: 'raw Link round trips, 100 in flight',
    baseline: await rawPipelined(100, 2000),
    higherIsBetter: true,
  })

  // The log holds 100 entries of 1 000 pairs, fewer than a compaction needs: a new reader replays
  // them. With a snapshot every 20 entries, it installs the snapshot and replays the rest.
  rows.push(...(await mapCatchUp(nets, section, 'from the log')))
  rows.push(...(await mapCatchUp(nets, section, 'from a snapshot', { snapshotEvery: 20 })))
  rows.push(await setCatchUp(nets, section))
  rows.push(await queueCatchUp(nets, section))
  await Promise.all(nets.map((n) => n.close()))
  // The sequential inserts again with each writer in a process of its own, as on three hosts.
  rows.push(...(await threeProcessRows()))
  return rows
}

/**
 * A Map of 100k entries, set in batches of 1 000 through the first of its three writers: a new reader
 * on the fourth node catches up, against the raw transfer of the same entries; then what the reader
 * holds per entry, against a plain JS Map.
 */
async function mapCatchUp(
  nets: Network[],
  section: string,
  how: string,
  consensus?: { snapshotEvery: number },
): Promise<Row[]> {
  const name = `bench-map-${how.replaceAll(' ', '-')}`
  const options = consensus === undefined ? {} : { consensus }
  const writers = nets
    .slice(0, 3)
    .map((n) => collections.Map.writer<string, number>(n, name, options) as MapWriter<string, number>)
  await Promise.all(writers.map((x) => x.when.online()))
  const w = writers[0]!
  const target = 100_000
  for (let i = 0; i < target; i += 1000) {
    const batch = Array.from({ length: 1000 }, (_, k) => [`fill-${i + k}`, i + k] as [string, number])
    await resendWhileOffline(
      () => w.extend(batch),
      () => w.when.online(),
    )
  }
  await Promise.all(writers.map((x) => x.when.reaches(w.version)))
  const snapshotBytes = encodeCanonical(
    [...w.entries()].map(([k, v]) => [encodeCanonical(k), encodeCanonical(v)]),
  ).length
  const caughtUp: { row: Row; reader?: MapReader<string, number> } = await catchUpAgainstRaw(
    section,
    `new reader catches up on a ${(w.size / 1000).toFixed(0)}k-entry Map, ${how}`,
    () => collections.Map.reader<string, number>(nets[3]!, name, options),
    w.version,
    snapshotBytes,
  )
  // The reader's footprint is what dropping it frees: the writers compact their logs as the snapshot
  // marker commits, so a heap taken before the reader existed would count their frees as its gain.
  const heapWithReader = await memoryInUse()
  const entries = w.size
  await caughtUp.reader?.close()
  delete caughtUp.reader // a closed handle still holds its last state
  const perEntry = (heapWithReader - (await memoryInUse())) / entries
  const plain = await plainMapBytesPerEntry(entries)
  await Promise.all(writers.map((x) => x.close()))
  return [
    caughtUp.row,
    {
      section,
      name: `reader memory per entry (string key, number value), ${how}`,
      value: perEntry,
      unit: 'B',
      baselineName: 'a plain JS Map of the same entries',
      baseline: plain,
    },
  ]
}

/** A collection reader as the catch-up measurement opens it. */
interface Reader {
  when: { reaches(v: Version): Promise<unknown> }
  close(): Promise<void>
}

/**
 * A new reader catching up, `CATCH_UP_ROUNDS` times from an empty replica, against as many raw
 * transfers of `bytes`: the row of their medians, and the last reader, still open.
 *
 * Each round of both starts after a collection: the previous reader's megabytes are otherwise still
 * held when the next one allocates, and on a VM where memory touched for the first time is slow
 * (3.7 ms per MB on the bench machine, against 0.06 ms for memory in reuse) whether V8 had collected
 * them decided the figure: a round took 150 page faults or 3 500, and eight runs of the same code read
 * 2.5-7.4x. One sample of each swung from 60 to 178 ms and from 9 to 26 ms between runs: hence medians.
 */
async function catchUpAgainstRaw<R extends Reader>(
  section: string,
  name: string,
  open: () => R,
  version: Version,
  bytes: number,
): Promise<{ row: Row; reader: R }> {
  const catchUps: number[] = []
  const raws: number[] = []
  let reader: R | undefined
  // Interleaved, so that a noisy spell of the machine hits both sides.
  for (let round = 0; round < CATCH_UP_ROUNDS; round++) {
    await reader?.close()
    await collectGarbage()
    const t = performance.now()
    reader = open()
    await reader.when.reaches(version)
    catchUps.push(performance.now() - t)
    await collectGarbage()
    raws.push(await rawTransfer(bytes))
  }
  if (reader === undefined) throw new Error('unreachable')
  const row: Row = {
    section,
    name,
    value: median(catchUps),
    unit: 'ms',
    baselineName: `raw transfer of the same ${(bytes / 1e6).toFixed(1)} MB over one stream`,
    baseline: median(raws),
  }
  return { row, reader }
}

/**
 * A Set of 100k members, added in batches of 1 000 through the first of its three writers: a new
 * reader on the fourth node catches up (from the log, which holds fewer entries than a compaction
 * needs), against the raw transfer of the same members.
 */
async function setCatchUp(nets: Network[], section: string): Promise<Row> {
  const writers = nets.slice(0, 3).map((n) => collections.Set.writer<string>(n, 'bench-set'))
  await Promise.all(writers.map((x) => x.when.online()))
  const w = writers[0]!
  for (let i = 0; i < 100_000; i += 1000) {
    const batch = Array.from({ length: 1000 }, (_, k) => `member-${i + k}`)
    await resendWhileOffline(
      () => w.extend(batch),
      () => w.when.online(),
    )
  }
  await Promise.all(writers.map((x) => x.when.reaches(w.version)))
  const bytes = encodeCanonical([...w].map((m) => encodeCanonical(m))).length
  const { row, reader } = await catchUpAgainstRaw(
    section,
    `new reader catches up on a ${(w.size / 1000).toFixed(0)}k-member Set`,
    () => collections.Set.reader<string>(nets[3]!, 'bench-set'),
    w.version,
    bytes,
  )
  await Promise.all([reader, ...writers].map((x) => x.close()))
  return row
}

/**
 * A PriorityQueue of 100k entries at random priorities (mostly one entry per priority, the queue's
 * worst case for ordering), inserted in batches of 1 000 through the first of its three writers: a new
 * reader on the fourth node catches up from the log, against the raw transfer of the same triples.
 */
async function queueCatchUp(nets: Network[], section: string): Promise<Row> {
  const writers = nets
    .slice(0, 3)
    .map((n) => collections.PriorityQueue.writer<number, string, number>(n, 'bench-pq'))
  await Promise.all(writers.map((x) => x.when.online()))
  const w = writers[0]!
  const next = prng(1)
  for (let i = 0; i < 100_000; i += 1000) {
    const batch = Array.from(
      { length: 1000 },
      (_, k) => [Math.floor(next() * 1e9), `job-${i + k}`, i + k] as const,
    )
    await resendWhileOffline(
      () => w.extend(batch),
      () => w.when.online(),
    )
  }
  await Promise.all(writers.map((x) => x.when.reaches(w.version)))
  const bytes = encodeCanonical(
    [...w.ascending()].map((e) => [
      encodeCanonical(e.priority),
      encodeCanonical(e.key),
      encodeCanonical(e.value),
    ]),
  ).length
  const { row, reader } = await catchUpAgainstRaw(
    section,
    `new reader catches up on a ${(w.size / 1000).toFixed(0)}k-entry PriorityQueue`,
    () => collections.PriorityQueue.reader<number, string, number>(nets[3]!, 'bench-pq'),
    w.version,
    bytes,
  )
  await Promise.all([reader, ...writers].map((x) => x.close()))
  return row
}

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileLogStore, GroupKey, type LogStore, type Network } from '../../platform/node/index.ts'
import type { Group } from '../../src/groups/group.ts'
import { randomBytes, toHex } from '../../src/primitives/bytes.ts'
import { Counter } from '../groups/support.ts'
import { interleavedLatencies, memoryNetworks, rawPipelined, resendWhileOffline } from './baselines.ts'
import { median, percentile, type Row } from './table.ts'

interface Cluster {
  nets: Network[]
  groups: Group<Counter>[]
  leader: Group<Counter>
  close(): Promise<void>
}

/** Three in-process nodes on the memory transport forming one group; default consensus timings. */
export async function cluster(stores?: () => Promise<LogStore>): Promise<Cluster> {
  const nets = await memoryNetworks(3)
  const key = GroupKey.fromSecret(`bench-${toHex(randomBytes(4))}`)
  const groups = await Promise.all(
    nets.map(async (n) =>
      n.groups.join({ key, stateMachine: new Counter(), storage: stores ? await stores() : undefined }),
    ),
  )
  await Promise.all(groups.map((g) => g.when.voters(3)))
  await Promise.all(groups.map((g) => g.when.online()))
  const leader = groups.find((g) => g.isLeader)!
  return { nets, groups, leader, close: async () => void (await Promise.all(nets.map((n) => n.close()))) }
}

/** One command, sent again if a leader change refused it (see resendWhileOffline). */
function executeOnce(g: Group<Counter>): Promise<void> {
  return resendWhileOffline(
    () => g.execute({ inc: 1 }),
    () => g.when.online(),
  )
}

/** Latencies (ms) of `n` sequential executes, after 50 unmeasured ones. */
async function sequentialLatency(g: Group<Counter>, n: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < 50; i++) await executeOnce(g) // warm-up
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await executeOnce(g)
    out.push(performance.now() - t)
  }
  return out
}

async function pipelined(g: Group<Counter>, clients: number, ms: number): Promise<number> {
  let done = 0
  const end = performance.now() + ms
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        await executeOnce(g)
        done++
      }
    }),
  )
  return done / (ms / 1000)
}

async function queryRate(
  g: Group<Counter>,
  consistency: 'weak' | 'strong',
  clients: number,
  ms: number,
): Promise<number> {
  let done = 0
  const end = performance.now() + ms
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        await g.query('value', consistency)
        done++
        if (consistency === 'weak' && done % 256 === 0) await new Promise((r) => setImmediate(r))
      }
    }),
  )
  return done / (ms / 1000)
}

async function rawFsync(dir: string, n: number): Promise<number[]> {
  const store = await FileLogStore.open(join(dir, 'raw'))
  const out: number[] = []
  for (let i = 1; i <= n; i++) {
    const t = performance.now()
    await store.append([{ index: i, term: 1, kind: 'command', data: new Uint8Array(16) }])
    out.push(performance.now() - t)
  }
  await store.close()
  return out
}

/** Failover: from crashing the leader to the first command committed through a survivor. */
async function failover(runs: number): Promise<number[]> {
  const out: number[] = []
  for (let r = 0; r < runs; r++) {
    const c = await cluster()
    const leaderNet = c.nets.find((n) => n.peerId === c.leader.status.id)!
    const survivor = c.groups.find((g) => g !== c.leader)!
    const t = performance.now()
    await leaderNet.libp2p.stop()
    while (true) {
      try {
        await survivor.execute({ inc: 1 }, { signal: AbortSignal.timeout(2000) })
        break
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    }
    out.push(performance.now() - t)
    await c.close()
  }
  return out
}

/** The same query behind a bare async call: what any promise-returning read costs. */
async function asyncQueries(machine: Counter, ms: number): Promise<number> {
  const read = async () => ({ result: machine.query(), at: 0 })
  let done = 0
  const end = performance.now() + ms
  while (performance.now() < end) {
    await read()
    done++
    if (done % 256 === 0) await new Promise((r) => setImmediate(r))
  }
  return done / (ms / 1000)
}

/** Heap after many commits on a group that compacts: it must stay bounded by the compaction window. */
async function heapAfterCommits(
  g: Group<Counter>,
  commits: number,
): Promise<{ before: number; after: number }> {
  const run = async (n: number) => {
    let done = 0
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        while (done < n) {
          done++
          await executeOnce(g)
        }
      }),
    )
  }
  await run(30_000) // past a few compactions, so the log is at its steady size
  globalThis.gc?.()
  const before = process.memoryUsage().heapUsed
  await run(commits)
  globalThis.gc?.()
  return { before, after: process.memoryUsage().heapUsed }
}

/**
 * Promotion: a group of one node under write load (100 pipelined clients) that four more nodes join.
 * Returns how long until all five are voters, with the load running throughout, or without load.
 */
async function timeToFiveVoters(load: boolean): Promise<number> {
  const nets = await memoryNetworks(5)
  const key = GroupKey.fromSecret(`bench-${toHex(randomBytes(4))}`)
  try {
    const first = await nets[0]!.groups.join({ key, stateMachine: new Counter() })
    await first.when.isLeader()
    let running = load
    const clients = Array.from({ length: load ? 100 : 0 }, async () => {
      while (running) await first.execute({ inc: 1 })
    })
    // Let the load reach its pace before the others join.
    if (load) await first.when.applied().reaches(first.applied + 20_000)
    const t = performance.now()
    const others = await Promise.all(
      nets.slice(1).map((n) => n.groups.join({ key, stateMachine: new Counter() })),
    )
    await first.when.voters(5)
    const took = performance.now() - t
    running = false
    await Promise.all(clients)
    void others
    return took
  } finally {
    await Promise.all(nets.map((n) => n.close()))
  }
}

export async function benchGroups(): Promise<Row[]> {
  const rows: Row[] = []
  const section = 'groups (3 nodes, memory transport)'
  const rawRate = await rawPipelined(100, 2000)
  const mem = await cluster()
  const { ours: latMem, raw: rtt } = await interleavedLatencies(() => executeOnce(mem.leader), {
    warmUp: 3000,
    rounds: 3,
    n: 1000,
  })
  rows.push({
    section,
    name: 'sequential execute p50, memory store',
    value: median(latMem),
    unit: 'ms',
    baselineName: 'raw Link 64 B round trip p50',
    baseline: median(rtt),
  })
  rows.push({
    section,
    name: 'sequential execute p99, memory store',
    value: percentile(latMem, 99),
    unit: 'ms',
    baselineName: 'raw Link 64 B round trip p99',
    baseline: percentile(rtt, 99),
  })
  rows.push({
    section,
    name: 'pipelined execute, 100 clients, memory store',
    value: await pipelined(mem.leader, 100, 3000),
    unit: 'commits/s',
    baselineName: 'raw Link round trips, 100 in flight',
    baseline: rawRate,
    higherIsBetter: true,
  })
  rows.push({
    section,
    name: 'strong queries, 100 clients (ReadIndex)',
    value: await queryRate(mem.leader, 'strong', 100, 2000),
    baselineName: 'raw Link round trips, 100 in flight',
    baseline: rawRate,
    unit: 'queries/s',
    higherIsBetter: true,
  })
  rows.push({
    section,
    name: 'weak queries (local)',
    value: await queryRate(mem.leader, 'weak', 1, 1000),
    unit: 'queries/s',
    baselineName: 'the state machine behind a bare async call',
    baseline: await asyncQueries(mem.leader.stateMachine, 1000),
    higherIsBetter: true,
  })
  const heap = await heapAfterCommits(mem.leader, 200_000)
  rows.push({
    section,
    name: 'heap change over 200k more commits (3 replicas in this process)',
    value: (heap.after - heap.before) / 1e6,
    unit: 'MB',
    baselineName: 'the log between two compactions (10k entries × 3 replicas), bound',
    baseline: (10_000 * 3 * 200) / 1e6,
  })
  await mem.close()

  const dir = await mkdtemp(join(tmpdir(), 'mosaik-bench-'))
  try {
    const fsync = await rawFsync(dir, 300)
    let k = 0
    const disk = await cluster(() => FileLogStore.open(join(dir, `s${k++}`)))
    const latDisk = await sequentialLatency(disk.leader, 500)
    rows.push({
      section,
      name: 'sequential execute p50, disk store (fsync)',
      value: median(latDisk),
      unit: 'ms',
      baselineName: 'raw FileLogStore append+fsync p50',
      baseline: median(fsync),
    })
    rows.push({
      section,
      name: 'sequential execute p99, disk store (fsync)',
      value: percentile(latDisk, 99),
      unit: 'ms',
      baselineName: 'raw append+fsync p99',
      baseline: percentile(fsync, 99),
    })
    rows.push({
      section,
      name: 'pipelined execute, 100 clients, disk store',
      value: await pipelined(disk.leader, 100, 3000),
      unit: 'commits/s',
      baselineName: 'raw Link round trips, 100 in flight',
      baseline: rawRate,
      higherIsBetter: true,
    })
    await disk.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }

  rows.push({
    section: 'groups (5 nodes, memory transport)',
    name: 'four members join a leader under full write load: time to 5 voters',
    value: await timeToFiveVoters(true),
    unit: 'ms',
    baselineName: 'the same without load',
    baseline: await timeToFiveVoters(false),
  })

  const fo = await failover(20)
  rows.push({
    section,
    name: 'failover: leader crash to first new commit, p50 of 20',
    value: median(fo),
    unit: 'ms',
    baselineName: 'election timeout (min)',
    baseline: 500,
  })
  rows.push({
    section,
    name: 'failover p90',
    value: percentile(fo, 90),
    unit: 'ms',
    baselineName: 'election timeout + jitter (max)',
    baseline: 750,
  })
  return rows
}

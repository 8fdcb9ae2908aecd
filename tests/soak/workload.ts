/**
 * The soak workload, shared by `npm run soak` (tests/soak/run.ts, minutes) and the short vitest version
 * (tests/soak/soak.test.ts, seconds): several nodes in this process over QUIC on loopback (or TCP, or
 * the memory transport: `options.transport`), with streams and a replicated Map under steady load and
 * churn, sampled for leaks.
 *
 * - Four stable nodes. n0 and n1 produce the `soak/ticks` stream without pause; n2 and n3 consume it.
 *   n0, n1 and n2 write the `soak/map` Map (keys cycle over a fixed set, so its state stays the same
 *   size) and n3 reads it: it awaits the latest acknowledged version and reads entries.
 * - Churn every `churnEveryMs`: a consumer on n2 or n3 unsubscribes and a new one subscribes (and
 *   receives); a Map reader opens on n3, catches up, reads and closes; and every second round the
 *   churn node leaves (gracefully, every third time without a goodbye, as a crash) and a new node
 *   joins, which produces and consumes the stream and reads the Map.
 * - Every `sampleEveryMs`, after two forced garbage collections: heap used, the heap V8 reserves and
 *   the resident part of it, RSS and the native part of it (RSS less the resident heap) with what V8
 *   mallocs and its global handles, external memory and its ArrayBuffer part, active resources
 *   (`process.getActiveResourcesInfo()`, by type), open sockets (file descriptors of this process,
 *   Linux), libp2p connections and streams over all nodes, the catalog size of n0 and the learners
 *   of the Map's group.
 *
 * Slopes are least-squares fits over the samples after `warmupMs`, per minute.
 */
import { readdirSync, readlinkSync } from 'node:fs'
import { setTimeout as delay } from 'node:timers/promises'
import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import {
  CommitUnknownError,
  type Consumer,
  collections,
  defineStream,
  type Group,
  type MapReader,
  type MapWriter,
  Network,
  OfflineError,
  type Producer,
} from '../../platform/node/index.ts'
import { deadline, linkSignals } from '../../src/primitives/abort.ts'
import { listenOn, type Transport, uniqueNetwork } from '../support/nodes.ts'

/** `npm run soak` passes --expose-gc; under vitest the flag is set here. */
const gc: () => void =
  (globalThis as { gc?: () => void }).gc ??
  (() => {
    setFlagsFromString('--expose-gc')
    return runInNewContext('gc') as () => void
  })()

export interface SoakOptions {
  durationMs: number
  sampleEveryMs: number
  /** Samples before this are left out of the fits (caches filling, JIT, logs reaching compaction). */
  warmupMs: number
  churnEveryMs: number
  /** Bound of every wait for the network (already scaled by TIME_FACTOR). */
  timeoutMs: number
  /** The transport every node listens on and dials over (default QUIC). */
  transport?: Transport
  log?: (line: string) => void
}

export interface Sample {
  /** Seconds since the start. */
  t: number
  heapMiB: number
  /** What V8 holds for its heap: reserved pages (`heapTotal`) and the resident part of them. */
  heapTotalMiB: number
  v8ResidentMiB: number
  rssMiB: number
  /** RSS less the resident V8 heap: native memory (malloc, code, stacks). */
  nativeMiB: number
  /** Within it, what V8 itself mallocs, and its global handles (napi references among them). */
  v8MallocMiB: number
  globalHandlesMiB: number
  /** Memory of C++ objects bound to JS objects, and the part of it in ArrayBuffers (Buffers included). */
  externalMiB: number
  arrayBuffersMiB: number
  resources: number
  timers: number
  /** Active resources other than timers and immediates (sockets, file and DNS requests, ...). */
  handles: number
  sockets: number
  connections: number
  streams: number
  catalog: number
  /** Catalog entries (at n0) of churn nodes that left with a goodbye, and of those that crashed. */
  staleLeft: number
  staleCrashed: number
  learners: number
  delivered: number
  writes: number
  /** Writes that failed (a leader change under load): counted, not a leak. */
  writeErrors: number
  reads: number
  churns: number
}

export interface SoakReport {
  samples: Sample[]
  /** Per minute, over the samples after the warm-up. */
  slopes: Record<
    | 'heapMiB'
    | 'rssMiB'
    | 'externalMiB'
    | 'resources'
    | 'handles'
    | 'timers'
    | 'sockets'
    | 'connections'
    | 'streams',
    number
  >
  /** The samples after the warm-up that the fits use. */
  fitted: number
  errors: string[]
  table: string
}

type Tick = { seq: number; from: string }
const Ticks = defineStream<Tick>('soak/ticks')
const consensus = { snapshotEvery: 500 }
const MAP = 'soak/map'
const KEYS = 200

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => {})
  const network = uniqueNetwork('soak')
  /** Every node open now (closed nodes leave it, so the harness holds on to nothing). */
  const nodes = new Set<Network>()
  const open = async (bootstrap: string[] = []) => {
    const net = await Network.create({
      network,
      listen: listenOn(options.transport ?? 'quic'),
      bootstrap,
      discovery: { departureWindowMs: 100 },
    })
    nodes.add(net)
    return net
  }
  const close = async (net: Network, crash = false) => {
    nodes.delete(net)
    // A crash: libp2p stops without any goodbye (no departure), then the rest of the node stops.
    if (crash) await net.libp2p.stop()
    await net.close()
  }
  const errors: string[] = []
  const counts = { delivered: 0, writes: 0, writeErrors: 0, reads: 0, churns: 0 }
  /** Churn nodes gone, by peer id: whether they left with a goodbye or crashed. */
  const gone = new Map<string, 'left' | 'crashed'>()
  const stop = new AbortController()
  const loops: Promise<void>[] = []
  const closers: (() => Promise<void>)[] = []
  /** Runs `wait` bounded by the stop and the timeout, and leaves no listener on `stop` behind. */
  const bounded = async <T>(wait: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const timeout = deadline(options.timeoutMs)
    const linked = linkSignals(stop.signal, timeout.signal)
    try {
      return await wait(linked.signal)
    } finally {
      linked.clear()
      timeout.clear()
    }
  }
  /** Records an error, unless the loop it came from was being stopped (`halt`). */
  const fail =
    (what: string, halt: AbortSignal = stop.signal) =>
    (err: unknown) => {
      if (halt.aborted) return
      if (errors.length < 20) errors.push(`${what}: ${(err as Error)?.message ?? err}`)
    }
  let latest = 0

  try {
    const first = await open()
    const stable = [first, ...(await Promise.all([1, 2, 3].map(() => open(first.addresses))))]
    await bounded((signal) =>
      Promise.all(stable.map((n) => n.discovery.when.peers(3, () => true, { signal }))),
    )
    const [n0, n1, n2, n3] = stable as [Network, Network, Network, Network]

    // ---- streams: two producers, two steady consumers ---------------------------------------------
    const produce = (net: Network, p: Producer<Tick>, perBatch: number, halt = stop.signal) =>
      (async () => {
        let seq = 0
        while (!halt.aborted) {
          for (let i = 0; i < perBatch && !halt.aborted; i++)
            await p.send({ seq: seq++, from: net.peerId }, { signal: halt })
          await delay(20)
        }
      })().catch(fail('producer', halt))
    const consume = (c: Consumer<Tick>, halt = stop.signal) =>
      (async () => {
        for await (const _ of c) {
          counts.delivered++
          if (halt.aborted) break
        }
      })().catch(fail('consumer', halt))
    const producers = [n0, n1].map((n) => n.streams.producer(Ticks))
    const consumers = [n2, n3].map((n) => n.streams.consumer(Ticks))
    closers.push(...producers.map((p) => () => p.close()), ...consumers.map((c) => () => c.close()))
    loops.push(
      produce(n0, producers[0]!, 10),
      produce(n1, producers[1]!, 10),
      ...consumers.map((c) => consume(c)),
    )

    // ---- the Map: three writers, one reader ------------------------------------------------------
    const writers = [n0, n1, n2].map((n) => collections.Map.writer<string, number>(n, MAP, { consensus }))
    const reader = collections.Map.reader<string, number>(n3, MAP, { consensus })
    closers.push(...writers.map((w) => () => w.close()), () => reader.close())
    await bounded((signal) => Promise.all([...writers, reader].map((h) => h.when.online({ signal }))))
    const write = (w: MapWriter<string, number>, offset: number) =>
      (async () => {
        let n = offset
        while (!stop.signal.aborted) {
          try {
            latest = Math.max(latest, await w.set(`k${n % KEYS}`, n, { signal: stop.signal }))
            counts.writes++
          } catch (err) {
            if (err instanceof OfflineError || err instanceof CommitUnknownError) counts.writeErrors++
            else fail('write')(err)
          }
          n += 3
          await delay(15)
        }
      })()
    const read = (r: MapReader<string, number>, halt = stop.signal) =>
      (async () => {
        while (!halt.aborted) {
          await bounded((signal) => r.when.reaches(latest, { signal }))
          for (let i = 0; i < 20; i++) r.get(`k${i}`)
          if (r.size > KEYS) fail('reader', halt)(new Error(`${r.size} keys`))
          counts.reads++
          await delay(100)
        }
      })().catch(fail('reader', halt))
    loops.push(...writers.map((w, i) => write(w, i)), read(reader))

    // ---- churn ----------------------------------------------------------------------------------
    let churnConsumer: { c: Consumer<Tick>; halt: AbortController; loop: Promise<void> } | undefined
    let churnNode:
      | {
          net: Network
          p: Producer<Tick>
          c: Consumer<Tick>
          r: MapReader<string, number>
          halt: AbortController
          loops: Promise<void>[]
        }
      | undefined
    const leave = async (crash: boolean) => {
      if (churnNode === undefined) return
      const node = churnNode
      churnNode = undefined
      node.halt.abort()
      await Promise.all([node.p.close(), node.c.close(), node.r.close()])
      await Promise.all(node.loops)
      await close(node.net, crash)
      gone.set(node.net.peerId, crash ? 'crashed' : 'left')
    }
    const churn = async (round: number) => {
      // A consumer unsubscribes and another subscribes, and receives.
      const host = round % 2 === 0 ? n2 : n3
      if (churnConsumer) {
        churnConsumer.halt.abort()
        await churnConsumer.c.close()
        await churnConsumer.loop
      }
      const c = host.streams.consumer(Ticks)
      const halt = new AbortController()
      churnConsumer = { c, halt, loop: Promise.resolve() }
      await bounded((signal) => c.recv({ signal }))
      churnConsumer.loop = consume(c, linkSignals(stop.signal, halt.signal).signal)
      // A Map reader opens, catches up, reads and closes.
      const r = collections.Map.reader<string, number>(n3, MAP, { consensus })
      try {
        await bounded((signal) => r.when.reaches(latest, { signal }))
        if (r.size === 0 || r.size > KEYS) fail('churn reader')(new Error(`${r.size} keys`))
        counts.reads++
      } finally {
        await r.close()
      }
      // Every second round the churn node leaves and a new one joins.
      if (round % 2 === 1) {
        await leave(round % 6 === 5)
        const net = await open(n0.addresses)
        const p = net.streams.producer(Ticks)
        const nc = net.streams.consumer(Ticks)
        const nr = collections.Map.reader<string, number>(net, MAP, { consensus })
        const halt = new AbortController()
        churnNode = { net, p, c: nc, r: nr, halt, loops: [] }
        await bounded((signal) => nr.when.reaches(latest, { signal }))
        await bounded((signal) => nc.recv({ signal }))
        const h = linkSignals(stop.signal, halt.signal).signal
        churnNode.loops.push(produce(net, p, 2, h), consume(nc, h), read(nr, h))
      }
      counts.churns++
    }
    loops.push(
      (async () => {
        for (let round = 0; !stop.signal.aborted; round++) {
          await delay(options.churnEveryMs, undefined, { signal: stop.signal }).catch(() => {})
          if (stop.signal.aborted) break
          await churn(round).catch(fail(`churn round ${round}`))
        }
      })(),
    )

    // ---- sampling -------------------------------------------------------------------------------
    const mapGroup = (w: MapWriter<string, number>) =>
      (w as unknown as { core: { group?: Group<never> } }).core.group
    const samples: Sample[] = []
    const started = Date.now()
    const sample = (): Sample => {
      gc()
      gc()
      const memory = process.memoryUsage()
      const v8 = getHeapStatistics()
      const resources = process.getActiveResourcesInfo()
      const catalog = n0.discovery.catalog().peers()
      const timers = resources.filter((r) => r === 'Timeout' || r === 'Immediate').length
      let connections = 0
      let streams = 0
      for (const net of nodes) {
        for (const conn of net.libp2p.getConnections()) {
          connections++
          streams += conn.streams.length
        }
      }
      return {
        t: (Date.now() - started) / 1000,
        heapMiB: memory.heapUsed / 2 ** 20,
        heapTotalMiB: memory.heapTotal / 2 ** 20,
        v8ResidentMiB: v8.total_physical_size / 2 ** 20,
        rssMiB: memory.rss / 2 ** 20,
        nativeMiB: (memory.rss - v8.total_physical_size) / 2 ** 20,
        v8MallocMiB: v8.malloced_memory / 2 ** 20,
        globalHandlesMiB: v8.used_global_handles_size / 2 ** 20,
        externalMiB: memory.external / 2 ** 20,
        arrayBuffersMiB: memory.arrayBuffers / 2 ** 20,
        resources: resources.length,
        timers,
        handles: resources.length - timers,
        sockets: openSockets(),
        connections,
        streams,
        catalog: catalog.length,
        staleLeft: catalog.filter((p) => gone.get(p.id) === 'left').length,
        staleCrashed: catalog.filter((p) => gone.get(p.id) === 'crashed').length,
        learners: mapGroup(writers[0]!)?.status.learners.length ?? -1,
        ...counts,
      }
    }
    log(header())
    const initial = sample()
    samples.push(initial)
    log(row(initial))
    while (Date.now() - started < options.durationMs) {
      const next = options.sampleEveryMs - ((Date.now() - started) % options.sampleEveryMs)
      await delay(Math.min(next, options.durationMs - (Date.now() - started)))
      const s = sample()
      samples.push(s)
      log(row(s))
    }

    const after = samples.filter((s) => s.t * 1000 >= options.warmupMs)
    const slope = (key: keyof Sample) =>
      leastSquaresSlope(
        after.map((s) => s.t / 60),
        after.map((s) => s[key] as number),
      )
    const slopes = {
      heapMiB: slope('heapMiB'),
      heapTotalMiB: slope('heapTotalMiB'),
      rssMiB: slope('rssMiB'),
      nativeMiB: slope('nativeMiB'),
      externalMiB: slope('externalMiB'),
      resources: slope('resources'),
      handles: slope('handles'),
      timers: slope('timers'),
      sockets: slope('sockets'),
      connections: slope('connections'),
      streams: slope('streams'),
    }
    const table = [
      header(),
      ...samples.map(row),
      `slopes per minute after ${(options.warmupMs / 1000).toFixed(0)} s of warm-up (${after.length} samples): ${Object.entries(
        slopes,
      )
        .map(([k, v]) => `${k} ${v >= 0 ? '+' : ''}${v.toFixed(k.endsWith('MiB') ? 3 : 2)}`)
        .join(', ')}`,
    ].join('\n')
    return { samples, slopes, fitted: after.length, errors, table }
  } finally {
    stop.abort()
    await Promise.race([Promise.allSettled(loops), delay(options.timeoutMs)])
    await Promise.allSettled(closers.map((c) => c()))
    await Promise.allSettled([...nodes].map((n) => close(n)))
  }
}

/** Sockets among this process's open file descriptors (Linux); -1 where /proc is not there. */
function openSockets(): number {
  try {
    let n = 0
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) n++
      } catch {
        // closed meanwhile
      }
    }
    return n
  } catch {
    return -1
  }
}

/** The least-squares slope of y over x (0 with fewer than two points). */
export function leastSquaresSlope(x: readonly number[], y: readonly number[]): number {
  const n = x.length
  if (n < 2) return 0
  const mx = x.reduce((a, b) => a + b, 0) / n
  const my = y.reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) {
    num += (x[i]! - mx) * (y[i]! - my)
    den += (x[i]! - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

const COLUMNS: [keyof Sample, string, number][] = [
  ['t', 't (s)', 7],
  ['heapMiB', 'heap MiB', 9],
  ['heapTotalMiB', 'heap tot', 9],
  ['v8ResidentMiB', 'v8 res', 7],
  ['rssMiB', 'rss MiB', 8],
  ['nativeMiB', 'native', 7],
  ['v8MallocMiB', 'v8 mal', 7],
  ['globalHandlesMiB', 'globals', 8],
  ['externalMiB', 'ext MiB', 8],
  ['arrayBuffersMiB', 'ab MiB', 7],
  ['resources', 'resources', 10],
  ['timers', 'timers', 7],
  ['handles', 'handles', 8],
  ['sockets', 'sockets', 8],
  ['connections', 'conns', 6],
  ['streams', 'streams', 8],
  ['catalog', 'catalog', 8],
  ['staleLeft', 'left', 5],
  ['staleCrashed', 'crashed', 8],
  ['learners', 'learners', 9],
  ['delivered', 'delivered', 10],
  ['writes', 'writes', 7],
  ['writeErrors', 'w.err', 6],
  ['reads', 'reads', 6],
  ['churns', 'churns', 7],
]

function header(): string {
  return COLUMNS.map(([, name, w]) => name.padStart(w)).join(' ')
}

function row(s: Sample): string {
  return COLUMNS.map(([k, , w]) => {
    const v = s[k]
    const text = k.endsWith('MiB') ? v.toFixed(2) : k === 't' ? v.toFixed(0) : String(v)
    return text.padStart(w)
  }).join(' ')
}

import { Network, OfflineError } from '../../platform/node/index.ts'
import { randomBytes, toHex } from '../../src/primitives/bytes.ts'
import type { Link } from '../../src/transport/link.ts'

/** Baselines shared by the group and collection benches: raw Links on the memory transport. */
export const memAddr = (): string => `/memory/${toHex(randomBytes(8))}`

/** `n` nodes on the memory transport, all bootstrapped from the first, once they all see each other. */
export async function memoryNetworks(n: number): Promise<Network[]> {
  const network = `bench-${toHex(randomBytes(4))}`
  const options = { network, listen: [] as string[], discovery: { departureWindowMs: 0 } }
  const first = await Network.create({ ...options, listen: [memAddr()] })
  const nets = [first]
  for (let i = 1; i < n; i++) {
    nets.push(await Network.create({ ...options, listen: [memAddr()], bootstrap: first.addresses }))
  }
  await Promise.all(nets.map((x) => x.discovery.when.peers(n - 1)))
  return nets
}

/**
 * Sends a write as an application would: OfflineError means it certainly did not apply (a leader
 * change on a busy machine), so it waits for `online` and sends it again. The time that takes counts.
 */
export async function resendWhileOffline(send: () => Promise<unknown>, online: () => Promise<unknown>) {
  for (;;) {
    try {
      await send()
      return
    } catch (err) {
      if (!(err instanceof OfflineError)) throw err
      await online()
    }
  }
}

/** The protocol bench nodes echo raw Links on. */
export const ECHO_PROTOCOL = 'bench-echo/1'

/** Has `node` echo every message of the Links opened to it on ECHO_PROTOCOL; returns that protocol's id. */
export async function serveEcho(node: Network): Promise<string> {
  const protocol = node.context.protocol(ECHO_PROTOCOL)
  await node.context.handle(protocol, async (link) => {
    for await (const msg of link) link.sendBytes(msg).catch(() => {})
  })
  return protocol
}

/** Two nodes and an echo Link between them; `close` releases everything. */
async function echoPair() {
  const network = `bench-${toHex(randomBytes(4))}`
  const a = await Network.create({ network, listen: [memAddr()] })
  const b = await Network.create({ network, listen: [memAddr()] })
  const link = await a.context.openLink(b.addresses[0]!, await serveEcho(b))
  return {
    link,
    close: async () => {
      await link.close()
      await Promise.all([a.close(), b.close()])
    },
  }
}

/** Sequential 64-byte round trips over one raw Link that stays open between samples. */
export interface RoundTrips {
  /** Latencies (ms) of `n` round trips. */
  sample(n: number): Promise<number[]>
  close(): Promise<void>
}

export async function rawRoundTripLink(): Promise<RoundTrips> {
  const { link, close } = await echoPair()
  return { sample: (n) => echoRoundTrips(link, n), close }
}

/** Latencies (ms) of `n` sequential 64-byte round trips over `link`, whose other end echoes. */
export async function echoRoundTrips(link: Link, n: number): Promise<number[]> {
  const payload = new Uint8Array(64)
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await link.sendBytes(payload)
    await link.recvBytes()
    out.push(performance.now() - t)
  }
  return out
}

/**
 * Latency samples (ms) of one sequential operation against raw Link round trips, in steady state and
 * under the same conditions: both sides first run `warmUp` times (a fresh cluster's first thousand
 * commits pay for JIT tiering and its own formation traffic, which a long-running service does not),
 * then `rounds` interleaved rounds of `n` samples each are pooled, so a noisy spell hits both.
 */
export async function interleavedLatencies(
  op: () => Promise<unknown>,
  options: { warmUp: number; rounds: number; n: number; floor?: RoundTrips },
): Promise<{ ours: number[]; raw: number[]; floor: number[] }> {
  const rtt = await rawRoundTripLink()
  try {
    await rtt.sample(options.warmUp)
    await options.floor?.sample(options.warmUp)
    for (let i = 0; i < options.warmUp; i++) await op()
    const ours: number[] = []
    const raw: number[] = []
    const floor: number[] = []
    for (let round = 0; round < options.rounds; round++) {
      raw.push(...(await rtt.sample(options.n)))
      if (options.floor) floor.push(...(await options.floor.sample(options.n)))
      for (let i = 0; i < options.n; i++) {
        const t = performance.now()
        await op()
        ours.push(performance.now() - t)
      }
    }
    return { ours, raw, floor }
  } finally {
    await rtt.close()
  }
}

/**
 * The messages of a write to a 3-member group through each member in turn, over raw Links with
 * nothing on top: what such writes cannot beat, whatever the protocol's own cost. Through the leader:
 * an append to both followers and their acks (4 messages); through a follower: the forward, the
 * leader's appends and acks, then its answer (6). Every node is in this process, so the CPU of every
 * message counts, as it does for the group's own.
 */
export async function rawCommitPattern(): Promise<RoundTrips> {
  const [leader, b, c] = (await memoryNetworks(3)) as [Network, Network, Network]
  const echo = await serveEcho(b)
  await serveEcho(c)
  const toB = await leader.context.openLink(b.addresses[0]!, echo)
  const toC = await leader.context.openLink(c.addresses[0]!, echo)
  const payload = new Uint8Array(64)
  const roundTrip = async (link: Link) => {
    await link.sendBytes(payload)
    await link.recvBytes()
  }
  const replicate = () => Promise.all([roundTrip(toB), roundTrip(toC)])
  const forward = leader.context.protocol('bench-forward/1')
  await leader.context.handle(forward, async (link) => {
    for await (const msg of link) {
      await replicate()
      link.sendBytes(msg).catch(() => {})
    }
  })
  const forwards = [
    await b.context.openLink(leader.addresses[0]!, forward),
    await c.context.openLink(leader.addresses[0]!, forward),
  ]
  let turn = 0
  return {
    async sample(n) {
      const out: number[] = []
      for (let i = 0; i < n; i++) {
        const t = performance.now()
        const via = turn++ % 3
        await (via === 0 ? replicate() : roundTrip(forwards[via - 1]!))
        out.push(performance.now() - t)
      }
      return out
    },
    async close() {
      await Promise.all([...forwards, toB, toC].map((l) => l.close()))
      await Promise.all([leader, b, c].map((n) => n.close()))
    },
  }
}

/** Round trips per second with `inflight` 64-byte requests outstanding at any time, for `ms`. */
export async function rawPipelined(inflight: number, ms: number): Promise<number> {
  const { link, close } = await echoPair()
  const payload = new Uint8Array(64)
  let done = 0
  const end = performance.now() + ms
  // Replies arrive in order, so each outstanding request is answered by the next reply.
  const pending: (() => void)[] = []
  const reader = (async () => {
    for await (const _ of link) pending.shift()?.()
  })()
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (performance.now() < end) {
        const answered = new Promise<void>((resolve) => pending.push(resolve))
        await link.sendBytes(payload)
        await answered
        done++
      }
    }),
  )
  await close()
  await reader.catch(() => {})
  return done / (ms / 1000)
}

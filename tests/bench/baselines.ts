import { Network, OfflineError } from '../../platform/node/index.ts'
import { randomBytes, toHex } from '../../src/primitives/bytes.ts'

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

/** Two nodes and an echo Link between them; `close` releases everything. */
async function echoPair() {
  const network = `bench-${toHex(randomBytes(4))}`
  const a = await Network.create({ network, listen: [memAddr()] })
  const b = await Network.create({ network, listen: [memAddr()] })
  const protocol = b.context.protocol('bench-echo/1')
  await b.context.handle(protocol, async (link) => {
    for await (const msg of link) link.sendBytes(msg).catch(() => {})
  })
  const link = await a.context.openLink(b.addresses[0]!, protocol)
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
  const payload = new Uint8Array(64)
  return {
    async sample(n) {
      const out: number[] = []
      for (let i = 0; i < n; i++) {
        const t = performance.now()
        await link.sendBytes(payload)
        await link.recvBytes()
        out.push(performance.now() - t)
      }
      return out
    },
    close,
  }
}

/**
 * Latency samples (ms) of one sequential operation against raw Link round trips, in steady state and
 * under the same conditions: both sides first run `warmUp` times (a fresh cluster's first thousand
 * commits pay for JIT tiering and its own formation traffic, which a long-running service does not),
 * then `rounds` interleaved rounds of `n` samples each are pooled, so a noisy spell hits both.
 */
export async function interleavedLatencies(
  op: () => Promise<unknown>,
  options: { warmUp: number; rounds: number; n: number },
): Promise<{ ours: number[]; raw: number[] }> {
  const rtt = await rawRoundTripLink()
  try {
    await rtt.sample(options.warmUp)
    for (let i = 0; i < options.warmUp; i++) await op()
    const ours: number[] = []
    const raw: number[] = []
    for (let round = 0; round < options.rounds; round++) {
      raw.push(...(await rtt.sample(options.n)))
      for (let i = 0; i < options.n; i++) {
        const t = performance.now()
        await op()
        ours.push(performance.now() - t)
      }
    }
    return { ours, raw }
  } finally {
    await rtt.close()
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

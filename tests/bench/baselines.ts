import { Network } from '../../platform/node/index.ts'
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

/** Latencies (ms) of `n` sequential 64-byte round trips over one raw Link. */
export async function rawRoundTrips(n: number): Promise<number[]> {
  const { link, close } = await echoPair()
  const payload = new Uint8Array(64)
  const out: number[] = []
  for (let i = 0; i < n + 50; i++) {
    const t = performance.now()
    await link.sendBytes(payload)
    await link.recvBytes()
    if (i >= 50) out.push(performance.now() - t)
  }
  await close()
  return out
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

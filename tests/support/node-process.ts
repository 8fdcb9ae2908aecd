/**
 * A mosaik node in its own OS process, for tests over real QUIC between processes.
 * Usage: node tests/support/node-process.ts '<json options>'
 * It prints JSON lines on stdout ({ event: 'ready', peerId, addresses }, command replies) and reads
 * JSON commands on stdin. SIGTERM closes the node gracefully (with a departure); SIGKILL is a crash.
 */
import { createInterface } from 'node:readline'
import { Network } from '../../platform/node/index.ts'

const options = JSON.parse(process.argv[2] ?? '{}')
const net = await Network.create({
  network: options.network,
  tags: options.tags ?? [],
  bootstrap: options.bootstrap ?? [],
  listen: ['/ip4/127.0.0.1/udp/0/quic-v1'],
  discovery: options.discovery ?? {},
})

const emit = (msg: unknown) => process.stdout.write(`${JSON.stringify(msg)}\n`)
emit({ event: 'ready', peerId: net.peerId, addresses: net.addresses })

let closing = false
async function shutdown(code: number): Promise<void> {
  if (closing) return
  closing = true
  await net.close()
  emit({ event: 'closed' })
  process.exit(code)
}
process.on('SIGTERM', () => void shutdown(0))

const commands: Record<string, (args: Record<string, unknown>) => Promise<unknown>> = {
  async peers() {
    return net.discovery
      .catalog()
      .peers()
      .map((p) => p.id)
  },
  async awaitPeers(args) {
    await net.discovery.when.peers(Number(args.n), () => true, {
      signal: AbortSignal.timeout(Number(args.timeoutMs ?? 20000)),
    })
    return net.discovery
      .catalog()
      .peers()
      .map((p) => p.id)
  },
  async awaitGone(args) {
    await net.discovery.when.gone(String(args.peer), {
      signal: AbortSignal.timeout(Number(args.timeoutMs ?? 20000)),
    })
    return true
  },
  async addTags(args) {
    await net.discovery.addTags(...(args.tags as string[]))
    return true
  },
  async close() {
    void shutdown(0)
    return true
  },
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue
  const { id, cmd, ...args } = JSON.parse(line)
  const handler = commands[cmd]
  if (!handler) {
    emit({ id, error: `unknown command ${cmd}` })
    continue
  }
  handler(args).then(
    (result) => emit({ id, result }),
    (err: Error) => emit({ id, error: err.message }),
  )
}

/**
 * The consuming end of the two-process streams rows (streams-remote.ts), as a program of its own: a
 * node on QUIC that bootstraps from the address it is given and, on its parent's word, consumes a
 * stream or counts a raw libp2p stream's records, telling the parent once `count` have arrived.
 *
 * Run by the bench only: `node remote-consumer.ts <bootstrap address>`, with an IPC channel.
 */
import { codecs, defineStream, Network } from '../../platform/node/index.ts'
import { countRecords } from './raw-records.ts'

/** What the parent asks. */
export type ConsumerCommand =
  | { kind: 'subscribe'; stream: string; count: number }
  | { kind: 'raw'; protocol: string; count: number }
  | { kind: 'exit' }

/** What this process tells its parent. */
export type ConsumerReport = { kind: 'up'; peerId: string } | { kind: 'ready' } | { kind: 'done' }

const send = (report: ConsumerReport) => process.send?.(report)

if (process.send === undefined) throw new Error('remote-consumer runs as a child with an IPC channel')
// Orphaned (the bench died): go too.
process.on('disconnect', () => process.exit(0))

const node = await Network.create({
  network: process.env.MOSAIK_BENCH_NETWORK ?? 'bench-remote',
  listen: ['/ip4/127.0.0.1/udp/0/quic-v1'],
  bootstrap: [process.argv[2]!],
  discovery: { departureWindowMs: 0 },
})

process.on('message', (command: ConsumerCommand) => {
  void run(command).catch((err) => {
    process.stderr.write(`remote consumer: ${(err as Error).stack}\n`)
    process.exit(1)
  })
})
send({ kind: 'up', peerId: node.peerId })

async function run(command: ConsumerCommand): Promise<void> {
  switch (command.kind) {
    case 'subscribe': {
      const consumer = node.streams.consumer(defineStream<Uint8Array>(command.stream, { codec: codecs.raw }))
      send({ kind: 'ready' })
      let n = 0
      for await (const _ of consumer) if (++n === command.count) break
      send({ kind: 'done' })
      await consumer.close()
      return
    }
    case 'raw': {
      const { protocol, count } = command
      let done = false
      await node.libp2p.handle(protocol, (stream) => {
        countRecords(stream, (n) => {
          if (n < count || done) return
          done = true
          send({ kind: 'done' })
          void node.libp2p.unhandle(protocol)
        })
      })
      send({ kind: 'ready' })
      return
    }
    case 'exit':
      await node.close()
      process.exit(0)
  }
}

/**
 * One writer of the multi-process `Map.set` rows (collections-remote.ts), as a program of its own: a
 * node that bootstraps from the address it is given, echoes raw Links (the round-trip baseline) and,
 * on its parent's word, makes sequential inserts through its own writer and reports their latencies.
 *
 * Run by the bench only: `node remote-writer.ts <bootstrap address>`, with an IPC channel.
 */
import { collections, Network } from '../../platform/node/index.ts'
import { serveEcho } from './baselines.ts'
import { LISTEN, sequentialSets, type WriterCommand, type WriterReport } from './collections-remote.ts'

if (process.send === undefined) throw new Error('remote-writer runs as a child with an IPC channel')
const send = (report: WriterReport) => process.send?.(report)
// Orphaned (the bench died): go too.
process.on('disconnect', () => process.exit(0))

const node = await Network.create({
  network: process.env.MOSAIK_BENCH_NETWORK ?? 'bench-remote',
  listen: LISTEN,
  bootstrap: [process.argv[2]!],
  discovery: { departureWindowMs: 0 },
})
await serveEcho(node)
const writer = collections.Map.writer<string, number>(node, process.env.MOSAIK_BENCH_STORE ?? 'bench-seq')
let batch = 0
process.on('message', (command: WriterCommand) => {
  if (command.kind === 'exit') {
    void Promise.all([writer.close(), node.close()]).then(() => process.exit(0))
    return
  }
  sequentialSets(writer, `${node.peerId}-${batch++}`, command.n).then(
    (ms) => send({ kind: 'latencies', ms }),
    (err) => {
      process.stderr.write(`remote writer: ${(err as Error).stack}\n`)
      process.exit(1)
    },
  )
})
send({ kind: 'up', peerId: node.peerId, address: node.addresses[0]! })
await writer.when.online()
send({ kind: 'online' })

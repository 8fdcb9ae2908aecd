/**
 * A group member in its own OS process, over QUIC, persisting to a data directory (FileLogStore), for
 * crash tests. Usage: node tests/support/group-process.ts '<json options>'. JSON lines on stdout; JSON
 * commands on stdin. SIGKILL is a crash; restarting with the same dataDir brings the same node back.
 */
import { createInterface } from 'node:readline'
import { GroupKey, Network } from '../../platform/node/index.ts'
import { Counter } from '../groups/support.ts'

const options = JSON.parse(process.argv[2] ?? '{}')
const net = await Network.create({
  network: options.network,
  bootstrap: options.bootstrap ?? [],
  listen: ['/ip4/127.0.0.1/udp/0/quic-v1'],
  dataDir: options.dataDir,
  discovery: { departureWindowMs: 50 },
})
const group = await net.groups.join({
  key: GroupKey.fromSecret(options.secret ?? 'crash-test'),
  stateMachine: new Counter(),
  consensus: options.consensus ?? {},
})

const emit = (msg: unknown) => process.stdout.write(`${JSON.stringify(msg)}\n`)
emit({ event: 'ready', peerId: net.peerId, addresses: net.addresses, committed: group.committed })

const timeout = (ms: unknown) => ({ signal: AbortSignal.timeout(Number(ms ?? 20_000)) })
const commands: Record<string, (args: Record<string, unknown>) => Promise<unknown>> = {
  async status() {
    return { ...group.status, committed: group.committed, value: (await group.query('value')).result }
  },
  async execute(args) {
    return group.execute({ inc: Number(args.inc) }, timeout(args.timeoutMs))
  },
  async awaitLeader(args) {
    return group.when.leaderElected(timeout(args.timeoutMs))
  },
  async awaitLeaderOtherThan(args) {
    const other = String(args.peer)
    while (group.leader === undefined || group.leader === other)
      await group.when.leaderChanged(timeout(args.timeoutMs))
    return group.leader
  },
  async awaitVoters(args) {
    return group.when.voters(Number(args.n), timeout(args.timeoutMs))
  },
  async awaitCommitted(args) {
    return group.when.committed().reaches(Number(args.index), timeout(args.timeoutMs))
  },
  async query(args) {
    return group.query('value', args.consistency === 'strong' ? 'strong' : 'weak')
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
    (err: Error) => emit({ id, error: `${err.name}: ${err.message}` }),
  )
}

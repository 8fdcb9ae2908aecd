/**
 * A group member in its own OS process, over QUIC, persisting to a data directory (FileLogStore), for
 * crash tests. Usage: node tests/support/group-process.ts '<json options>' (see child.ts). SIGKILL is a
 * crash; restarting with the same dataDir brings the same node back.
 */
import { GroupKey, Network } from '../../platform/node/index.ts'
import { Counter } from '../groups/support.ts'
import { serve, timeout } from './child.ts'

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

await serve(
  { peerId: net.peerId, addresses: net.addresses, applied: group.applied },
  {
    async status() {
      return { ...group.status, applied: group.applied, value: (await group.query('value')).result }
    },
    async execute(args) {
      return group.execute({ inc: Number(args.inc) }, timeout(args))
    },
    async awaitLeader(args) {
      return group.when.leaderElected(timeout(args))
    },
    async awaitLeaderOtherThan(args) {
      const other = String(args.peer)
      while (group.leader === undefined || group.leader === other)
        await group.when.leaderChanged(timeout(args))
      return group.leader
    },
    async awaitVoters(args) {
      return group.when.voters(Number(args.n), timeout(args))
    },
    async awaitCommitted(args) {
      return group.when.applied().reaches(Number(args.index), timeout(args))
    },
    async query(args) {
      return group.query('value', args.consistency === 'strong' ? 'strong' : 'weak')
    },
  },
  () => net.close(),
)

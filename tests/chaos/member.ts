/**
 * One member of the chaos test (tests/chaos/groups.test.ts) in its own OS process: a node over QUIC on
 * loopback with a data directory, joined to one group running a `Ledger` and to one replicated Map as
 * a writer. The test drives it over stdin/stdout (tests/chaos/process.ts) and kills it with SIGKILL;
 * restarted on the same data directory it comes back with the same peer id and its state from disk.
 *
 * Usage: node tests/chaos/member.ts '<json options>'. Options: network, secret, bootstrap, dataDir,
 * consensus. Every command answers `{ id, result }` or `{ id, error: '<code>: <message>' }`.
 */
import { collections, type Group, GroupKey, Network } from '../../platform/node/index.ts'
import { serve } from '../support/child.ts'
import { Ledger } from './ledger.ts'

const options = JSON.parse(process.argv[2] ?? '{}')
const net = await Network.create({
  network: options.network,
  bootstrap: options.bootstrap ?? [],
  listen: ['/ip4/127.0.0.1/udp/0/quic-v1'],
  dataDir: options.dataDir,
  discovery: { departureWindowMs: 50 },
})
const group = await net.groups.join({
  key: GroupKey.fromSecret(options.secret ?? 'chaos'),
  stateMachine: new Ledger(),
  consensus: options.consensus ?? {},
})
const map = collections.Map.writer<string, string>(net, `${options.secret ?? 'chaos'}-map`, {
  consensus: options.consensus ?? {},
})

/** The Map's group (joined in the background), for its leader and voters. */
const mapGroup = (map as unknown as { core: { ready: Promise<Group<never>>; group?: Group<never> } }).core

/** A command's optional `timeoutMs` (default 20 s), so no call hangs forever. */
const signal = (args: Record<string, unknown>) => AbortSignal.timeout(Number(args.timeoutMs ?? 20_000))

await serve(
  { peerId: net.peerId, addresses: net.addresses, committed: group.applied },
  {
    /** A write to the group: resolves with its log index once applied here. */
    async gwrite(args) {
      return group.execute({ key: String(args.key), value: String(args.value) }, { signal: signal(args) })
    },
    /** A linearizable read of one key of the group (ReadIndex). */
    async gread(args) {
      const { result, at } = await group.query({ get: String(args.key) }, 'strong', { signal: signal(args) })
      return { value: result, at }
    },
    /** A write to the Map: resolves with its version once applied here. */
    async mset(args) {
      return map.set(String(args.key), String(args.value), { signal: signal(args) })
    },
    /**
     * A linearizable read of one key of the Map: it commits a compare-and-swap that never changes
     * anything (absent -> absent) and reads the local replica once that is applied, so it sees every
     * write acknowledged before it began.
     */
    async mread(args) {
      const key = String(args.key)
      const version = await map.compareExchange(key, undefined, undefined, { signal: signal(args) })
      return { value: map.get(key) ?? null, version }
    },
    async status() {
      const s = group.status
      return {
        role: s.role,
        term: s.term,
        leader: s.leader,
        voters: s.voters,
        committed: group.applied,
        mapVersion: map.version,
        mapLeader: mapGroup.group?.leader,
      }
    },
    async awaitOnline(args) {
      await Promise.all([
        group.when.online({ signal: signal(args) }),
        map.when.online({ signal: signal(args) }),
      ])
      return true
    },
    async awaitVoters(args) {
      await group.when.voters(Number(args.n), { signal: signal(args) })
      await (await mapGroup.ready).when.voters(Number(args.n), { signal: signal(args) })
      return true
    },
    /** Resolves once this replica has applied the group up to `index` and the Map up to `version`. */
    async awaitApplied(args) {
      await group.when.applied().reaches(Number(args.index), { signal: signal(args) })
      await map.when.reaches(Number(args.version), { signal: signal(args) })
      return true
    },
    /** The applied state of both replicas, for comparison across members. */
    async state() {
      return {
        committed: group.applied,
        ledger: group.stateMachine.log,
        mapVersion: map.version,
        map: [...map],
      }
    },
  },
  () => net.close(),
)

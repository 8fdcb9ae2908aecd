/**
 * A replicated counter (a Raft group running a StateMachine) on three nodes that survives its leader.
 *
 * The three nodes join the group with the same secret and state machine; the first forms the cluster
 * and its autopilot promotes the others to voters once they caught up. Every node then executes
 * increments (followers forward them to the leader). The leader's node is closed; the two others
 * elect a new leader within an election timeout (500-750 ms), and a strong (linearizable) read on
 * the survivors shows the value survived, and writes go on.
 *
 * Run: npx node examples/counter-failover.ts      (exits by itself in a few seconds)
 */
import { GroupKey, Network, type StateMachine } from '../platform/node/index.ts'

/** The replicated state: commands change it through `apply`, in the same order on every member. */
class Counter implements StateMachine<{ add: number }, null, number> {
  readonly signature = 'examples/counter/v1' // part of the group id: bump it when semantics change
  value = 0
  apply(cmd: { add: number }): void {
    this.value += cmd.add
  }
  query(): number {
    return this.value
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.value))
  }
  restore(bytes: Uint8Array): void {
    this.value = Number(new TextDecoder().decode(bytes) || '0')
  }
}

const NETWORK = 'examples/counter-failover'
const LISTEN = ['/ip4/127.0.0.1/tcp/0']
const key = GroupKey.fromSecret('examples/counter-failover secret')
const signal = AbortSignal.timeout(20_000) // every wait below gives up after 20 s

const first = await Network.create({ network: NETWORK, listen: LISTEN })
const rest = await Promise.all(
  [1, 2].map(() => Network.create({ network: NETWORK, listen: LISTEN, bootstrap: first.addresses })),
)
const nets = [first, ...rest]
const name = (peer: string | undefined) => `node-${nets.findIndex((n) => n.peerId === peer) + 1}`
const groups = await Promise.all(nets.map((net) => net.groups.join({ key, stateMachine: new Counter() })))

// Wait until all three are voters: failover needs a majority of three, so two can go on without one.
await Promise.all(groups.map((g) => g.when.voters(3, { signal })))
const leader = await groups[0]!.when.leaderElected({ signal })
console.log(`3 voters, leader ${name(leader)} (term ${groups[0]!.status.term})`)

// Increments from every node; `execute` resolves once the command is committed and applied here.
let last = 0
for (let i = 1; i <= 6; i++) last = await groups[i % 3]!.execute({ add: i }, { signal })
await Promise.all(groups.map((g) => g.when.applied().reaches(last, { signal })))
console.log(`counter after 6 increments: ${groups.map((g) => g.stateMachine.value).join(' / ')}`)

// Close the leader's node. The survivors notice and elect another leader among themselves.
const l = nets.findIndex((n) => n.peerId === leader)
const survivors = groups.filter((_, i) => i !== l)
const next = survivors.map((g) => g.when.leaderChanged({ signal }))
const t0 = performance.now()
await nets[l]!.close()
console.log(`closed the leader, ${name(leader)}`)
const newLeader = await Promise.race(next)
console.log(
  `new leader ${name(newLeader)} (term ${survivors[0]!.status.term}) after ${Math.round(performance.now() - t0)} ms`,
)

// A strong read goes through the new leader (ReadIndex): the value survived, and writes go on.
const { result } = await survivors[0]!.query(null, 'strong', { signal })
console.log(`strong read on ${name(nets[groups.indexOf(survivors[0]!)]!.peerId)}: ${result}`)
await survivors[1]!.execute({ add: 100 }, { signal })
console.log(`after one more increment: ${(await survivors[0]!.query(null, 'strong', { signal })).result}`)

await Promise.all(nets.filter((_, i) => i !== l).map((n) => n.close()))
console.log('done')

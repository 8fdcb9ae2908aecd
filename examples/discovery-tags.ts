/**
 * Discovery by role tags: three nodes on loopback, each with a role tag. The `finder` starts first and
 * the others bootstrap from it; it hears of them through `peer:discovered` events, awaits a condition
 * (`discovery.when.peers(1, p => p.tags.has('role:indexer'))`) instead of polling, then reads its
 * catalog and picks peers by tag.
 *
 * Run: npx node examples/discovery-tags.ts      (exits by itself in a second or two)
 *
 * Tags are hashed into the signed peer entry (a Digest), so a node asks `peer.tags.has('role:api')`
 * rather than reading names back; here the known roles are listed to print them.
 */
import { Network, type PeerInfo } from '../platform/node/index.ts'

const NETWORK = 'examples/discovery-tags' // nodes of other networks never see these
const LISTEN = ['/ip4/127.0.0.1/tcp/0'] // loopback only, any free port
const ROLES = ['role:finder', 'role:api', 'role:indexer']
const roleOf = (p: PeerInfo) => ROLES.find((r) => p.tags.has(r)) ?? '?'
const short = (id: string) => `…${id.slice(-6)}`
const signal = AbortSignal.timeout(10_000) // every wait below gives up after 10 s

// The finder: a seed (no bootstrap), listening for peers as they appear in its catalog.
const finder = await Network.create({ network: NETWORK, tags: ['role:finder'], listen: LISTEN })
finder.discovery.on('peer:discovered', (p) => console.log(`finder: discovered ${short(p.id)} (${roleOf(p)})`))
console.log(`finder ${short(finder.peerId)} up, waiting for an indexer`)

// Two more nodes join through the finder's address; one catalog sync teaches them the whole network.
const api = await Network.create({
  network: NETWORK,
  tags: ['role:api', 'region:eu'],
  listen: LISTEN,
  bootstrap: finder.addresses,
})
const indexer = await Network.create({
  network: NETWORK,
  tags: ['role:indexer'],
  listen: LISTEN,
  bootstrap: finder.addresses,
})

// An awaitable condition on the catalog: resolves as soon as it holds (no polling, no sleeps).
const catalog = await finder.discovery.when.peers(1, (p) => p.tags.has('role:indexer'), { signal })
const found = catalog.peers().find((p) => p.tags.has('role:indexer'))!
console.log(`finder: an indexer is here: ${short(found.id)}`)

// The other nodes learn of each other too (through the finder's catalog and gossip).
await Promise.all([api, indexer].map((n) => n.discovery.when.peers(2, undefined, { signal })))
console.log('api and indexer each see 2 peers')

// A catalog snapshot is plain data: filter it by tag like any array.
await finder.discovery.when.peers(2, undefined, { signal })
for (const p of finder.discovery.catalog().peers())
  console.log(`finder catalog: ${short(p.id)} ${roleOf(p)}${p.tags.has('region:eu') ? ' region:eu' : ''}`)
const eu = finder.discovery
  .catalog()
  .peers()
  .filter((p) => p.tags.has('role:api') && p.tags.has('region:eu'))
console.log(`finder: ${eu.length} api node(s) in region:eu`)

await Promise.all([indexer.close(), api.close(), finder.close()])
console.log('done')

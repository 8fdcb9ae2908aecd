import { afterEach, describe, expect, it } from 'vitest'
import {
  type CollectionOptions,
  collections,
  type Group,
  GroupKey,
  type Network,
  type TicketValidator,
  type Version,
} from '../../platform/node/index.ts'
import { Counter, fastConsensus } from '../groups/support.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { giveTicket, jwtBuilder, jwtValidator, sees } from './support.ts'

const key = GroupKey.fromSecret('tickets-group')
type Nets = [Network, Network, Network, Network]

/** The nodes of `nets` other than `n` (a node's catalog never holds its own entry). */
const others = (nets: readonly Network[], n: Network) => nets.filter((o) => o !== n)

/** mosaik's two independent issuers (groups::auth and collections::auth), each a builder and its validator. */
const alpha = {
  builder: () => jwtBuilder('issuer-alpha', 'secret-alpha'),
  validator: () => jwtValidator('issuer-alpha', 'secret-alpha'),
}
const beta = {
  builder: () => jwtBuilder('issuer-beta', 'secret-beta'),
  validator: () => jwtValidator('issuer-beta', 'secret-beta'),
}

/** What the *_auth_tickets tests use of a replica, whatever its kind. */
interface Replica {
  readonly version: Version
  readonly isEmpty: boolean
  readonly when: { online(): Promise<void>; reaches(v: Version): Promise<Version> }
}

/** One collection kind: how to open a writer and a reader, write the value 1 and read it back. */
interface Kind<R extends Replica, W extends R> {
  writer(net: Network, options: CollectionOptions): W
  reader(net: Network, options: CollectionOptions): R
  write(w: W): Promise<Version>
  /** What a replica shows of the value written: 1 once it has it. */
  read(r: R): unknown
}

/** Runs `gated` over one kind (infers the handle types, so the kinds fit in one table). */
const kind =
  <R extends Replica, W extends R>(k: Kind<R, W>) =>
  (nets: readonly Network[], options: CollectionOptions) =>
    gated(nets, options, k)

/**
 * mosaik's `*_auth_tickets` body: n0 writes, n1 (admitted) replicates, and n2 (not admitted under
 * `options.requireTicket`; the caller hands out the tickets) stays empty though it is a member of the
 * collection's group. Instead of mosaik's 3 s sleep, n3 (admitted too) opens a reader only once n0 and
 * n1 saw n2's membership and catches up: had n2 been admitted, it had longer than n3 to do the same.
 */
async function gated<R extends Replica, W extends R>(
  nets: readonly Network[],
  options: CollectionOptions,
  k: Kind<R, W>,
): Promise<void> {
  const [n0, n1, n2, n3] = nets as Nets
  const w = k.writer(n0, options)
  const r1 = k.reader(n1, options)
  const r2 = k.reader(n2, options)
  await within(
    secs(10),
    Promise.all([w.when.online(), r1.when.online()]),
    'writer and admitted reader online',
  )
  const v = await k.write(w)
  await within(secs(5), r1.when.reaches(v), 'the admitted reader replicates')
  expect(k.read(r1)).toBe(1)
  await sees([n0, n1], n2, (p) => p.groups.size === 1, "n2's membership of the collection's group")
  const r3 = k.reader(n3, options)
  await within(secs(10), r3.when.reaches(v), 'an admitted reader opened after n2 catches up')
  expect(k.read(r3)).toBe(1)
  expect(r2.isEmpty).toBe(true)
  expect(r2.version).toBe(0)
}

const map = kind({
  writer: (n, o) => collections.Map.writer<number, number>(n, 'auth-map', o),
  reader: (n, o) => collections.Map.reader<number, number>(n, 'auth-map', o),
  write: (w) => w.set(1, 1),
  read: (r) => r.get(1),
})

/** mosaik's collections::auth::{map,vec,set,cell,once,priority_queue}_auth_tickets. */
const KINDS: [string, ReturnType<typeof kind>][] = [
  ['map_auth_tickets', map],
  [
    'vec_auth_tickets',
    kind({
      writer: (n, o) => collections.Vec.writer<number>(n, 'auth-vec', o),
      reader: (n, o) => collections.Vec.reader<number>(n, 'auth-vec', o),
      write: (w) => w.pushBack(1),
      read: (r) => r.get(0),
    }),
  ],
  [
    'set_auth_tickets',
    kind({
      writer: (n, o) => collections.Set.writer<number>(n, 'auth-set', o),
      reader: (n, o) => collections.Set.reader<number>(n, 'auth-set', o),
      write: (w) => w.add(1),
      read: (r) => (r.has(1) ? 1 : undefined),
    }),
  ],
  [
    'cell_auth_tickets',
    kind({
      writer: (n, o) => collections.Cell.writer<number>(n, 'auth-cell', o),
      reader: (n, o) => collections.Cell.reader<number>(n, 'auth-cell', o),
      write: (w) => w.write(1),
      read: (r) => r.read(),
    }),
  ],
  [
    'once_auth_tickets',
    kind({
      writer: (n, o) => collections.Once.writer<number>(n, 'auth-once', o),
      reader: (n, o) => collections.Once.reader<number>(n, 'auth-once', o),
      write: (w) => w.write(1),
      read: (r) => r.read(),
    }),
  ],
  [
    'priority_queue_auth_tickets',
    kind({
      writer: (n, o) => collections.PriorityQueue.writer<number, number, number>(n, 'auth-pq', o),
      reader: (n, o) => collections.PriorityQueue.reader<number, number, number>(n, 'auth-pq', o),
      write: (w) => w.insert(10, 1, 1),
      read: (r) => r.get(1),
    }),
  ],
]

describe('tickets on groups and collections (mosaik groups::auth, collections::auth)', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  const join = (n: Network, requireTicket: TicketValidator[] = [jwtValidator()], k = key) =>
    n.groups.join({ key: k, stateMachine: new Counter(), consensus: fastConsensus, requireTicket })

  /** Waits until every node sees every other node's entry in the group. */
  async function membersSeen(nets: readonly Network[], group: Group<Counter>): Promise<void> {
    for (const subject of nets) {
      await sees(
        others(nets, subject),
        subject,
        (p) => p.groups.has(group.id),
        'group membership in the catalog',
      )
    }
  }

  it('the GroupId derives from the validators: with, without, and in another order', async () => {
    const n0 = await nodes.create()
    const [a, b] = [jwtValidator('a', 'sa'), jwtValidator('b', 'sb')]
    const ids = await Promise.all(
      [[], [a], [b], [a, b], [b, a]].map(async (v) => (await join(n0, v)).id.toString()),
    )
    expect(new Set(ids).size).toBe(5)
    const n1 = await nodes.create()
    expect((await join(n1, [a, b])).id.toString()).toBe(ids[3])
  })

  it('group_key_derived_from_jwt_validator: nodes derive one key from the policy, share the GroupId and bond', async () => {
    // mosaik's GroupKey::from(&validator): every node with the same policy derives the same key.
    const derived = GroupKey.fromTicketValidator(jwtValidator())
    expect(derived.secret.equals(GroupKey.fromTicketValidator(jwtValidator()).secret)).toBe(true)
    expect(derived.secret.equals(GroupKey.fromTicketValidator(alpha.validator()).secret)).toBe(false)
    const [n0, n1] = (await nodes.star(2)) as Nets
    await giveTicket(n0, jwtBuilder())
    await giveTicket(n1, jwtBuilder())
    // Each node derives the key itself, from its own validator instance.
    const [g0, g1] = await Promise.all(
      [n0, n1].map((n) => join(n, [jwtValidator()], GroupKey.fromTicketValidator(jwtValidator()))),
    )
    expect(g0!.id.equals(g1!.id)).toBe(true)
    await within(secs(10), Promise.all([g0!.when.bonded(1), g1!.when.bonded(1)]), 'n0 and n1 bond')
    expect(g0!.bonds.map((b) => b.peer)).toEqual([n1.peerId])
    expect(g1!.bonds.map((b) => b.peer)).toEqual([n0.peerId])
  })

  it('jwt_authorized_peers_can_bond: members without valid tickets cannot bond until they get one', async () => {
    const [n0, n1, n2, n3] = (await nodes.star(4)) as Nets
    await giveTicket(n0, jwtBuilder())
    await giveTicket(n1, jwtBuilder())
    await giveTicket(n2, jwtBuilder().expiresAt(Date.now() - 60_000))
    const groups = await Promise.all([n0, n1, n2, n3].map((n) => join(n)))
    const [g0, g1, g2, g3] = groups
    await membersSeen([n0, n1, n2, n3], g0!)
    await within(secs(10), Promise.all([g0!.when.bonded(1), g1!.when.bonded(1)]), 'n0 and n1 bond')
    await within(secs(10), g0!.when.leaderElected(), 'the authorized pair elects a leader')
    expect(g0!.bonds.map((b) => b.peer)).toEqual([n1.peerId])
    expect(g1!.bonds.map((b) => b.peer)).toEqual([n0.peerId])
    expect(g2!.bonds).toHaveLength(0)
    expect(g3!.bonds).toHaveLength(0)
    // With a valid ticket the same member bonds with everyone authorized.
    await giveTicket(n3, jwtBuilder())
    await within(secs(10), g3!.when.bonded(2), 'n3 bonds once it holds a ticket')
    expect(g3!.bonds.map((b) => b.peer).sort()).toEqual([n0.peerId, n1.peerId].sort())
    expect(g2!.bonds).toHaveLength(0)
  })

  it('multiple_ticket_validators: only the members holding tickets from both issuers bond', async () => {
    const [n0, n1, n2, n3] = (await nodes.star(4)) as Nets
    for (const n of [n0, n1]) {
      await giveTicket(n, alpha.builder())
      await giveTicket(n, beta.builder())
    }
    await giveTicket(n2, alpha.builder())
    await giveTicket(n3, beta.builder())
    const both = () => [alpha.validator(), beta.validator()]
    const [g0, g1, g2, g3] = await Promise.all([n0, n1, n2, n3].map((n) => join(n, both())))
    await membersSeen([n0, n1, n2, n3], g0!)
    await within(secs(10), Promise.all([g0!.when.bonded(1), g1!.when.bonded(1)]), 'n0 and n1 bond')
    await within(secs(10), g0!.when.leaderElected(), 'the pair holding both tickets elects a leader')
    expect(g0!.bonds.map((b) => b.peer)).toEqual([n1.peerId])
    expect(g1!.bonds.map((b) => b.peer)).toEqual([n0.peerId])
    expect(g2!.bonds).toHaveLength(0)
    expect(g3!.bonds).toHaveLength(0)
    // The missing ticket is all that kept n2 out.
    await giveTicket(n2, beta.builder())
    await within(secs(10), g2!.when.bonded(2), 'n2 bonds once it holds both tickets')
    expect(g2!.bonds.map((b) => b.peer).sort()).toEqual([n0.peerId, n1.peerId].sort())
    expect(g3!.bonds).toHaveLength(0)
  })

  it('bond_terminated_on_jwt_ticket_revocation: removing the ticket closes the bond', async () => {
    const [n0, n1] = (await nodes.star(2)) as Nets
    await giveTicket(n0, jwtBuilder())
    const ticket = await giveTicket(n1, jwtBuilder(), [n0])
    const [g0, g1] = await Promise.all([join(n0), join(n1)])
    await within(secs(10), Promise.all([g0.when.bonded(1), g1.when.bonded(1)]))
    await n1.discovery.removeTicketsOf(ticket.class)
    await within(secs(10), g0.when.unbonded(n1.peerId), 'bond closed after the revocation')
  })

  it('a bond is closed with NotAllowed when the peer ticket expires', async () => {
    const [n0, n1] = (await nodes.star(2)) as Nets
    await giveTicket(n0, jwtBuilder())
    await giveTicket(n1, jwtBuilder().expiresIn(2500), [n0])
    const [g0, g1] = await Promise.all([join(n0), join(n1)])
    await within(secs(10), Promise.all([g0.when.bonded(1), g1.when.bonded(1)]))
    await within(secs(8), g0.when.unbonded(n1.peerId), 'bond closed at expiry')
  })

  it('mismatched_jwt_auth_config_prevents_bonding: with and without a validator are different groups', async () => {
    // Everyone holds a ticket, so only the differing configuration can keep n0 and n1 apart.
    const [n0, n1, n2, n3] = (await nodes.star(4)) as Nets
    for (const n of [n0, n1, n2, n3]) await giveTicket(n, jwtBuilder())
    // n0 and n3 require the ticket; n1 and n2 require nothing.
    const [g0, g1, g2, g3] = await Promise.all([join(n0), join(n1, []), join(n2, []), join(n3)])
    expect(g0.id.equals(g1.id)).toBe(false)
    // Instead of mosaik's 3 s sleep: each side sees the other's group, and bonds with its own kind.
    await sees([n0], n1, (p) => p.groups.has(g1.id), "n1's group in n0's catalog")
    await sees([n1], n0, (p) => p.groups.has(g0.id), "n0's group in n1's catalog")
    await within(
      secs(10),
      Promise.all([g0.when.bonded(1), g1.when.bonded(1), g2.when.bonded(1), g3.when.bonded(1)]),
      'each configuration bonds with its own kind',
    )
    expect(g0.bonds.map((b) => b.peer)).toEqual([n3.peerId])
    expect(g1.bonds.map((b) => b.peer)).toEqual([n2.peerId])
  })

  it.each(KINDS)(
    '%s: an authorized reader replicates; a reader without a ticket stays out',
    async (_, run) => {
      const nets = (await nodes.star(4)) as Nets
      const [n0, n1, , n3] = nets
      // n2 holds no ticket.
      for (const n of [n0, n1, n3]) await giveTicket(n, jwtBuilder(), others(nets, n))
      await run(nets, { requireTicket: jwtValidator(), consensus: fastConsensus })
    },
  )

  it('collection_macro_with_multiple_tickets (no macro here): a reader holding one of two required tickets stays out', async () => {
    const nets = (await nodes.star(4)) as Nets
    const [n0, n1, n2, n3] = nets
    for (const n of [n0, n1, n3]) {
      await giveTicket(n, alpha.builder(), others(nets, n))
      await giveTicket(n, beta.builder(), others(nets, n))
    }
    // n2 holds only alpha's ticket.
    await giveTicket(n2, alpha.builder(), others(nets, n2))
    await map(nets, {
      requireTicket: [alpha.validator(), beta.validator()],
      consensus: fastConsensus,
    })
  })

  it("different_auths_produce_different_group_ids: a collection's GroupId follows its validators", async () => {
    const [n0, n1] = [await nodes.create(), await nodes.create()]
    // A collection handle exposes no group id: read the one its node advertises once it joined.
    const groupIdOf = async (
      net: Network,
      open: (net: Network) => { when: { restored(): Promise<Version> } },
    ) => {
      const before = [...net.discovery.me().entry.groups].map(String)
      // `restored` resolves once the handle joined its group (and its node advertised it).
      await within(secs(10), open(net).when.restored(), 'the collection joined its group')
      const added = [...net.discovery.me().entry.groups].map(String).filter((g) => !before.includes(g))
      expect(added).toHaveLength(1)
      return added[0]
    }
    const writer = (requireTicket?: TicketValidator) => (net: Network) =>
      collections.Map.writer<number, number>(net, 'auth-ids', { requireTicket, consensus: fastConsensus })
    const ids = [
      await groupIdOf(n0, writer(alpha.validator())),
      await groupIdOf(n0, writer(beta.validator())),
      await groupIdOf(n0, writer()),
    ]
    expect(new Set(ids).size).toBe(3)
    // The same policy elsewhere, even as a reader, is the same group.
    const reader = (net: Network) =>
      collections.Map.reader<number, number>(net, 'auth-ids', {
        requireTicket: alpha.validator(),
        consensus: fastConsensus,
      })
    expect(await groupIdOf(n1, reader)).toBe(ids[0])
  })
})

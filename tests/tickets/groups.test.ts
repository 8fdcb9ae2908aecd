import { afterEach, describe, expect, it } from 'vitest'
import { collections, type Group, GroupKey, type Network } from '../../platform/node/index.ts'
import { Counter, fastConsensus } from '../groups/support.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { giveTicket, jwtBuilder, jwtValidator, sees } from './support.ts'

const key = GroupKey.fromSecret('tickets-group')
type Nets = [Network, Network, Network, Network]

describe('tickets on groups and collections (mosaik groups::auth)', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  const join = (n: Network, requireTicket = [jwtValidator()]) =>
    n.groups.join({ key, stateMachine: new Counter(), consensus: fastConsensus, requireTicket })

  /** Waits until every node sees every other node's entry in the group. */
  async function membersSeen(nets: readonly Network[], group: Group<Counter>): Promise<void> {
    for (const subject of nets) {
      const others = nets.filter((n) => n !== subject)
      await sees(others, subject, (p) => p.groups.has(group.id), 'group membership in the catalog')
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
    // mosaik's GroupKey::from(&validator): every node with the same policy derives the same key.
    expect(
      GroupKey.fromTicketValidator(jwtValidator()).secret.equals(
        GroupKey.fromTicketValidator(jwtValidator()).secret,
      ),
    ).toBe(true)
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
    const [n0, n1] = (await nodes.star(2)) as Nets
    await giveTicket(n0, jwtBuilder())
    await giveTicket(n1, jwtBuilder(), [n0])
    const [g0, g1] = await Promise.all([join(n0), join(n1, [])])
    expect(g0.id.equals(g1.id)).toBe(false)
    await sees([n0], n1, (p) => p.groups.has(g1.id))
    expect(g0.bonds).toHaveLength(0)
  })

  it('map_auth_tickets: an authorized reader replicates; a reader without a ticket stays out', async () => {
    const [n0, n1, n2] = (await nodes.star(3)) as Nets
    await giveTicket(n0, jwtBuilder(), [n1, n2])
    await giveTicket(n1, jwtBuilder(), [n0, n2])
    const options = { requireTicket: jwtValidator(), consensus: fastConsensus }
    const w = collections.Map.writer<string, number>(n0, 'auth-map', options)
    const r1 = collections.Map.reader<string, number>(n1, 'auth-map', options)
    const r2 = collections.Map.reader<string, number>(n2, 'auth-map', options)
    await within(secs(10), w.when.online())
    const v = await w.set('alice', 100)
    await within(secs(10), r1.when.reaches(v))
    expect(r1.get('alice')).toBe(100)
    // n2 is a member of the collection's group (its entry says so), yet nothing reached it.
    await sees([n0], n2, (p) => p.groups.size === 1)
    expect(r2.size).toBe(0)
    expect(r2.version).toBe(0)
  })
})

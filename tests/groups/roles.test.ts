/**
 * Members on a runtime that never votes: a browser's platform says `groupVoting: false` (hidden tabs
 * throttle their timers), so its groups and collection writers join as observers and still write
 * through the voters. Here a Node network stands in for a page with the browser's rule; the browser
 * itself is tested in e2e/collections.spec.ts.
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  collections,
  GroupKey,
  InvalidArgumentError,
  type Network,
  nodePlatform,
} from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { Counter, fastConsensus } from './support.ts'

const T = secs(15)

describe('members on a runtime that never votes', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  /** Two voting Node members and one node on the browser's rule, all online in the counter group. */
  async function cluster() {
    const [n0, n1] = (await nodes.star(2)) as [Network, Network]
    const page = await nodes.create({
      bootstrap: n0.addresses,
      platform: { ...nodePlatform, groupVoting: false },
    })
    await within(T, n0.discovery.when.peers(2), 'the nodes see each other')
    const join = (net: Network) =>
      net.groups.join({
        key: GroupKey.fromSecret('roles'),
        stateMachine: new Counter(),
        consensus: fastConsensus,
      })
    const [g0, g1, gp] = await Promise.all([join(n0), join(n1), join(page)])
    await within(T, Promise.all([g0, g1, gp].map((g) => g.when.online())), 'every member is online')
    return { n0, n1, page, g0, g1, gp }
  }

  it('joins as an observer by default, and its commands commit through the voters', async () => {
    const { page, g0, g1, gp } = await cluster()
    // The voters learn from the bond handshake that the page is an observer.
    await within(T, Promise.all([g0.when.bonded(2), g1.when.bonded(2)]), 'the voters bond with the page')
    for (const g of [g0, g1]) {
      expect(g.bonds.find((b) => b.peer === page.peerId)?.observer).toBe(true)
      expect(g.voters).not.toContain(page.peerId)
    }
    expect(gp.status.isVoter).toBe(false)

    const at = await gp.execute({ inc: 5 })
    await within(T, g0.when.applied().reaches(at), 'the write reaches a voter')
    expect(g0.stateMachine.value).toBe(5)
    expect(gp.stateMachine.value).toBe(5)
  })

  it('refuses a voting preference', async () => {
    const page = await nodes.create({ platform: { ...nodePlatform, groupVoting: false } })
    for (const preference of ['normal', 'reluctant'] as const) {
      const joining = page.groups.join({
        key: GroupKey.fromSecret('x'),
        stateMachine: new Counter(),
        preference,
      })
      await expect(joining).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(joining).rejects.toThrow(/never vote/)
    }
    // An explicit observer is what the default is.
    const g = await page.groups.join({
      key: GroupKey.fromSecret('x'),
      stateMachine: new Counter(),
      preference: 'observer',
    })
    expect(g.status.isVoter).toBe(false)
  })

  it("writes a collection as an observer: the page's Map writer commits through the Node writers", async () => {
    const [n0, n1] = (await nodes.star(2)) as [Network, Network]
    const page = await nodes.create({
      bootstrap: n0.addresses,
      platform: { ...nodePlatform, groupVoting: false },
    })
    await within(T, n0.discovery.when.peers(2), 'the nodes see each other')
    const options = { consensus: fastConsensus }
    const writers = [n0, n1].map((n) => collections.Map.writer<string, number>(n, 'roles-map', options))
    const mine = collections.Map.writer<string, number>(page, 'roles-map', options)
    await within(T, Promise.all([...writers, mine].map((w) => w.when.online())), 'every writer is online')
    const v = await mine.set('from-page', 7)
    await within(T, writers[0]!.when.reaches(v), 'a Node writer reaches the page write')
    expect(writers[0]!.get('from-page')).toBe(7)
    const back = await writers[1]!.set('from-node', 8)
    await within(T, mine.when.reaches(back), 'the page reaches a Node write')
    expect(mine.get('from-node')).toBe(8)
  })
})

import { afterEach, describe, expect, it } from 'vitest'
import { CloseCode, GroupKey } from '../../platform/node/index.ts'
import { initiateBond } from '../../src/groups/bond.ts'
import { BOND_HANDSHAKES_PER_HOST, BOND_HANDSHAKES_PER_PEER } from '../../src/groups/groups.ts'
import type { Link } from '../../src/transport/link.ts'
import { externalAddress, hostCrowd, NO_EXTERNAL_ADDRESS } from '../support/hosts.ts'
import { Nodes } from '../support/nodes.ts'
import { ms, secs, within } from '../support/time.ts'
import { Counter, fastConsensus, observerSecrets } from './support.ts'

/**
 * Inbound bond handshakes per remote host: identities cost nothing, so the peers of one host together
 * may have only BOND_HANDSHAKES_PER_HOST in progress, whatever each has itself. The attackers listen
 * and dial on this machine's own non-loopback address, so the member counts them as one remote host.
 */

const T = secs(10)
const external = externalAddress()
if (!external) console.warn(`[groups bond-hosts.test] skipped: ${NO_EXTERNAL_ADDRESS}`)

describe.skipIf(!external)(
  `a member bounds the bond handshakes of one remote host${external ? '' : ` (skipped: ${NO_EXTERNAL_ADDRESS})`}`,
  () => {
    const nodes = new Nodes('tcp')
    afterEach(() => nodes.closeAll())

    it(`refuses a host's bond handshakes past ${BOND_HANDSHAKES_PER_HOST} in progress with 429; loopback still bonds`, async () => {
      const {
        victim: member,
        holders,
        late,
        good,
      } = await hostCrowd(nodes, external!, BOND_HANDSHAKES_PER_HOST / BOND_HANDSHAKES_PER_PEER, {
        groups: { handshakeTimeoutMs: ms(3000) },
      })
      const g = await member.groups.join({
        key: GroupKey.fromSecret('right'),
        stateMachine: new Counter(),
        consensus: fastConsensus,
      })
      await within(T, g.when.isLeader())
      const protocol = member.context.protocol('groups/1')

      // Links that never send their hello, BOND_HANDSHAKES_PER_PEER per identity: no peer is over its
      // own cap, but together they hold every slot of their host until the handshake timeout.
      const held: Link[] = []
      for (const attacker of holders) {
        for (let i = 0; i < BOND_HANDSHAKES_PER_PEER; i++) {
          held.push(await attacker.context.openLink(member.peerId, protocol))
        }
      }
      // A fresh identity of that host is refused at once, though it has no handshake in progress.
      const over = await late.context.openLink(member.peerId, protocol)
      expect(await within(T, over.closed)).toEqual({
        code: CloseCode.TooManyStreams,
        reason: 'too many bond handshakes from this host',
        remote: true,
      })
      expect(held.filter((l) => l.isClosed)).toEqual([])

      // A peer on loopback (not counted per host) bonds while the host's handshakes are held.
      const link = await good.context.openLink(member.peerId, protocol)
      await within(T, initiateBond(link, observerSecrets(member, good, g.id), AbortSignal.timeout(T)))
      link.abort()
      expect(held.filter((l) => l.isClosed)).toEqual([])

      // The held handshakes time out, and the host's slots are free again.
      for (const l of held) {
        expect(await within(T, l.closed)).toMatchObject({ code: CloseCode.GroupTimeout, remote: true })
      }
      const again = await late.context.openLink(member.peerId, protocol)
      await within(T, initiateBond(again, observerSecrets(member, late, g.id), AbortSignal.timeout(T)))
      again.abort()
    })
  },
)

import { afterEach, describe, expect, it } from 'vitest'
import { CloseCode, type Network } from '../../platform/node/index.ts'
import { SYNCS_PER_HOST, SYNCS_PER_PEER } from '../../src/discovery/limits.ts'
import type { Link } from '../../src/transport/link.ts'
import { externalAddress, hostCrowd, NO_EXTERNAL_ADDRESS } from '../support/hosts.ts'
import { Nodes } from '../support/nodes.ts'
import { ms, secs, within } from '../support/time.ts'

/**
 * Discovery's inbound catalog syncs per remote host: identities cost nothing, so the peers of one host
 * together may hold only SYNCS_PER_HOST syncs, whatever each holds itself. The attackers listen and
 * dial on this machine's own non-loopback address, so the victim counts them as one remote host.
 */

const syncProtocol = (net: Network) => `/mosaik/${net.networkId.short()}/discovery/sync/1`

const external = externalAddress()
if (!external) console.warn(`[discovery host-limits.test] skipped: ${NO_EXTERNAL_ADDRESS}`)

describe.skipIf(!external)(
  `discovery bounds the catalog syncs of one remote host${external ? '' : ` (skipped: ${NO_EXTERNAL_ADDRESS})`}`,
  () => {
    const nodes = new Nodes('tcp')
    afterEach(() => nodes.closeAll())

    it(`refuses a host's syncs past ${SYNCS_PER_HOST} in progress with 429, whatever its identities; loopback still syncs`, async () => {
      const { victim, holders, late, good } = await hostCrowd(
        nodes,
        external!,
        SYNCS_PER_HOST / SYNCS_PER_PEER,
        {
          discovery: { requestTimeoutMs: ms(3000) },
        },
      )

      // Syncs that announce one entry and never send it: each holds a slot until the deadline.
      const held: Link[] = []
      for (const attacker of holders) {
        for (let i = 0; i < SYNCS_PER_PEER; i++) {
          const link = await attacker.context.openLink(victim.peerId, syncProtocol(victim))
          await link.send([1, victim.networkId.bytes, 1, 0])
          held.push(link)
        }
      }
      // A fresh identity of that host is refused at once, though it holds no sync itself.
      const over = await late.context.openLink(victim.peerId, syncProtocol(victim))
      await over.send([1, victim.networkId.bytes, 1, 0]).catch(() => {})
      expect(await within(secs(5), over.closed)).toEqual({
        code: CloseCode.TooManyStreams,
        reason: 'too many concurrent exchanges from this host',
        remote: true,
      })
      expect(held.filter((l) => l.isClosed)).toEqual([])

      // A peer on loopback (not counted per host) syncs while the host's syncs are held.
      await within(secs(5), good.discovery.syncWith(victim.peerId), 'the loopback peer syncs')
      expect(held.filter((l) => l.isClosed)).toEqual([])

      // The held syncs time out, and the host's slots are free again.
      for (const link of held) {
        expect(await within(secs(5), link.closed)).toMatchObject({ code: CloseCode.Timeout, remote: true })
      }
      await within(secs(5), late.discovery.syncWith(victim.peerId), 'the late identity syncs')
    })
  },
)

import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CloseCode,
  Digest,
  encodeCanonical,
  type Group,
  GroupKey,
  type Network,
} from '../../platform/node/index.ts'
import { BOND_PROTOCOL_VERSION, BondMsg, type BondSecrets, initiateBond } from '../../src/groups/bond.ts'
import type { Message } from '../../src/groups/raft/types.ts'
import { encodeRaftMessage } from '../../src/groups/wire.ts'
import { Req } from '../../src/groups/worker/host.ts'
import { randomBytes } from '../../src/primitives/bytes.ts'
import type { Link } from '../../src/transport/link.ts'
import { Counter, fastConsensus } from '../groups/support.ts'
import { Nodes } from '../support/nodes.ts'
import { ms, secs, within } from '../support/time.ts'
import {
  count,
  expectVictimCloses,
  hostileBytes,
  lanes,
  MemoryWatch,
  printCounts,
  type Step,
  steps,
  timeoutFor,
  WIRE_RUNS,
  watchCrashes,
  writeSteps,
} from './support.ts'

/**
 * Layer 2 for groups: a victim leads a one-member group. Attackers open raw bond links with fuzzed
 * handshakes (they do not know the secret), and, knowing the secret, complete a real handshake as
 * observers and then send fuzzed bond frames: Raft messages, requests (forward, read index, fetch
 * entries, snapshot request and fetch), responses, snapshot offers, bond notices, unknown kinds, and
 * framing abuse. Every attacked link gets a close code within a deadline; the group keeps committing
 * and an honest member still joins and replicates at the end.
 */

const runs = WIRE_RUNS
const HANDSHAKE_TIMEOUT = ms(200)
const DEADLINE = HANDSHAKE_TIMEOUT + secs(3)
const MAX_FRAME = 4 * 1024 * 1024
const key = GroupKey.fromSecret('fuzz-group')

const nodes = new Nodes('memory')
let victim: Network
let group: Group<Counter>
let attackers: Network[]
let memory: MemoryWatch
const crashes = watchCrashes()

const bondProtocol = (net: Network) => net.context.protocol('groups/1')

beforeAll(async () => {
  victim = await nodes.create({ groups: { handshakeTimeoutMs: HANDSHAKE_TIMEOUT } })
  attackers = await Promise.all([1, 2, 3, 4].map(() => nodes.create({ bootstrap: victim.addresses })))
  await within(secs(10), victim.discovery.when.peers(4), 'the victim knows every attacker')
  group = await victim.groups.join({ key, stateMachine: new Counter(), consensus: fastConsensus })
  await within(secs(10), group.when.leaderElected(), 'the victim leads its group')
  await group.execute({ inc: 1 })
  memory = new MemoryWatch()
})

afterAll(async () => {
  crashes.stop()
  await nodes.closeAll()
  printCounts('groups')
})

const BOND_CODES = new Set<number>([
  CloseCode.ProtocolViolation,
  CloseCode.FrameTooLarge,
  CloseCode.UnsupportedVersion,
  CloseCode.DifferentNetwork,
  CloseCode.UnknownPeer,
  CloseCode.GroupInvalidHandshake,
  CloseCode.GroupNotFound,
  CloseCode.GroupInvalidProof,
  CloseCode.GroupTimeout,
])

describe('fuzz: the groups protocol end to end', () => {
  it(
    'bond handshake: a peer without the secret is refused with a code',
    async () => {
      const net = victim.networkId.bytes
      const gid = group.id.bytes
      const valid = [
        [BOND_PROTOCOL_VERSION, net, gid, randomBytes(32), false],
        [BOND_PROTOCOL_VERSION, net, gid, randomBytes(32), true],
        [BOND_PROTOCOL_VERSION, net, Digest.from('no-such-group').bytes, randomBytes(32), false],
        [2, net, gid, randomBytes(32), false],
        [BOND_PROTOCOL_VERSION, Digest.from('elsewhere').bytes, gid, randomBytes(32), false],
        [randomBytes(32)],
      ]
      const bodies = hostileBytes(valid)
      const hello = fc.constantFrom(...valid.slice(0, 2).map((v) => encodeCanonical(v)))
      await lanes('bond handshake', [...attackers, ...attackers], runs, (attacker) =>
        fc.asyncProperty(
          fc.option(hello, { nil: undefined }),
          fc.array(steps(bodies, MAX_FRAME), { minLength: 0, maxLength: 4 }),
          async (first, rest) => {
            count('bond handshake')
            const sequence: Step[] = first ? [{ t: 'message', body: first }, ...rest] : rest
            const link = await attacker.context.openLink(victim.peerId, bondProtocol(victim))
            try {
              const written = writeSteps(link, sequence)
              await expectVictimCloses(link, DEADLINE, BOND_CODES, written)
            } finally {
              link.abort()
              await memory.sample()
            }
          },
        ),
      )
      expect(group.bonds).toEqual([])
    },
    timeoutFor(runs, 60),
  )

  it(
    'bond frames: a member that sends garbage is closed with a code, and the group keeps committing',
    async () => {
      const clusterIds = ['c1', victim.peerId]
      const raft = fc.sample(
        fc.record({
          term: fc.nat(5),
          clusterId: fc.constantFrom(...clusterIds),
          type: fc.constantFrom('heartbeat', 'heartbeatResponse', 'appendResponse', 'vote', 'voteResponse'),
        }),
        { numRuns: 10, seed: 9 },
      )
      const messages = raft.map(
        (r) =>
          ({
            from: '',
            to: '',
            ...r,
            ...{
              heartbeat: { commit: 1, seq: 1 },
              heartbeatResponse: { seq: 1 },
              appendResponse: {
                reject: true,
                index: 1,
                hintIndex: 0,
                hintTerm: 0,
                seq: 1,
                catchingUp: false,
              },
              vote: { preVote: true, lastIndex: 0, lastTerm: 0 },
              voteResponse: { preVote: false, answer: 'deny' },
            }[r.type],
          }) as unknown as Message,
      )
      const valid: unknown[] = [
        [BondMsg.Ping, null],
        [BondMsg.Pong, null],
        ...messages.map((m) => [BondMsg.Raft, encodeRaftMessage(m)]),
        [BondMsg.Request, [1, Req.Forward, [randomBytes(4)]]],
        [BondMsg.Request, [2, Req.ReadIndex, null]],
        [BondMsg.Request, [3, Req.FetchEntries, [1, 10, victim.peerId]]],
        [BondMsg.Request, [4, Req.RequestSnapshot, null]],
        [BondMsg.Request, [5, Req.FetchSnapshot, [1, 0, 1024]]],
        [BondMsg.Response, [1, true, null]],
        [BondMsg.SnapshotOffer, [{ index: 1, term: 1, config: { voters: [] } }, 8, randomBytes(32)]],
        [BondMsg.BondFormed, attackers[0]!.discovery.me().toWire()],
      ]
      const bodies = hostileBytes(valid)
      // An unknown bond frame kind: always a violation, so every case ends in a close.
      const sentinel: Step = { t: 'message', body: encodeCanonical([99, null]) }
      let retries = 0
      await lanes('bond frames', attackers, runs, (attacker) => {
        const secrets: BondSecrets = {
          networkId: victim.networkId,
          groupId: group.id,
          secret: key.secret,
          localId: attacker.peerId,
          observer: true,
        }
        return fc.asyncProperty(
          fc.array(
            steps(bodies, MAX_FRAME).filter((s) => s.t !== 'raw' && s.t !== 'truncated'),
            { minLength: 1, maxLength: 5 },
          ),
          async (sequence) => {
            count('bond frames')
            const link = await bond(attacker, secrets, () => retries++)
            try {
              writeSteps(link, [...sequence, sentinel])
              await expectVictimCloses(
                link,
                DEADLINE,
                new Set([CloseCode.ProtocolViolation, CloseCode.FrameTooLarge, CloseCode.GracefulShutdown]),
              )
            } finally {
              link.abort()
              await memory.sample()
            }
          },
        )
      })
      count('bond frames (handshakes retried: bond not yet released)', retries)
      // The group still leads and commits.
      expect(group.isLeader).toBe(true)
      await within(secs(10), group.execute({ inc: 1 }), 'a commit after the attack')
    },
    timeoutFor(runs, 80),
  )

  it('a bond version that is a map with a toString key is refused as unsupported (regression)', async () => {
    const link = await attackers[0]!.context.openLink(victim.peerId, bondProtocol(victim))
    try {
      await link.send([{ toString: 0 }, victim.networkId.bytes, group.id.bytes, randomBytes(32), false])
      const close = await expectVictimCloses(link, DEADLINE, BOND_CODES)
      expect(close.code).toBe(CloseCode.UnsupportedVersion)
    } finally {
      link.abort()
    }
  })

  it('an honest member still joins and replicates; memory bounded; nothing unhandled', async () => {
    const honest = await nodes.create({ bootstrap: victim.addresses })
    await within(secs(10), victim.discovery.when.peer(honest.peerId), 'the victim sees the honest node')
    const g = await honest.groups.join({ key, stateMachine: new Counter(), consensus: fastConsensus })
    const last = await within(secs(10), group.execute({ inc: 1 }), 'a commit')
    await within(secs(15), g.when.applied().reaches(last), 'the honest member catches up')
    expect((await g.query('value')).result).toBe((await group.query('value')).result)
    expect(crashes.errors).toEqual([])
    memory.expectBounded(96)
  })
})

/**
 * Bonds `attacker` with the victim as an observer that holds the secret. The victim lets go of the
 * previous bond of this peer once that link has closed; until then it answers AlreadyBonded, and the
 * handshake is tried again.
 */
async function bond(attacker: Network, secrets: BondSecrets, retried: () => void): Promise<Link> {
  for (let attempt = 0; ; attempt++) {
    const link = await attacker.context.openLink(victim.peerId, bondProtocol(victim))
    try {
      await initiateBond(link, secrets, AbortSignal.timeout(DEADLINE))
      return link
    } catch (err) {
      link.abort()
      const close = await link.closed
      if (close.code !== CloseCode.GroupAlreadyBonded || attempt >= 50) throw err
      retried()
    }
  }
}

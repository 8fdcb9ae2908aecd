import { TopicValidatorResult } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CloseCode, Digest, encodeCanonical, type Network, PeerEntry } from '../../platform/node/index.ts'
import { departureToWire, signDeparture } from '../../src/discovery/departure.ts'
import { SYNC_CHUNK } from '../../src/discovery/limits.ts'
import { randomBytes } from '../../src/primitives/bytes.ts'
import { Nodes } from '../support/nodes.ts'
import { ms, secs, within } from '../support/time.ts'
import {
  count,
  expectVictimCloses,
  frame,
  hostileBytes,
  KIND_CLOSE,
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
 * Layer 2 for discovery: a victim node, an honest peer and three attackers, started once. Attackers
 * open raw catalog sync and ping links and write fast-check generated frame sequences under their
 * Link: valid headers then garbage, wrong versions, truncated frames, unknown frame kinds, bogus credit,
 * length prefixes over the frame limit. Every attacked link must get a close code from the victim within
 * a deadline; gossip announcements go through the victim's topic validator, which must always answer.
 * At the end the victim still serves the honest peer, memory is bounded and nothing went unhandled.
 */

const runs = WIRE_RUNS
const REQUEST_TIMEOUT = ms(200)
const DEADLINE = REQUEST_TIMEOUT + secs(3)
const DISCOVERY_CODES = new Set<number>([
  CloseCode.ProtocolViolation,
  CloseCode.UnsupportedVersion,
  CloseCode.DifferentNetwork,
  CloseCode.FrameTooLarge,
  CloseCode.Timeout,
  CloseCode.TooManyStreams,
])

const nodes = new Nodes('memory')
let victim: Network
let honest: Network
let attackers: Network[]
let memory: MemoryWatch
const crashes = watchCrashes()

const syncProtocol = (net: Network) => net.context.protocol('discovery/sync/1')
const pingProtocol = (net: Network) => net.context.protocol('discovery/ping/1')

beforeAll(async () => {
  victim = await nodes.create({ discovery: { requestTimeoutMs: REQUEST_TIMEOUT, maxPeers: 64 } })
  honest = await nodes.create({ bootstrap: victim.addresses, tags: ['honest'] })
  attackers = await Promise.all([1, 2, 3, 4].map(() => nodes.create({ bootstrap: victim.addresses })))
  await within(secs(10), victim.discovery.when.peers(5), 'the victim knows every node')
  memory = new MemoryWatch()
})

afterAll(async () => {
  crashes.stop()
  await nodes.closeAll()
  printCounts('discovery')
})

/** Opens a raw link from `attacker`, writes `sequence` under it, and checks the victim's close code. */
async function attack(attacker: Network, protocol: string, sequence: readonly Step[]): Promise<void> {
  const link = await attacker.context.openLink(victim.peerId, protocol)
  try {
    const written = writeSteps(link, sequence)
    await expectVictimCloses(link, DEADLINE, DISCOVERY_CODES, written)
  } finally {
    link.abort()
    await memory.sample()
  }
}

/** A sequence: an optional first message drawn from `first`, then up to four abusive steps. */
function sequences(
  first: fc.Arbitrary<Uint8Array>,
  bodies: fc.Arbitrary<Uint8Array>,
  maxFrameSize: number,
): fc.Arbitrary<Step[]> {
  return fc
    .tuple(
      fc.option(
        first.map((body) => ({ t: 'message' as const, body })),
        { nil: undefined, freq: 3 },
      ),
      fc.array(steps(bodies, maxFrameSize), { minLength: 0, maxLength: 4 }),
    )
    .map(([head, rest]) => (head ? [head, ...rest] : rest))
    .filter((s) => s.length > 0)
}

describe('fuzz: discovery protocols end to end', () => {
  it(
    'ping: every hostile exchange is closed with a code',
    async () => {
      const net = victim.networkId.bytes
      const valid = [
        [1, net],
        [2, net],
        [0, net],
        [1, Digest.from('elsewhere').bytes],
        [1, net, 'extra'],
      ]
      const bodies = hostileBytes(valid)
      // The ping server takes frames up to its entry size: the request is a few dozen bytes.
      const maxFrame = victim.discovery.config.maxEntryBytes + 1024
      await lanes(
        'ping',
        attackers.flatMap((a) => [a, a]),
        runs,
        (attacker) =>
          fc.asyncProperty(sequences(bodies, bodies, maxFrame), async (sequence) => {
            count('ping')
            await attack(attacker, pingProtocol(victim), sequence)
          }),
      )
    },
    timeoutFor(runs, 60),
  )

  it(
    'catalog sync: every hostile exchange is closed with a code',
    async () => {
      const net = victim.networkId.bytes
      const signed = attackers[0]!.discovery.me().toWire()
      const departure = departureToWire(
        await signDeparture(
          {
            peerId: attackers[1]!.peerId,
            network: victim.networkId,
            lastVersion: { start: 1, update: 1 },
            timestamp: Date.now(),
          },
          attackers[1]!.context.privateKey,
        ),
      )
      const headers = [
        [1, net, 1, 0],
        [1, net, 0, 1],
        [1, net, 2, 1],
        [1, net, 0, 0],
        [2, net, 0, 0],
        [1, Digest.from('elsewhere').bytes, 0, 0],
        [1, net, 10 ** 9, 0],
        [1, net, -1, 0],
      ]
      const chunks = [[signed], [departure], [signed, departure], Array(SYNC_CHUNK + 1).fill(signed), []]
      const maxFrame = 256 * 1024 + 4096
      await lanes(
        'catalog sync',
        attackers.flatMap((a) => [a, a, a]),
        runs,
        (attacker) =>
          fc.asyncProperty(
            sequences(hostileBytes(headers), hostileBytes(chunks), maxFrame),
            async (sequence) => {
              count('catalog sync')
              await attack(attacker, syncProtocol(victim), sequence)
            },
          ),
      )
    },
    timeoutFor(runs, 60),
  )

  it(
    'link framing: garbage under a link, and a close frame with a garbage body, end the link',
    async () => {
      const maxFrame = victim.discovery.config.maxEntryBytes + 1024
      const raw = fc.uint8Array({ maxLength: 64 })
      await lanes(
        'link framing',
        attackers.flatMap((a) => [a, a]),
        runs,
        (attacker) =>
          fc.asyncProperty(
            fc.array(steps(raw, maxFrame), { minLength: 1, maxLength: 6 }),
            fc.option(raw, { nil: undefined }),
            async (sequence, closeBody) => {
              count('link framing')
              const link = await attacker.context.openLink(victim.peerId, pingProtocol(victim))
              try {
                const written = writeSteps(link, sequence)
                if (closeBody === undefined) {
                  await expectVictimCloses(link, DEADLINE, DISCOVERY_CODES, written)
                } else {
                  // The attacker closed first (a close frame the Link did not write): the victim ends
                  // its side, with a code if it refused something before, or just ends.
                  writeSteps(link, [{ t: 'raw', bytes: frame(KIND_CLOSE, closeBody) }])
                  await within(DEADLINE, link.closed, 'the link ends')
                }
              } finally {
                link.abort()
                await memory.sample()
              }
            },
          ),
      )
    },
    timeoutFor(runs, 60),
  )

  it(
    'gossip announcements: the topic validator answers every hostile message',
    async () => {
      const validate = victim.libp2p.services.pubsub.topicValidators.get(
        `mosaik/${victim.networkId}/announce/1`,
      )
      expect(validate).toBeDefined()
      const signed = honest.discovery.me().toWire()
      const departure = departureToWire(
        await signDeparture(
          {
            peerId: attackers[2]!.peerId,
            network: victim.networkId,
            lastVersion: { start: 1, update: 1 },
            timestamp: Date.now(),
          },
          attackers[2]!.context.privateKey,
        ),
      )
      const valid = [
        [0, signed, randomBytes(8)],
        [1, departure, randomBytes(8)],
        [2, signed, randomBytes(8)],
      ]
      const from = peerIdFromString(attackers[0]!.peerId)
      const answers = new Set<string>(Object.values(TopicValidatorResult))
      await lanes('gossip announce', [0, 1], runs * 2, () =>
        fc.asyncProperty(hostileBytes(valid), async (data) => {
          count('gossip announce')
          const message = { type: 'unsigned', topic: 'fuzz', data } as const
          const result = await within(DEADLINE, Promise.resolve(validate!(from, message)), 'validator')
          expect(answers.has(result)).toBe(true)
          await memory.sample()
        }),
      )
      // The honest entry and the departure of attacker 2 are the only things that could apply.
      expect(victim.discovery.catalog().get(honest.peerId)?.tags.has('honest')).toBe(true)
      // Real gossip from an attacker: garbage, then the honest peer's announcements still arrive.
      const topic = `mosaik/${victim.networkId}/announce/1`
      for (const data of fc.sample(hostileBytes(valid), { numRuns: 20, seed: 5 })) {
        await attackers[0]!.libp2p.services.pubsub
          .publish(topic, encodeCanonical([0, data, randomBytes(8)]))
          .catch(() => {})
      }
      await honest.discovery.addTags('after-gossip')
      await within(
        secs(10),
        victim.discovery.when.catalog((c) => c.get(honest.peerId)?.tags.has('after-gossip') === true),
        'the honest announcement arrives',
      )
    },
    timeoutFor(runs * 2, 5),
  )

  it('a version that is a map with a toString key is refused as unsupported (regression)', async () => {
    const link = await attackers[0]!.context.openLink(victim.peerId, syncProtocol(victim))
    try {
      await link.send([{ toString: 0 }, victim.networkId.bytes, 0, 0])
      const close = await expectVictimCloses(link, DEADLINE, DISCOVERY_CODES)
      expect(close.code).toBe(CloseCode.UnsupportedVersion)
    } finally {
      link.abort()
    }
  })

  it('an entry whose peer id does not parse is refused as malformed, and the sync goes on (regression)', async () => {
    const me = attackers[0]!.discovery.me().entry
    const bad = new PeerEntry({ ...me, peerId: `0${me.peerId.slice(1)}`, network: victim.networkId })
    const link = await attackers[0]!.context.openLink(victim.peerId, syncProtocol(victim))
    try {
      const malformed = victim.discovery.stats.rejected.malformed ?? 0
      await link.send([1, victim.networkId.bytes, 1, 0])
      await link.send([[bad.encode(), randomBytes(64)]])
      // The victim answers with its own snapshot: the entry did not end the sync.
      const reply = (await within(DEADLINE, link.recv(), 'the victim answers')) as unknown[]
      expect(reply[0]).toBe(1)
      expect(victim.discovery.stats.rejected.malformed).toBe(malformed + 1)
      await link.close()
    } finally {
      link.abort()
    }
  })

  it('the victim still serves an honest peer, memory stayed bounded, nothing went unhandled', async () => {
    await within(secs(10), honest.discovery.syncWith(victim.peerId), 'honest sync')
    expect(await within(secs(10), honest.discovery.ping(victim.peerId), 'honest ping')).toBeGreaterThan(0)
    expect(victim.discovery.catalog().get(honest.peerId)?.tags.has('honest')).toBe(true)
    expect(crashes.errors).toEqual([])
    memory.expectBounded(96)
  })
})

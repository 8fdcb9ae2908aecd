import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CloseCode, Digest, defineStream, encodeCanonical, type Network } from '../../platform/node/index.ts'
import { handshakeMessage, packBatch, startStreamMessage } from '../../src/streams/wire.ts'
import type { Link } from '../../src/transport/link.ts'
import { FAST_BACKOFF, take } from '../streams/support.ts'
import { Nodes } from '../support/nodes.ts'
import { ms, secs, within } from '../support/time.ts'
import {
  anyBytes,
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
 * Layer 2 for streams, both directions. A victim produces a stream that hostile consumers subscribe
 * to with fuzzed handshakes and then talk on (consumers never may); and the victim consumes streams of
 * rogue producers that answer with fuzzed StartStream messages and datum batches. Every attacked link
 * gets a close code from the victim within a deadline, or (a handshake the fuzzer happened to get
 * right) a live subscription. At the end the victim still serves and consumes honest peers.
 */

const runs = WIRE_RUNS
const HANDSHAKE_TIMEOUT = ms(200)
const DEADLINE = HANDSHAKE_TIMEOUT + secs(3)
const MAX_FRAME = 4 * 1024 * 1024
const Data = defineStream<string>('fuzz-data')
const rogueStream = (lane: number) => defineStream<string>(`fuzz-rogue-${lane}`)

const nodes = new Nodes('memory')
let victim: Network
let honest: Network
let attackers: Network[]
let memory: MemoryWatch
const crashes = watchCrashes()

beforeAll(async () => {
  victim = await nodes.create({ streams: { handshakeTimeoutMs: HANDSHAKE_TIMEOUT } })
  honest = await nodes.create({ bootstrap: victim.addresses })
  attackers = await Promise.all([1, 2, 3, 4].map(() => nodes.create({ bootstrap: victim.addresses })))
  await within(secs(10), victim.discovery.when.peers(5), 'the victim knows every node')
  memory = new MemoryWatch()
})

afterAll(async () => {
  crashes.stop()
  await nodes.closeAll()
  printCounts('streams')
})

/** Steps that complete every frame they start, so a frame written after them is read whole. */
const wholeSteps = (bodies: fc.Arbitrary<Uint8Array>) =>
  steps(bodies, MAX_FRAME).filter((s) => s.t !== 'raw' && s.t !== 'truncated')

describe('fuzz: the streams protocol end to end', () => {
  it(
    'subscription handshake: a hostile consumer is refused with a code, or subscribed',
    async () => {
      const producer = victim.streams.producer(Data)
      const net = victim.networkId
      const valid = [
        handshakeMessage(net, Data.streamId),
        handshakeMessage(net, Data.streamId, { start: 1, update: 2 }),
        handshakeMessage(net, Digest.from('not-produced')),
        handshakeMessage(Digest.from('elsewhere'), Data.streamId),
        [2, net.bytes, Data.streamId.bytes, new Map()],
      ]
      const bodies = hostileBytes(valid)
      const start = encodeCanonical(startStreamMessage(net, Data.streamId))
      let subscribed = 0
      await lanes('subscription handshake', [...attackers, ...attackers], runs, (attacker) =>
        fc.asyncProperty(
          fc.array(steps(bodies, MAX_FRAME), { minLength: 1, maxLength: 4 }),
          async (sequence) => {
            count('subscription handshake')
            const link = await attacker.context.openLink(victim.peerId, victim.context.protocol('streams/1'))
            try {
              const answered = link.recvBytes().catch(() => undefined)
              const written = writeSteps(link, sequence)
              const first = await within(DEADLINE, Promise.race([link.closed, answered]), 'an answer')
              if (first instanceof Uint8Array) {
                // The fuzzer wrote a valid handshake: the producer answered StartStream and now serves
                // a consumer that must not talk. A whole frame from it is a violation (unless a later
                // step was refused already).
                expect(first).toEqual(start)
                subscribed++
                writeSteps(link, [{ t: 'message', body: new Uint8Array([7]) }])
                const held = await Promise.race([
                  link.closed,
                  new Promise<undefined>((resolve) => setTimeout(resolve, DEADLINE)),
                ])
                if (held === undefined) {
                  // A truncated frame swallowed that message: a consumer that sends half a frame is as
                  // quiet as any other, and stays subscribed.
                  expect(producer.consumers().some((c) => c.consumerId === attacker.peerId)).toBe(true)
                  count('subscription handshake (subscribed, then half a frame)')
                } else {
                  await expectVictimCloses(
                    link,
                    DEADLINE,
                    new Set([CloseCode.ProtocolViolation, CloseCode.FrameTooLarge]),
                    written,
                  )
                }
              } else {
                await expectVictimCloses(link, DEADLINE, undefined, written)
              }
            } finally {
              link.abort()
              await memory.sample()
            }
          },
        ),
      )
      count('subscription handshake (subscribed)', subscribed)
    },
    timeoutFor(runs, 60),
  )

  it(
    'after the handshake: anything a consumer sends closes its subscription with a code',
    async () => {
      victim.streams.getOrCreateProducer(Data)
      const handshake = encodeCanonical(handshakeMessage(victim.networkId, Data.streamId))
      const bodies = fc.uint8Array({ maxLength: 64 })
      await lanes('consumer talks', [...attackers, ...attackers], runs, (attacker) =>
        fc.asyncProperty(fc.array(wholeSteps(bodies), { minLength: 0, maxLength: 4 }), async (sequence) => {
          count('consumer talks')
          const link = await attacker.context.openLink(victim.peerId, victim.context.protocol('streams/1'))
          try {
            await link.sendBytes(handshake)
            await within(DEADLINE, link.recvBytes(), 'StartStream')
            // A last whole message, so that a sequence of only credit frames still ends in a violation.
            writeSteps(link, [...sequence, { t: 'message', body: new Uint8Array([1]) }])
            await expectVictimCloses(
              link,
              DEADLINE,
              new Set([CloseCode.ProtocolViolation, CloseCode.FrameTooLarge]),
            )
          } finally {
            link.abort()
            await memory.sample()
          }
        }),
      )
    },
    timeoutFor(runs, 60),
  )

  it(
    'datum frames: a rogue producer is closed with a code, whatever it answers and sends',
    async () => {
      // Each attacker produces its own stream by hand, and hands each subscription to the case.
      const pending = attackers.map(() => [] as ((link: Link) => void)[])
      for (const [i, attacker] of attackers.entries()) {
        const protocol = attacker.context.protocol('streams/1')
        await attacker.libp2p.unhandle(protocol)
        await attacker.context.handle(protocol, async (link) => {
          const next = pending[i]!.shift()
          if (!next) return link.beginClose(CloseCode.StreamNotFound, 'not now')
          next(link)
          await link.closed
        })
        await attacker.discovery.updateLocal((e) => ({ streams: e.streams.with([rogueStream(i).streamId]) }))
      }
      await within(
        secs(10),
        victim.discovery.when.catalog((c) =>
          attackers.every((a, i) => c.get(a.peerId)?.streams.has(rogueStream(i).streamId) === true),
        ),
        'the victim sees every rogue producer',
      )
      const datum = (v: unknown) => encodeCanonical(v)
      const batches = anyBytes(128)
      const validBatch = packBatch([datum('a'), datum('b')], 0, 2, 2 + datum('a').length + datum('b').length)
      const batchBodies = fc.oneof(
        batches,
        fc.constant(validBatch),
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 4 }).map((ds) =>
          packBatch(
            ds,
            0,
            ds.length,
            ds.reduce((n, d) => n + 1 + d.length, 0),
          ),
        ),
      )
      const startMessages = (lane: number) =>
        fc.oneof(
          {
            weight: 3,
            arbitrary: fc.constant(
              encodeCanonical(startStreamMessage(victim.networkId, rogueStream(lane).streamId)),
            ),
          },
          {
            weight: 1,
            arbitrary: hostileBytes([startStreamMessage(victim.networkId, rogueStream(lane).streamId)]),
          },
        )
      // A batch whose datum runs past its end: always malformed, so every case ends in a close.
      const sentinel: Step = { t: 'message', body: new Uint8Array([0x05, 0x01]) }
      await lanes('datum frames', [0, 1, 2, 3], runs, (lane) =>
        fc.asyncProperty(
          startMessages(lane),
          fc.array(wholeSteps(batchBodies), { minLength: 0, maxLength: 4 }),
          async (start, sequence) => {
            count('datum frames')
            const arrived = new Promise<Link>((resolve) => pending[lane]!.push(resolve))
            const consumer = victim.streams.consumer(rogueStream(lane), { backoff: FAST_BACKOFF })
            try {
              const link = await within(DEADLINE, arrived, 'the victim subscribes')
              await within(DEADLINE, link.recvBytes(), 'the handshake')
              writeSteps(link, [{ t: 'message', body: start }, ...sequence, sentinel])
              await expectVictimCloses(
                link,
                DEADLINE,
                new Set([CloseCode.ProtocolViolation, CloseCode.FrameTooLarge]),
              )
              link.abort()
            } finally {
              pending[lane]!.length = 0
              await consumer.close()
              await memory.sample()
            }
          },
        ),
      )
    },
    timeoutFor(runs, 60),
  )

  it('the victim still produces for and consumes from honest peers; memory bounded; nothing unhandled', async () => {
    const p = victim.streams.getOrCreateProducer(Data)
    const c = honest.streams.consumer(Data)
    await within(secs(10), p.when.subscribed().wait(), 'honest consumer subscribed')
    await p.send('to honest')
    expect(await take(c, 1)).toEqual(['to honest'])
    const Back = defineStream<string>('fuzz-back')
    const hp = honest.streams.getOrCreateProducer(Back)
    const vc = victim.streams.consumer(Back)
    await within(secs(10), hp.when.subscribed().wait(), 'victim consumer subscribed')
    await hp.send('from honest')
    expect(await take(vc, 1)).toEqual(['from honest'])
    expect(crashes.errors).toEqual([])
    memory.expectBounded(96)
  })
})

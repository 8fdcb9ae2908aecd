import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CloseCode,
  codecs,
  DecodeError,
  Digest,
  decodeCanonical,
  encodeCanonical,
  PeerEntry,
  SignedPeerEntry,
} from '../../platform/node/index.ts'
import { unpackItems } from '../../src/collections/machine.ts'
import { departureFromWire, departureToWire, signDeparture } from '../../src/discovery/departure.ts'
import { DISCOVERY_WIRE_VERSION } from '../../src/discovery/sync.ts'
import { BOND_PROTOCOL_VERSION, Bond, BondMsg } from '../../src/groups/bond.ts'
import { MAX_TERM_OR_INDEX, parseEntry, parseMessage } from '../../src/groups/raft/messages.ts'
import type { Entry, Message } from '../../src/groups/raft/types.ts'
import { decodeEntry, encodeEntry } from '../../src/groups/storage/log-store.ts'
import { decodeRaftMessage, encodeRaftMessage } from '../../src/groups/wire.ts'
import { randomBytes } from '../../src/primitives/bytes.ts'
import {
  handshakeMessage,
  isStartStream,
  packBatch,
  parseHandshake,
  startStreamMessage,
  unpackBatch,
  varintLength,
} from '../../src/streams/wire.ts'
import type { Link } from '../../src/transport/link.ts'
import {
  anyBytes,
  cborValue,
  check,
  count,
  decodesOrRefuses,
  decodesOrRefusesAsync,
  hostileBytes,
  hostileValues,
  MemoryWatch,
  mutatedBytes,
  PURE_RUNS,
  printCounts,
  timeoutFor,
  watchCrashes,
} from './support.ts'

/**
 * Layer 1: every decoder of wire input, fed arbitrary bytes, arbitrary CBOR values and mutations of
 * valid encodings. Each must return a valid value or throw a MosaikError (DecodeError and its kin),
 * never a TypeError or RangeError, and never take long.
 */

const runs = PURE_RUNS
const timeout = timeoutFor(runs, 2)
const network = Digest.from('fuzz-network')
const stream = Digest.from('fuzz-stream')

let signedWire: unknown
let entryBytes: Uint8Array
let departureWire: unknown
const crashes = watchCrashes()
let memory: MemoryWatch

beforeAll(async () => {
  const key = await generateKeyPair('Ed25519')
  const now = Date.now()
  const entry = new PeerEntry({
    peerId: peerIdFromPrivateKey(key).toString(),
    network,
    version: { start: now, update: now },
    addresses: ['/ip4/127.0.0.1/udp/4001/quic-v1', '/memory/abc'],
    tags: ['role:a', 'role:b'],
    streams: [stream],
    groups: [Digest.from('g')],
    tickets: [{ class: Digest.from('t'), data: new Uint8Array([1, 2, 3]) }],
  })
  const signed = await SignedPeerEntry.sign(entry, key)
  signedWire = signed.toWire()
  entryBytes = signed.bytes
  departureWire = departureToWire(
    await signDeparture({ peerId: entry.peerId, network, lastVersion: entry.version, timestamp: now }, key),
  )
  memory = new MemoryWatch()
})

afterAll(() => {
  crashes.stop()
  printCounts('decoders')
})

describe('fuzz: canonical CBOR and the built-in codecs', () => {
  it(
    'decodeCanonical returns or throws DecodeError, and what it returns encodes again',
    async () => {
      await check(
        'cbor',
        fc.property(hostileBytes([[1, 'a', new Uint8Array(3)], new Map([[1, 2]]), 2n ** 70n]), (bytes) => {
          count('cbor')
          const value = decodesOrRefuses(() => decodeCanonical(bytes))
          // What decodes can be encoded again, and reads back the same.
          if (value !== undefined) expect(decodeCanonical(encodeCanonical(value))).toEqual(value)
        }),
        runs,
      )
    },
    timeout,
  )

  it(
    'the cbor, utf8, json and raw codecs refuse bad bytes with a DecodeError',
    async () => {
      await check(
        'codecs',
        fc.property(
          fc.oneof(
            anyBytes(),
            fc.string().map((s) => new TextEncoder().encode(s)),
          ),
          (bytes) => {
            count('codecs')
            for (const codec of Object.values(codecs)) decodesOrRefuses(() => codec.decode(bytes))
          },
        ),
        runs,
      )
    },
    timeout,
  )
})

describe('fuzz: discovery decoders', () => {
  it(
    'PeerEntry.decode refuses malformed, oversized and foreign-version entries with MosaikErrors',
    async () => {
      const valid = decodeCanonical(entryBytes)
      const versions = [0, 2, -1, 'v1', 1.5, null].map((v) =>
        encodeCanonical([v, ...(valid as unknown[]).slice(1)]),
      )
      await check(
        'peer entry',
        fc.property(
          fc.oneof(hostileBytes([valid]), mutatedBytes([entryBytes]), fc.constantFrom(...versions)),
          (bytes) => {
            count('peer entry')
            const entry = decodesOrRefuses(() => PeerEntry.decode(bytes))
            if (entry) expect(entry.peerId.length).toBeLessThanOrEqual(128)
          },
        ),
        runs,
      )
    },
    timeout,
  )

  it(
    'SignedPeerEntry.parse and fromWire refuse every altered signed entry',
    async () => {
      const original = signedWire as Uint8Array[]
      await check(
        'signed entry',
        fc.asyncProperty(hostileValues([signedWire]), async (wire) => {
          count('signed entry')
          decodesOrRefuses(() => SignedPeerEntry.parse(wire))
          const signed = await decodesOrRefusesAsync(() => SignedPeerEntry.fromWire(wire))
          // Only the genuine entry verifies: any change to the bytes or the signature is refused.
          if (signed) expect(signed.toWire().map((b) => [...b])).toEqual(original.map((b) => [...b]))
        }),
        runs,
      )
    },
    timeout,
  )

  it(
    'departureFromWire refuses malformed departures',
    async () => {
      await check(
        'departure',
        fc.property(hostileValues([departureWire]), (wire) => {
          count('departure')
          const d = decodesOrRefuses(() => departureFromWire(wire))
          if (d) expect(departureToWire(d)).toEqual(wire)
        }),
        runs,
      )
    },
    timeout,
  )

  it(
    'gossip announcements and sync frames decode or refuse',
    async () => {
      const valid = [
        [0, signedWire, randomBytes(8)],
        [1, departureWire, randomBytes(8)],
        [DISCOVERY_WIRE_VERSION, network.bytes, 1, 1],
        [signedWire],
        [departureWire],
      ]
      await check(
        'announcement',
        fc.property(hostileBytes(valid), (bytes) => {
          count('announcement')
          const v = decodesOrRefuses(() => decodeCanonical(bytes))
          if (!Array.isArray(v)) return
          for (const item of v) {
            decodesOrRefuses(() => SignedPeerEntry.parse(item))
            decodesOrRefuses(() => departureFromWire(item))
          }
        }),
        runs,
      )
    },
    timeout,
  )
})

describe('fuzz: streams decoders', () => {
  const refusals = new Set<number>([
    CloseCode.ProtocolViolation,
    CloseCode.UnsupportedVersion,
    CloseCode.DifferentNetwork,
  ])

  it(
    'parseHandshake never throws, and refuses with ProtocolViolation, UnsupportedVersion or DifferentNetwork',
    async () => {
      const valid = [handshakeMessage(network, stream), handshakeMessage(Digest.from('other'), stream)]
      await check(
        'subscription handshake',
        fc.property(hostileValues(valid), (value) => {
          count('subscription handshake')
          const parsed = parseHandshake(value, network)
          if (parsed.ok) {
            expect(parsed.handshake.network).toEqual(network.bytes)
            expect(parsed.handshake.stream).toHaveLength(32)
          } else {
            expect(refusals.has(parsed.code)).toBe(true)
          }
        }),
        runs,
      )
    },
    timeout,
  )

  it(
    'isStartStream never throws and accepts only the exact StartStream',
    async () => {
      const valid = startStreamMessage(network, stream)
      await check(
        'start stream',
        fc.property(hostileValues([valid]), (value) => {
          count('start stream')
          if (isStartStream(value, network, stream)) expect(value).toEqual(valid)
        }),
        runs,
      )
    },
    timeout,
  )

  it(
    'unpackBatch never throws, never reads past the batch, and splits what packBatch packed',
    async () => {
      const datums = fc.array(anyBytes(300), { maxLength: 8 })
      const packed = (ds: Uint8Array[]) =>
        packBatch(
          ds,
          0,
          ds.length,
          ds.reduce((n, d) => n + varintLength(d.length) + d.length, 0),
        )
      await check(
        'datum batch',
        fc.property(
          fc.oneof(
            anyBytes(),
            datums.map(packed),
            datums.chain((ds) => mutatedBytes([packed(ds.length ? ds : [new Uint8Array(1)])])),
          ),
          (batch) => {
            count('datum batch')
            let total = 0
            const ok = unpackBatch(batch, (d) => {
              expect(d.buffer).toBe(batch.buffer)
              total += d.length
            })
            expect(typeof ok).toBe('boolean')
            expect(total).toBeLessThanOrEqual(batch.length)
          },
        ),
        runs,
      )
      await check(
        'datum batch roundtrip',
        fc.property(datums, (ds) => {
          count('datum batch')
          const out: Uint8Array[] = []
          expect(unpackBatch(packed(ds), (d) => out.push(d.slice()))).toBe(true)
          expect(out).toEqual(ds)
        }),
        Math.ceil(runs / 5),
      )
    },
    timeout,
  )
})

// ---- groups ----------------------------------------------------------------------------------------

const bounded = fc.integer({ min: 0, max: 2 ** 20 })
const id = fc.constantFrom('12D3KooWA', '12D3KooWB', 'cluster-1')
const entryArb = (index: number): fc.Arbitrary<Entry> =>
  fc.oneof(
    fc.record({
      index: fc.constant(index),
      term: bounded,
      kind: fc.constant('command' as const),
      data: anyBytes(16),
    }),
    fc.record({ index: fc.constant(index), term: bounded, kind: fc.constant('noop' as const) }),
    fc.record({
      index: fc.constant(index),
      term: bounded,
      kind: fc.constant('config' as const),
      config: fc.record({ voters: fc.array(id, { maxLength: 5 }) }),
      clusterId: id,
    }),
  )

/** Valid Raft messages of every type (from and to as the bond knows them). */
const raftMessage: fc.Arbitrary<Message> = fc
  .record({ term: bounded, clusterId: id, n: fc.nat(3), prevIndex: bounded })
  .chain(({ term, clusterId, n, prevIndex }) => {
    const base = { from: 'A', to: 'B', term, clusterId }
    return fc.oneof(
      fc
        .record({
          prevTerm: bounded,
          commit: bounded,
          seq: bounded,
          quiet: fc.boolean(),
          entries: fc.tuple(...Array.from({ length: n }, (_, i) => entryArb(prevIndex + 1 + i))),
        })
        .map((f) => ({ ...base, type: 'append' as const, prevIndex, ...f, entries: [...f.entries] })),
      fc
        .record({
          reject: fc.boolean(),
          index: bounded,
          hintIndex: bounded,
          hintTerm: bounded,
          seq: bounded,
          catchingUp: fc.boolean(),
        })
        .map((f) => ({ ...base, type: 'appendResponse' as const, ...f })),
      fc
        .record({ commit: bounded, seq: bounded })
        .map((f) => ({ ...base, type: 'heartbeat' as const, ...f })),
      fc.record({ seq: bounded }).map((f) => ({ ...base, type: 'heartbeatResponse' as const, ...f })),
      fc
        .record({ preVote: fc.boolean(), lastIndex: bounded, lastTerm: bounded })
        .map((f) => ({ ...base, type: 'vote' as const, ...f })),
      fc
        .record({
          preVote: fc.boolean(),
          answer: fc.constantFrom('grant' as const, 'abstain' as const, 'deny' as const),
        })
        .map((f) => ({ ...base, type: 'voteResponse' as const, ...f })),
      fc
        .record({ index: bounded, snapshotTerm: bounded })
        .map((f) => ({ ...base, type: 'snapshot' as const, ...f })),
      fc
        .record({
          commit: bounded,
          lastIndex: bounded,
          lastTerm: bounded,
          commands: fc.boolean(),
          leader: fc.option(id, { nil: null }),
        })
        .map((f) => ({ ...base, type: 'hello' as const, ...f })),
      fc
        .record({
          winner: fc.record({
            clusterId: id,
            commit: bounded,
            lastTerm: bounded,
            lastIndex: bounded,
            commands: fc.boolean(),
          }),
        })
        .map((f) => ({ ...base, type: 'concede' as const, ...f })),
      fc
        .record({
          waiting: fc.boolean(),
          incarnation: fc.nat(),
          round: fc.nat(),
          heardIncarnation: fc.nat(),
          heardRound: fc.nat(),
        })
        .map((f) => ({ ...base, type: 'fresh' as const, ...f })),
    )
  }) as fc.Arbitrary<Message>

describe('fuzz: groups decoders', () => {
  it(
    'raft wire messages round-trip',
    async () => {
      await check(
        'raft roundtrip',
        fc.property(raftMessage, (m) => {
          count('raft wire')
          const bytes = encodeCanonical(encodeRaftMessage(m))
          expect(decodeRaftMessage(decodeCanonical(bytes), 'A', 'B')).toEqual(m)
        }),
        Math.ceil(runs / 5),
      )
    },
    timeout,
  )

  it(
    'decodeRaftMessage refuses every malformed message with a DecodeError, and bounds what it accepts',
    async () => {
      const valid = fc.sample(raftMessage, { numRuns: 40, seed: 1 }).map(encodeRaftMessage)
      await check(
        'raft wire',
        fc.property(
          fc.oneof(hostileValues(valid), fc.tuple(fc.oneof(cborValue, fc.nat(12)), cborValue, cborValue)),
          (value) => {
            count('raft wire')
            const m = decodesOrRefuses(() => decodeRaftMessage(value, 'A', 'B'))
            if (!m) return
            // Whatever is accepted is a well-formed message with bounded terms and indices.
            expect(parseMessage(m)).toEqual(m)
            expect(m.term).toBeLessThan(MAX_TERM_OR_INDEX)
          },
        ),
        runs,
      )
    },
    timeout,
  )

  it(
    'parseMessage and parseEntry refuse malformed objects with a DecodeError',
    async () => {
      const messages = fc.sample(raftMessage, { numRuns: 30, seed: 2 })
      const objects = fc.oneof(
        cborValue,
        fc
          .tuple(
            fc.constantFrom(...messages),
            fc.constantFrom(...new Set(messages.flatMap((m) => Object.keys(m)))),
            cborValue,
          )
          .map(([m, key, v]) => ({ ...m, [key]: v })),
      )
      await check(
        'raft objects',
        fc.property(objects, (value) => {
          count('raft wire')
          decodesOrRefuses(() => parseMessage(value))
          decodesOrRefuses(() => parseEntry(value))
        }),
        runs,
      )
    },
    timeout,
  )

  it(
    'stored log entries decode or are refused as corrupt',
    async () => {
      const entries = fc.sample(entryArb(7), { numRuns: 20, seed: 3 })
      await check(
        'log entry',
        fc.property(hostileBytes(entries), (bytes) => {
          count('log entry')
          const e = decodesOrRefuses(() => decodeEntry(bytes))
          // (Not byte for byte: cborg reads invalid UTF-8 in text strings as U+FFFD.)
          if (e) expect(decodeEntry(encodeEntry(e))).toEqual(e)
        }),
        runs,
      )
    },
    timeout,
  )

  it(
    'bond frames: handshake messages and responses are refused or routed, never thrown as TypeErrors',
    async () => {
      const bond = new Bond({} as Link, { peer: 'A', id: 'x', observer: false }, 0)
      const valid = [
        [BOND_PROTOCOL_VERSION, network.bytes, Digest.from('g').bytes, randomBytes(32), false],
        [randomBytes(32), randomBytes(32), true],
        [randomBytes(32)],
        [BondMsg.Response, [1, true, null]],
        [BondMsg.Request, [1, 2, [0, 5, 'cluster']]],
        [BondMsg.SnapshotOffer, [{ index: 1, term: 1, config: { voters: [] } }, 10, randomBytes(32)]],
      ]
      await check(
        'bond frames',
        fc.property(hostileValues(valid), (value) => {
          count('bond frames')
          decodesOrRefuses(() => bond.onResponse(value))
          if (Array.isArray(value)) decodesOrRefuses(() => bond.onResponse(value[1]))
        }),
        runs,
      )
    },
    timeout,
  )
})

describe('fuzz: regressions found by the fuzzer', () => {
  it('refuses these inputs with a DecodeError', () => {
    // A map with a `toString` key makes String() throw: error messages must not call it on wire values.
    const hostile = { toString: 0 }
    for (const type of ['length', 'map', 'constructor', hostile]) {
      expect(() => decodeRaftMessage([type, 1, 'c', 1, 2], 'A', 'B')).toThrow(DecodeError)
    }
    expect(() => decodeRaftMessage([0, 1, 'c', 0, 0, [[1, 1, hostile]], 0, 0], 'A', 'B')).toThrow(DecodeError)
    const base = { from: 'A', to: 'B', term: 1, clusterId: 'c' }
    expect(() => parseMessage({ ...base, type: hostile })).toThrow(DecodeError)
    expect(() => parseMessage({ ...base, type: 'voteResponse', preVote: true, answer: hostile })).toThrow(
      DecodeError,
    )
    expect(() => parseEntry({ index: 1, term: 1, kind: hostile })).toThrow(DecodeError)
    expect(() => PeerEntry.decode(encodeCanonical([hostile]))).toThrow(DecodeError)
    // The built-in codecs throw DecodeError, not SyntaxError or TypeError.
    expect(() => codecs.json.decode(new Uint8Array([0x7b]))).toThrow(DecodeError)
    expect(() => codecs.utf8.decode(new Uint8Array([0xff]))).toThrow(DecodeError)
    // A bignum where a plain integer fits is not canonical: it would read as 0n where 0 was meant.
    expect(() => decodeCanonical(new Uint8Array([0xc2, 0x49, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(
      DecodeError,
    )
    expect(() => decodeCanonical(new Uint8Array([0xc3, 0x41, 5]))).toThrow(DecodeError)
    expect(decodeCanonical(encodeCanonical(2n ** 64n))).toBe(2n ** 64n)
    // A varint of 2^53 decodes, but its length cannot be encoded again (RangeError): a datum batch
    // holding one is malformed (the stream's link closes), and so is a collection snapshot.
    const huge = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]
    expect(unpackBatch(new Uint8Array(huge), () => {})).toBe(false)
    expect(() => unpackItems(1, new Uint8Array([1, 1, ...huge]))).toThrow(DecodeError)
    expect(decodeCanonical(encodeCanonical(-(2n ** 64n) - 1n))).toBe(-(2n ** 64n) - 1n)
  })
})

describe('fuzz: the run as a whole', () => {
  it('raised no unhandled error and kept memory bounded', () => {
    expect(crashes.errors).toEqual([])
    memory.expectBounded(64)
  })
})

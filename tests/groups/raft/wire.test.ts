/**
 * The bond wire form of Raft messages (src/groups/wire.ts): every message kind and every entry kind
 * encodes to the pinned bytes, decodes back to the same message, and each malformed variant of it is
 * refused with a DecodeError.
 */
import { describe, expect, it } from 'vitest'
import { DecodeError, decodeCanonical, encodeCanonical } from '../../../platform/node/index.ts'
import type { AppendMessage, Message } from '../../../src/groups/raft/types.ts'
import { decodeRaftMessage, encodeRaftMessage } from '../../../src/groups/wire.ts'
import { toHex } from '../../../src/primitives/bytes.ts'

const base = { from: 'A', to: 'B', term: 7, clusterId: 'c1' }
const winner = { clusterId: 'c2', commit: 9, lastTerm: 3, lastIndex: 11, commands: true }

/** One message of every kind; `append` carries one entry of every kind. */
const MESSAGES: Message[] = [
  {
    ...base,
    type: 'append',
    prevIndex: 4,
    prevTerm: 2,
    entries: [
      { index: 5, term: 7, kind: 'command', data: new Uint8Array([1, 2, 3]) },
      { index: 6, term: 7, kind: 'noop' },
      { index: 7, term: 7, kind: 'config', config: { voters: ['A', 'B'] }, clusterId: 'c1' },
    ],
    commit: 4,
    seq: 300,
    quiet: false,
  },
  {
    ...base,
    type: 'append',
    prevIndex: 2 ** 40,
    prevTerm: 6,
    entries: [],
    commit: 2 ** 40 - 1,
    seq: 0,
    quiet: true,
  },
  {
    ...base,
    type: 'appendResponse',
    reject: true,
    index: 12,
    hintIndex: 10,
    hintTerm: 5,
    seq: 301,
    catchingUp: false,
  },
  { ...base, type: 'heartbeat', commit: 8, seq: 302 },
  { ...base, type: 'heartbeatResponse', seq: 303 },
  { ...base, type: 'vote', preVote: true, lastIndex: 8, lastTerm: 6 },
  { ...base, type: 'voteResponse', preVote: false, answer: 'abstain' },
  { ...base, type: 'snapshot', index: 100, snapshotTerm: 6 },
  { ...base, type: 'hello', commit: 8, lastIndex: 9, lastTerm: 7, commands: false, leader: 'A' },
  { ...base, type: 'hello', commit: 0, lastIndex: 0, lastTerm: 0, commands: false, leader: null },
  { ...base, type: 'concede', winner },
  {
    ...base,
    clusterId: '',
    type: 'fresh',
    waiting: true,
    incarnation: 0x9e3779b9,
    round: 2,
    heardIncarnation: 0,
    heardRound: 0,
  },
]

/** The bytes of MESSAGES as the positional encoder wrote them when this test was written. */
const PINNED: string[] = [
  '8900076263310402838405070043010203830607018507070282614161426263310419012cf4',
  '8900076263311b000001000000000006801b000000ffffffffff00f5',
  '890107626331f50c0a0519012df4',
  '8502076263310819012e',
  '84030762633119012f',
  '860407626331f50806',
  '850507626331f4676162737461696e',
  '850607626331186406',
  '880707626331080907f46141',
  '880707626331000000f4f6',
  '840807626331a566636f6d6d69740968636f6d6d616e6473f5686c6173745465726d0369636c75737465724964626332696c617374496e6465780b',
  '88090760f51a9e3779b9020000',
]

describe('raft wire form', () => {
  it('encodes every message and entry kind to the pinned bytes', () => {
    expect(MESSAGES.map((m) => toHex(encodeCanonical(encodeRaftMessage(m))))).toEqual(PINNED)
  })

  it('decodes every message and entry kind back to the message', () => {
    for (const m of MESSAGES) {
      expect(decodeRaftMessage(decodeCanonical(encodeCanonical(encodeRaftMessage(m))), 'A', 'B')).toEqual(m)
    }
  })

  it('refuses each malformed variant of every kind with a DecodeError', () => {
    // Wrong for every field: not a number, string, boolean, null, bytes, array or well-formed record.
    const hostile = { toString: 0 }
    for (const m of MESSAGES) {
      const wire = encodeRaftMessage(m)
      const variants: unknown[][] = [
        wire.slice(0, -1), // a field short
        [...wire, 0], // a field too many
        ...wire.map((_, i) => wire.with(i, hostile)), // each field of the wrong type
        ...wire.slice(1).map((_, i) => wire.with(i + 1, 2 ** 48)), // each field out of bounds or mistyped
      ]
      for (const v of variants) {
        expect(() => decodeRaftMessage(v, 'A', 'B'), JSON.stringify(v)).toThrow(DecodeError)
      }
    }
    const [append] = MESSAGES as [AppendMessage]
    const wire = encodeRaftMessage(append)
    const entries = wire[5] as unknown[][]
    const withEntries = (list: unknown[]) => wire.with(5, list)
    const bad: unknown[][] = [
      withEntries(entries.slice(1)), // does not follow prevIndex
      withEntries([[5, 7, 3, new Uint8Array()]]), // unknown entry kind
      withEntries([[5, 7, 'command', new Uint8Array()]]), // a kind by name, not by code
      withEntries([[5, 7, 0, 'text']]), // data not bytes
      withEntries([[5, 7, 1, 0]]), // noop with a field
      withEntries([[5, 7, 2, ['A']]]), // config without its cluster id
      withEntries([[5, 7, 2, 'A', 'c1']]), // voters not an array
      withEntries([[5, 7]]), // no kind
      withEntries([[-1, 7, 1]]), // negative index
    ]
    for (const v of bad) expect(() => decodeRaftMessage(v, 'A', 'B'), JSON.stringify(v)).toThrow(DecodeError)
  })
})

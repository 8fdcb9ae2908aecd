import { DecodeError, describeValue } from '../primitives/errors.ts'
import { parseMessage } from './raft/messages.ts'
import type { Entry, Message, MessageType } from './raft/types.ts'

/**
 * The bond wire form of Raft messages: positional arrays instead of objects, so canonical CBOR does
 * not sort and repeat field names for every message and every entry (the hot path of replication).
 * `from` and `to` are left out: the bond already knows both ends. Decoding rebuilds the object and
 * runs the core's own validation (`parseMessage`), so a malformed frame is a DecodeError.
 *
 *   message = [type, term, clusterId, ...fields of that type, in the order below]
 *   entry   = [index, term, 0, data] | [index, term, 1] | [index, term, 2, voters, clusterId]
 */
const FIELDS: Record<MessageType, readonly string[]> = {
  append: ['prevIndex', 'prevTerm', 'entries', 'commit', 'seq'],
  appendResponse: ['reject', 'index', 'hintIndex', 'hintTerm', 'seq', 'catchingUp'],
  heartbeat: ['commit', 'seq'],
  heartbeatResponse: ['seq'],
  vote: ['preVote', 'lastIndex', 'lastTerm'],
  voteResponse: ['preVote', 'answer'],
  snapshot: ['index', 'snapshotTerm'],
  hello: ['commit', 'lastIndex', 'lastTerm', 'commands', 'leader'],
  concede: ['winner'],
  fresh: ['waiting'],
}
const TYPES = Object.keys(FIELDS) as MessageType[]
const CODES = new Map(TYPES.map((t, i) => [t, i]))

export function encodeRaftMessage(m: Message): unknown[] {
  const fields = FIELDS[m.type]
  const out: unknown[] = [CODES.get(m.type), m.term, m.clusterId]
  const rec = m as unknown as Record<string, unknown>
  for (const f of fields) out.push(f === 'entries' ? (rec[f] as Entry[]).map(encodeEntry) : rec[f])
  return out
}

export function decodeRaftMessage(value: unknown, from: string, to: string): Message {
  if (!Array.isArray(value) || value.length < 3) throw new DecodeError('malformed raft message')
  // Only an integer indexes the table: a string such as 'length' or 'map' would find a property.
  const type = Number.isInteger(value[0]) ? TYPES[value[0] as number] : undefined
  if (type === undefined) throw new DecodeError(`unknown raft message type ${describeValue(value[0])}`)
  const fields = FIELDS[type]
  if (value.length !== 3 + fields.length) throw new DecodeError(`malformed raft ${type} message`)
  const m: Record<string, unknown> = { type, from, to, term: value[1], clusterId: value[2] }
  fields.forEach((f, i) => {
    const v = value[3 + i]
    m[f] = f === 'entries' ? (Array.isArray(v) ? v.map(decodeEntry) : v) : v
  })
  return parseMessage(m)
}

function encodeEntry(e: Entry): unknown[] {
  switch (e.kind) {
    case 'command':
      return [e.index, e.term, 0, e.data]
    case 'noop':
      return [e.index, e.term, 1]
    case 'config':
      return [e.index, e.term, 2, e.config.voters, e.clusterId]
  }
}

function decodeEntry(v: unknown): unknown {
  if (!Array.isArray(v) || v.length < 3) throw new DecodeError('malformed entry')
  const [index, term, kind] = v
  if (kind === 0) return { index, term, kind: 'command', data: v[3] }
  if (kind === 1) return { index, term, kind: 'noop' }
  if (kind === 2) return { index, term, kind: 'config', config: { voters: v[3] }, clusterId: v[4] }
  throw new DecodeError(`unknown entry kind ${describeValue(kind)}`)
}

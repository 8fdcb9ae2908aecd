import { DecodeError, describeValue } from '../primitives/errors.ts'
import { checkMessage, MESSAGES, messageHead } from './raft/messages.ts'
import type { Message } from './raft/types.ts'

/**
 * The bond wire form of Raft messages: positional arrays instead of objects, so canonical CBOR does
 * not sort and repeat field names for every message and every entry (the hot path of replication).
 * `from` and `to` are left out: the bond already knows both ends. The schema in raft/messages.ts gives
 * the codes, the fields and their order, and checks each field as it is read, so a malformed frame is
 * a DecodeError.
 *
 *   message = [code, term, clusterId, ...fields of that type]
 *   entry   = [index, term, 0, data] | [index, term, 1] | [index, term, 2, voters, clusterId]
 */
export function encodeRaftMessage(m: Message): unknown[] {
  const out: unknown[] = [MESSAGES.code(m.type), m.term, m.clusterId]
  MESSAGES.toWire(m.type, m, out)
  return out
}

export function decodeRaftMessage(value: unknown, from: string, to: string): Message {
  if (!Array.isArray(value) || value.length < 3) throw new DecodeError('malformed raft message')
  const type = MESSAGES.coded(value[0])
  if (type === undefined) throw new DecodeError(`unknown raft message type ${describeValue(value[0])}`)
  if (value.length !== 3 + MESSAGES.arity(type)) throw new DecodeError(`malformed raft ${type} message`)
  const m = messageHead(from, to, value[1], value[2])
  m.type = type
  MESSAGES.fromWire(type, value, 3, m)
  return checkMessage(m as unknown as Message)
}

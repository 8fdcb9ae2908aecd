import { DecodeError, describeValue } from '../../primitives/errors.ts'
import type { ClusterStanding, Entry, Message, VoteAnswer } from './types.ts'

/**
 * Terms, indices and rounds are below this hard limit (2^48): far beyond any real log or election
 * count, and far enough below 2^53 that `term + 1` and index arithmetic stay exact. A value at or above
 * it is malformed, wherever it comes from.
 */
export const MAX_TERM_OR_INDEX = 2 ** 48

/**
 * A member of this node's cluster claiming a term more than this far ahead of the node's own is not
 * believed (a fresh node, at term 0, accepts any bounded term): one bogus message must not move the
 * cluster's term near the limit, where no election could follow.
 */
export const MAX_TERM_LEAP = 2 ** 20

/** A term or index as the core accepts it: a safe non-negative integer below `MAX_TERM_OR_INDEX`. */
export function isBounded(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value < MAX_TERM_OR_INDEX
}

/**
 * Checks a decoded value from a peer (or a store) before the core sees it. The worker decodes wire
 * frames with the canonical codec and passes the result here: anything malformed is a `DecodeError`,
 * so a faulty or hostile peer can make the worker drop a frame but never corrupt the core's state.
 */
export function parseMessage(value: unknown): Message {
  const m = record(value, 'message')
  const base = {
    from: str(m.from, 'from'),
    to: str(m.to, 'to'),
    term: index(m.term, 'term'),
    clusterId: str(m.clusterId, 'clusterId'),
  }
  switch (m.type) {
    case 'append': {
      if (!Array.isArray(m.entries)) throw new DecodeError('append.entries must be an array')
      const prevIndex = index(m.prevIndex, 'prevIndex')
      const entries = m.entries.map(parseEntry)
      entries.forEach((e, i) => {
        if (e.index !== prevIndex + 1 + i) throw new DecodeError('append.entries must follow prevIndex')
      })
      return {
        ...base,
        type: 'append',
        prevIndex,
        prevTerm: index(m.prevTerm, 'prevTerm'),
        entries,
        commit: index(m.commit, 'commit'),
        seq: index(m.seq, 'seq'),
      }
    }
    case 'appendResponse':
      return {
        ...base,
        type: 'appendResponse',
        reject: bool(m.reject, 'reject'),
        index: index(m.index, 'index'),
        hintIndex: index(m.hintIndex, 'hintIndex'),
        hintTerm: index(m.hintTerm, 'hintTerm'),
        seq: index(m.seq, 'seq'),
        catchingUp: bool(m.catchingUp, 'catchingUp'),
      }
    case 'heartbeat':
      return { ...base, type: 'heartbeat', commit: index(m.commit, 'commit'), seq: index(m.seq, 'seq') }
    case 'heartbeatResponse':
      return { ...base, type: 'heartbeatResponse', seq: index(m.seq, 'seq') }
    case 'vote':
      return {
        ...base,
        type: 'vote',
        preVote: bool(m.preVote, 'preVote'),
        lastIndex: index(m.lastIndex, 'lastIndex'),
        lastTerm: index(m.lastTerm, 'lastTerm'),
      }
    case 'voteResponse':
      return {
        ...base,
        type: 'voteResponse',
        preVote: bool(m.preVote, 'preVote'),
        answer: voteAnswer(m.answer),
      }
    case 'snapshot':
      return {
        ...base,
        type: 'snapshot',
        index: index(m.index, 'index'),
        snapshotTerm: index(m.snapshotTerm, 'snapshotTerm'),
      }
    case 'hello': {
      const leader = m.leader === null ? null : str(m.leader, 'leader')
      return {
        ...base,
        type: 'hello',
        commit: index(m.commit, 'commit'),
        lastIndex: index(m.lastIndex, 'lastIndex'),
        lastTerm: index(m.lastTerm, 'lastTerm'),
        commands: bool(m.commands, 'commands'),
        leader,
      }
    }
    case 'concede':
      return { ...base, type: 'concede', winner: standing(m.winner) }
    case 'fresh':
      return { ...base, type: 'fresh', waiting: bool(m.waiting, 'waiting') }
    default:
      throw new DecodeError(`unknown raft message type ${describeValue(m.type)}`)
  }
}

/** Checks a decoded or stored log entry and narrows it to an `Entry` (copying only known fields). */
export function parseEntry(value: unknown): Entry {
  const e = record(value, 'entry')
  const at = { index: index(e.index, 'entry.index'), term: index(e.term, 'entry.term') }
  switch (e.kind) {
    case 'command':
      if (!(e.data instanceof Uint8Array)) throw new DecodeError(`entry ${at.index}: data must be bytes`)
      return { ...at, kind: 'command', data: e.data }
    case 'noop':
      return { ...at, kind: 'noop' }
    case 'config': {
      const config = record(e.config, 'entry.config')
      if (!Array.isArray(config.voters)) throw new DecodeError(`entry ${at.index}: voters must be an array`)
      const voters = config.voters.map((v) => str(v, 'voter'))
      return { ...at, kind: 'config', config: { voters }, clusterId: str(e.clusterId, 'entry.clusterId') }
    }
    default:
      throw new DecodeError(`entry ${at.index}: unknown kind ${describeValue(e.kind)}`)
  }
}

function standing(value: unknown): ClusterStanding {
  const s = record(value, 'standing')
  return {
    clusterId: str(s.clusterId, 'clusterId'),
    commit: index(s.commit, 'commit'),
    lastTerm: index(s.lastTerm, 'lastTerm'),
    lastIndex: index(s.lastIndex, 'lastIndex'),
    commands: bool(s.commands, 'commands'),
  }
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DecodeError(`${what} must be an object`)
  }
  return value as Record<string, unknown>
}

function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new DecodeError(`${what} must be a string`)
  return value
}

function bool(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw new DecodeError(`${what} must be a boolean`)
  return value
}

/** Terms, indices and rounds: non-negative integers below `MAX_TERM_OR_INDEX`. */
function index(value: unknown, what: string): number {
  if (typeof value !== 'number' || !isBounded(value)) {
    throw new DecodeError(`${what} must be a non-negative integer below 2^48`)
  }
  return value
}

function voteAnswer(value: unknown): VoteAnswer {
  if (value === 'grant' || value === 'abstain' || value === 'deny') return value
  throw new DecodeError(`vote answer ${describeValue(value)} is not grant, abstain or deny`)
}

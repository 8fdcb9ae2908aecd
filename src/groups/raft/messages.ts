import { DecodeError, describeValue } from '../../primitives/errors.ts'
import type { ClusterStanding, Entry, MembershipConfig, Message, MessageType, VoteAnswer } from './types.ts'

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

// ---- the schema ------------------------------------------------------------------------------------
//
// One schema describes every message and log entry a peer or a store hands the core: it checks the
// object form (`parseMessage`, `parseEntry`) and writes and reads the positional wire form of the bond
// (src/groups/wire.ts). `satisfies` ties each kind's field list to its type in types.ts: a field added,
// dropped or retyped there fails to compile here.

/**
 * Checks a value of a field: from the object form (a store, a decoded catch-up reply, a test), and
 * from the positional wire form of the bond when `fromWire` is given (else the two forms are equal).
 * Anything malformed is a DecodeError.
 */
export interface FieldType<T> {
  parse(value: unknown, what: string): T
  /** The field's positional wire form, where it differs from the object form. */
  toWire?(value: T): unknown
  fromWire?(value: unknown, what: string): T
}

/** A message or entry kind's fields as the type declares them, each with its FieldType. */
type FieldsOf<T, Base extends string> = { readonly [F in Exclude<keyof T, Base>]-?: FieldType<T[F]> }

/** The fields every message carries in the same place, before those of its kind. */
type MessageBaseField = 'type' | 'from' | 'to' | 'term' | 'clusterId'

/** Terms, indices and rounds: non-negative integers below `MAX_TERM_OR_INDEX`. */
const index: FieldType<number> = {
  parse(value, what) {
    if (typeof value !== 'number' || !isBounded(value)) {
      throw new DecodeError(`${what} must be a non-negative integer below 2^48`)
    }
    return value
  },
}

const str: FieldType<string> = {
  parse(value, what) {
    if (typeof value !== 'string') throw new DecodeError(`${what} must be a string`)
    return value
  },
}

const strOrNull: FieldType<string | null> = {
  parse: (value, what) => (value === null ? null : str.parse(value, what)),
}

const bool: FieldType<boolean> = {
  parse(value, what) {
    if (typeof value !== 'boolean') throw new DecodeError(`${what} must be a boolean`)
    return value
  },
}

const bytes: FieldType<Uint8Array> = {
  parse(value, what) {
    if (!(value instanceof Uint8Array)) throw new DecodeError(`${what} must be bytes`)
    return value
  },
}

const voteAnswer: FieldType<VoteAnswer> = {
  parse(value) {
    if (value === 'grant' || value === 'abstain' || value === 'deny') return value
    throw new DecodeError(`vote answer ${describeValue(value)} is not grant, abstain or deny`)
  },
}

/** An object of named fields, checked field by field (only the declared fields are kept). */
function record<T>(fields: { readonly [F in keyof T]-?: FieldType<T[F]> }): FieldType<T> {
  const list = Object.entries(fields) as [string, FieldType<unknown>][]
  return {
    parse(value, what) {
      const r = asRecord(value, what)
      const out: Record<string, unknown> = {}
      for (const [name, field] of list) out[name] = field.parse(r[name], `${what}.${name}`)
      return out as T
    },
  }
}

const standing: FieldType<ClusterStanding> = record<ClusterStanding>({
  clusterId: str,
  commit: index,
  lastTerm: index,
  lastIndex: index,
  commands: bool,
})

/** The voter set; on the wire, just the array of voters. */
const membership: FieldType<MembershipConfig> = {
  parse(value, what) {
    const config = asRecord(value, what)
    return { voters: voters(config.voters, `${what}.voters`) }
  },
  toWire: (config) => config.voters,
  fromWire: (value, what) => ({ voters: voters(value, `${what}.voters`) }),
}

function voters(value: unknown, what: string): string[] {
  if (!Array.isArray(value)) throw new DecodeError(`${what} must be an array`)
  return value.map((v) => str.parse(v, 'voter'))
}

/**
 * A union tagged by kind, each kind with its fields in order. The position of a kind in the schema is
 * its wire code and the position of a field is its place in the wire form: append, never reorder.
 */
export class Kinds<K extends string> {
  readonly #kinds: readonly K[]
  readonly #named: ReadonlyMap<unknown, K>
  /** Per kind: its fields in order, each with the label its errors name (`append.commit`). */
  readonly #fields: ReadonlyMap<K, readonly Field[]>

  constructor(schema: { readonly [P in K]: object }) {
    this.#kinds = Object.keys(schema) as K[]
    this.#named = new Map(this.#kinds.map((k) => [k, k]))
    this.#fields = new Map(
      this.#kinds.map((k) => [
        k,
        Object.entries(schema[k]).map(([name, type]) => ({
          name,
          type: type as FieldType<unknown>,
          label: `${k}.${name}`,
        })),
      ]),
    )
  }

  /** The kind named `value`, if it names one (a Map lookup: 'constructor' or 'length' name none). */
  named(value: unknown): K | undefined {
    return this.#named.get(value)
  }

  /** The kind of wire code `value`, if it is one: only an integer indexes the list. */
  coded(value: unknown): K | undefined {
    return Number.isInteger(value) ? this.#kinds[value as number] : undefined
  }

  code(kind: K): number {
    return this.#kinds.indexOf(kind)
  }

  /** How many fields a value of `kind` has after its common head. */
  arity(kind: K): number {
    return this.#fields.get(kind)!.length
  }

  /** Checks the fields of `kind` in the object `from` and copies them into `into`. */
  parse(kind: K, from: Record<string, unknown>, into: Record<string, unknown>): void {
    for (const f of this.#fields.get(kind)!) into[f.name] = f.type.parse(from[f.name], f.label)
  }

  /** Appends the wire forms of the fields of `kind` in `from` to `out`. */
  toWire(kind: K, from: object, out: unknown[]): void {
    const rec = from as Record<string, unknown>
    for (const { name, type } of this.#fields.get(kind)!) {
      out.push(type.toWire ? type.toWire(rec[name]) : rec[name])
    }
  }

  /**
   * Reads the fields of `kind` from `wire[at..]` into `into`, checking each. Runs for every frame a
   * bond receives: the labels are built once, not per message.
   */
  fromWire(kind: K, wire: readonly unknown[], at: number, into: Record<string, unknown>): void {
    for (const { name, type, label } of this.#fields.get(kind)!) {
      const v = wire[at++]
      into[name] = type.fromWire ? type.fromWire(v, label) : type.parse(v, label)
    }
  }
}

interface Field {
  readonly name: string
  readonly type: FieldType<unknown>
  readonly label: string
}

// ---- log entries -----------------------------------------------------------------------------------

type EntryKind = Entry['kind']

/**
 * Log entries by kind. Wire form: `[index, term, code, ...fields]`, so
 * `[index, term, 0, data] | [index, term, 1] | [index, term, 2, voters, clusterId]`.
 */
const ENTRY_FIELDS = {
  command: { data: bytes },
  noop: {},
  config: { config: membership, clusterId: str },
} as const satisfies { [K in EntryKind]: FieldsOf<Extract<Entry, { kind: K }>, 'index' | 'term' | 'kind'> }

const ENTRIES = new Kinds<EntryKind>(ENTRY_FIELDS)

/** Checks a decoded or stored log entry and narrows it to an `Entry` (copying only known fields). */
export function parseEntry(value: unknown): Entry {
  const e = asRecord(value, 'entry')
  const out: Record<string, unknown> = {
    index: index.parse(e.index, 'entry.index'),
    term: index.parse(e.term, 'entry.term'),
    kind: ENTRIES.named(e.kind),
  }
  if (out.kind === undefined)
    throw new DecodeError(`entry ${out.index}: unknown kind ${describeValue(e.kind)}`)
  try {
    ENTRIES.parse(out.kind as EntryKind, e, out)
  } catch (err) {
    throw atEntry(out.index as number, err)
  }
  return out as unknown as Entry
}

/** The wire form of an entry. */
export function entryToWire(e: Entry): unknown[] {
  const out: unknown[] = [e.index, e.term, ENTRIES.code(e.kind)]
  ENTRIES.toWire(e.kind, e, out)
  return out
}

/** Reads and checks the wire form of an entry. */
export function entryFromWire(value: unknown): Entry {
  if (!Array.isArray(value) || value.length < 3) throw new DecodeError('malformed entry')
  const kind = ENTRIES.coded(value[2])
  if (kind === undefined) throw new DecodeError(`unknown entry kind ${describeValue(value[2])}`)
  if (value.length !== 3 + ENTRIES.arity(kind)) throw new DecodeError(`malformed ${kind} entry`)
  const out: Record<string, unknown> = {
    index: index.parse(value[0], 'entry.index'),
    term: index.parse(value[1], 'entry.term'),
    kind,
  }
  try {
    ENTRIES.fromWire(kind, value, 3, out)
  } catch (err) {
    throw atEntry(out.index as number, err)
  }
  return out as unknown as Entry
}

/** A field's DecodeError, naming the entry's index. */
function atEntry(at: number, err: unknown): unknown {
  return err instanceof DecodeError ? new DecodeError(`entry ${at}: ${err.message}`) : err
}

const entries: FieldType<Entry[]> = {
  parse(value, what) {
    if (!Array.isArray(value)) throw new DecodeError(`${what} must be an array`)
    return value.map(parseEntry)
  },
  toWire: (list) => list.map(entryToWire),
  fromWire(value, what) {
    if (!Array.isArray(value)) throw new DecodeError(`${what} must be an array`)
    return value.map(entryFromWire)
  },
}

// ---- messages --------------------------------------------------------------------------------------

/**
 * Raft messages by type, each with the fields after the common head (`from`, `to`, `term`,
 * `clusterId`). Wire form (the bond's, without `from` and `to`):
 * `[code, term, clusterId, ...fields]`.
 */
const MESSAGE_FIELDS = {
  append: { prevIndex: index, prevTerm: index, entries, commit: index, seq: index, quiet: bool },
  appendResponse: {
    reject: bool,
    index,
    hintIndex: index,
    hintTerm: index,
    seq: index,
    catchingUp: bool,
  },
  heartbeat: { commit: index, seq: index },
  heartbeatResponse: { seq: index },
  vote: { preVote: bool, lastIndex: index, lastTerm: index },
  voteResponse: { preVote: bool, answer: voteAnswer },
  snapshot: { index, snapshotTerm: index },
  hello: { commit: index, lastIndex: index, lastTerm: index, commands: bool, leader: strOrNull },
  concede: { winner: standing },
  fresh: { waiting: bool, incarnation: index, round: index, heardIncarnation: index, heardRound: index },
} as const satisfies {
  [K in MessageType]: FieldsOf<Extract<Message, { type: K }>, MessageBaseField>
}

/** The message types, their wire codes and fields. */
export const MESSAGES = new Kinds<MessageType>(MESSAGE_FIELDS)

/**
 * Checks a decoded value from a peer (or a store) before the core sees it: anything malformed is a
 * `DecodeError`, so a faulty or hostile peer can make the worker drop a frame but never corrupt the
 * core's state.
 */
export function parseMessage(value: unknown): Message {
  const m = asRecord(value, 'message')
  const out = messageHead(m.from, m.to, m.term, m.clusterId)
  const type = MESSAGES.named(m.type)
  if (type === undefined) throw new DecodeError(`unknown raft message type ${describeValue(m.type)}`)
  out.type = type
  MESSAGES.parse(type, m, out)
  return checkMessage(out as unknown as Message)
}

/** The checked common head of a message (`type` is set by the caller). */
export function messageHead(
  from: unknown,
  to: unknown,
  term: unknown,
  clusterId: unknown,
): Record<string, unknown> {
  return {
    from: str.parse(from, 'from'),
    to: str.parse(to, 'to'),
    term: index.parse(term, 'term'),
    clusterId: str.parse(clusterId, 'clusterId'),
  }
}

/** What no single field shows: the entries of an append follow its `prevIndex`. */
export function checkMessage(m: Message): Message {
  if (m.type === 'append') {
    const { entries, prevIndex } = m
    for (let i = 0; i < entries.length; i++) {
      if (entries[i]!.index !== prevIndex + 1 + i)
        throw new DecodeError('append.entries must follow prevIndex')
    }
  }
  return m
}

function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DecodeError(`${what} must be an object`)
  }
  return value as Record<string, unknown>
}

import type { PrivateKey } from '@libp2p/interface'
import { compareBytes, equalBytes, utf8 } from '../primitives/bytes.ts'
import { decodeCanonical, encodeCanonical } from '../primitives/codec.ts'
import { Digest, type DigestLike, type NetworkId } from '../primitives/digest.ts'
import { signWith } from '../primitives/ed25519.ts'
import { DecodeError, describeValue, InvalidSignatureError, MosaikError } from '../primitives/errors.ts'
import { type Expiration, type TicketValidator, validateTicket, validateTickets } from '../tickets/ticket.ts'
import { MAX_PEER_ID_LENGTH, SIGNATURE_LENGTH, signatureCheckOf, signingInput } from './signing.ts'

/**
 * A peer entry is what a node tells the network about itself: its addresses, role tags, the streams
 * it produces and the groups it belongs to. Entries are signed with the node's libp2p Ed25519 key and
 * versioned by (start, update): `start` is the process start time (a run id) and `update` grows with
 * every change, so a restarted node always supersedes its previous run.
 */

/** Version of the entry encoding; entries of another version are rejected as unsupported. */
export const ENTRY_FORMAT_VERSION = 1

/**
 * Limits on one peer entry, checked on the encoded bytes before anything else is decoded, and on the
 * local entry before it is signed. An entry over a limit is refused whole: it is signed, so it cannot
 * be trimmed. Every address of an entry goes to libp2p's peer store and to the neighbour dialer, whose
 * work grows faster than the count, so the address count is the limit that matters most.
 */
export interface EntryLimits {
  /** Largest encoded entry in bytes (the signature not included). */
  readonly maxBytes: number
  /** Most addresses in one entry. */
  readonly maxAddresses: number
}

/**
 * 8 KiB holds 16 addresses of 256 characters (4 KiB; a WebRTC-direct address with its certhash is
 * about 170) and about 120 tags, streams and groups (34 bytes each); a typical entry is under 1 KiB.
 */
export const DEFAULT_ENTRY_LIMITS: EntryLimits = { maxBytes: 8 * 1024, maxAddresses: 16 }
/** Longest address: a DNS name (up to 253 characters) with its transport and peer id still fits. */
export const MAX_ADDRESS_LENGTH = 512
/** Most role tags in one entry. */
export const MAX_TAGS = 64
/** Most tickets in one entry. */
export const MAX_TICKETS = 16

/** The version of a peer entry: a newer run (`start`) wins, then a later `update` within the run. */
export interface EntryVersion {
  /** Process start time in ms since the epoch: the run id. */
  readonly start: number
  /** Time of the latest change in ms since the epoch, strictly increasing within a run. */
  readonly update: number
}

export function compareVersions(a: EntryVersion, b: EntryVersion): number {
  if (a.start !== b.start) return a.start < b.start ? -1 : 1
  if (a.update !== b.update) return a.update < b.update ? -1 : 1
  return 0
}

/** An opaque credential attached to an entry (see tickets); `class` names its validator. */
export interface Ticket {
  readonly class: Digest
  readonly data: Uint8Array
}

/** A set of Digests that also answers `has('name')` for names, since Digest.from(name) is the id. */
export class DigestSet implements Iterable<Digest> {
  readonly #byHex: Map<string, Digest>

  constructor(items: Iterable<DigestLike> = []) {
    this.#byHex = new Map()
    for (const item of items) {
      const d = Digest.from(item)
      this.#byHex.set(d.toString(), d)
    }
  }

  /** True when the item (a Digest, or a name hashed with Digest.from) is in the set. */
  has(item: DigestLike): boolean {
    return this.#byHex.has(Digest.from(item).toString())
  }

  /** True when every given item is in the set. */
  hasAll(items: Iterable<DigestLike>): boolean {
    for (const item of items) if (!this.has(item)) return false
    return true
  }

  /** Number of members. */
  get size(): number {
    return this.#byHex.size
  }

  /** The members, in insertion order. */
  [Symbol.iterator](): Iterator<Digest> {
    return this.#byHex.values()
  }

  /** The members sorted by bytes: the canonical order used on the wire. */
  sorted(): Digest[] {
    return [...this.#byHex.values()].sort((a, b) => a.compare(b))
  }

  /** A new set with the given items added. */
  with(items: Iterable<DigestLike>): DigestSet {
    return new DigestSet([...this, ...items])
  }

  /** A new set with the given items removed. */
  without(items: Iterable<DigestLike>): DigestSet {
    const drop = new DigestSet(items)
    return new DigestSet([...this].filter((d) => !drop.has(d)))
  }

  /** True when both sets hold the same members. */
  equals(other: DigestSet): boolean {
    if (other.size !== this.size) return false
    for (const d of this) if (!other.has(d)) return false
    return true
  }
}

/** The content of a peer entry. Immutable: every mutator returns a new entry with a bumped version. */
export class PeerEntry {
  /** The id of the peer the entry describes (and whose key signs it). */
  readonly peerId: string
  /** The network the peer belongs to. */
  readonly network: NetworkId
  /** The run (start time) and the latest update of the entry. */
  readonly version: EntryVersion
  /** The multiaddrs the peer is reachable at, sorted and deduplicated. */
  readonly addresses: readonly string[]
  /** The role tags the peer declares. */
  readonly tags: DigestSet
  /** The ids of the streams the peer produces. */
  readonly streams: DigestSet
  /** The ids of the groups the peer is a member of. */
  readonly groups: DigestSet
  /** The credentials the peer carries, sorted canonically. */
  readonly tickets: readonly Ticket[]

  constructor(fields: {
    peerId: string
    network: NetworkId
    version: EntryVersion
    addresses?: readonly string[]
    tags?: Iterable<DigestLike>
    streams?: Iterable<DigestLike>
    groups?: Iterable<DigestLike>
    tickets?: readonly Ticket[]
  }) {
    this.peerId = fields.peerId
    this.network = fields.network
    this.version = fields.version
    this.addresses = [...new Set(fields.addresses ?? [])].sort()
    this.tags = new DigestSet(fields.tags)
    this.streams = new DigestSet(fields.streams)
    this.groups = new DigestSet(fields.groups)
    this.tickets = [...(fields.tickets ?? [])].sort(
      (a, b) => compareBytes(a.class.bytes, b.class.bytes) || compareBytes(a.data, b.data),
    )
  }

  /** When the peer's process started, in ms since the epoch (`version.start`). */
  get startedAt(): number {
    return this.version.start
  }

  /** When the entry last changed, in ms since the epoch (`version.update`). */
  get updatedAt(): number {
    return this.version.update
  }

  /** True when this entry's version is later than `other`'s (a newer run, then a later update). */
  isNewerThan(other: PeerEntry): boolean {
    return compareVersions(this.version, other.version) > 0
  }

  /** The tickets of one class. */
  ticketsOf(cls: DigestLike): Ticket[] {
    const d = Digest.from(cls)
    return this.tickets.filter((t) => t.class.equals(d))
  }

  /** Validates this entry's tickets of the validator's class: the latest expiry among the valid ones. */
  validateTicket(validator: TicketValidator): Promise<Expiration> {
    return validateTicket(this, validator)
  }

  /** Every validator must accept one of the tickets; resolves with the earliest expiry. */
  validateTickets(validators: readonly TicketValidator[]): Promise<Expiration> {
    return validateTickets(this, validators)
  }

  /** A copy with the given changes and a version bumped to max(previous + 1, now). */
  update(
    now: number,
    changes: Partial<{
      addresses: readonly string[]
      tags: Iterable<DigestLike>
      streams: Iterable<DigestLike>
      groups: Iterable<DigestLike>
      tickets: readonly Ticket[]
    }> = {},
  ): PeerEntry {
    return new PeerEntry({
      peerId: this.peerId,
      network: this.network,
      version: { start: this.version.start, update: Math.max(this.version.update + 1, Math.floor(now)) },
      addresses: changes.addresses ?? this.addresses,
      tags: changes.tags ?? this.tags,
      streams: changes.streams ?? this.streams,
      groups: changes.groups ?? this.groups,
      tickets: changes.tickets ?? this.tickets,
    })
  }

  /** True when the content (not the version) equals `other`'s. */
  sameContent(other: PeerEntry): boolean {
    return (
      this.peerId === other.peerId &&
      this.network.equals(other.network) &&
      this.addresses.length === other.addresses.length &&
      this.addresses.every((a, i) => a === other.addresses[i]) &&
      this.tags.equals(other.tags) &&
      this.streams.equals(other.streams) &&
      this.groups.equals(other.groups) &&
      this.tickets.length === other.tickets.length &&
      this.tickets.every(
        (t, i) => t.class.equals(other.tickets[i]!.class) && equalBytes(t.data, other.tickets[i]!.data),
      )
    )
  }

  /** Canonical bytes: the same entry always encodes the same way, so signatures compare bytes. */
  encode(): Uint8Array {
    return encodeCanonical([
      ENTRY_FORMAT_VERSION,
      this.network.bytes,
      this.peerId,
      [this.version.start, this.version.update],
      this.addresses,
      this.tags.sorted().map((d) => d.bytes),
      this.streams.sorted().map((d) => d.bytes),
      this.groups.sorted().map((d) => d.bytes),
      this.tickets.map((t) => [t.class.bytes, t.data]),
    ])
  }

  /** Throws EntryLimitError when the entry exceeds `limits` (this node's own entry must fit too). */
  checkLimits(limits: EntryLimits = DEFAULT_ENTRY_LIMITS, size = this.encode().length): void {
    if (size > limits.maxBytes) throw new EntryLimitError(this.peerId, 'bytes', size, limits.maxBytes)
    if (this.addresses.length > limits.maxAddresses) {
      throw new EntryLimitError(this.peerId, 'addresses', this.addresses.length, limits.maxAddresses)
    }
    const longest = Math.max(0, ...this.addresses.map((a) => a.length))
    if (longest > MAX_ADDRESS_LENGTH) {
      throw new EntryLimitError(this.peerId, 'address length', longest, MAX_ADDRESS_LENGTH)
    }
    if (this.tags.size > MAX_TAGS) throw new EntryLimitError(this.peerId, 'tags', this.tags.size, MAX_TAGS)
    if (this.tickets.length > MAX_TICKETS) {
      throw new EntryLimitError(this.peerId, 'tickets', this.tickets.length, MAX_TICKETS)
    }
  }

  /** Decodes an entry, refusing one over `limits` (by size before decoding, by counts after). */
  static decode(bytes: Uint8Array, limits: EntryLimits = DEFAULT_ENTRY_LIMITS): PeerEntry {
    if (bytes.length > limits.maxBytes) {
      throw new EntryLimitError(undefined, 'bytes', bytes.length, limits.maxBytes)
    }
    const v = decodeCanonical(bytes)
    if (!Array.isArray(v) || v.length < 1) throw new DecodeError('peer entry is not an array')
    if (v[0] !== ENTRY_FORMAT_VERSION) throw new UnsupportedEntryVersionError(v[0])
    const [, network, peerId, version, addresses, tags, streams, groups, tickets] = v
    if (
      v.length !== 9 ||
      !isDigestBytes(network) ||
      typeof peerId !== 'string' ||
      peerId.length > MAX_PEER_ID_LENGTH ||
      !Array.isArray(version) ||
      version.length !== 2 ||
      !version.every(Number.isSafeInteger) ||
      !isStringArray(addresses) ||
      !isDigestArray(tags) ||
      !isDigestArray(streams) ||
      !isDigestArray(groups) ||
      !Array.isArray(tickets) ||
      !tickets.every(
        (t: unknown) =>
          Array.isArray(t) && t.length === 2 && isDigestBytes(t[0]) && t[1] instanceof Uint8Array,
      )
    ) {
      throw new DecodeError('malformed peer entry')
    }
    const entry = new PeerEntry({
      peerId,
      network: Digest.fromBytes(network),
      version: { start: version[0], update: version[1] },
      addresses,
      tags: tags.map(Digest.fromBytes),
      streams: streams.map(Digest.fromBytes),
      groups: groups.map(Digest.fromBytes),
      tickets: tickets.map((t: [Uint8Array, Uint8Array]) => ({ class: Digest.fromBytes(t[0]), data: t[1] })),
    })
    entry.checkLimits(limits, bytes.length)
    return entry
  }
}

/**
 * A peer entry over one of the entry limits (size, addresses, tags, tickets). It is refused whole, never
 * trimmed, since it is signed; a catalog sync that carries one is closed with FrameTooLarge.
 */
export class EntryLimitError extends MosaikError {
  /** The peer whose entry is over the limit, when known (not before decoding). */
  readonly peerId: string | undefined
  /** Which limit: 'bytes', 'addresses', 'address length', 'tags' or 'tickets'. */
  readonly limit: string
  /** The measured size or count. */
  readonly size: number
  /** The limit it exceeds. */
  readonly max: number
  constructor(peerId: string | undefined, limit: string, size: number, max: number) {
    super(
      'ENTRY_TOO_LARGE',
      `peer entry${peerId ? ` of ${peerId}` : ''} is over the ${limit} limit: ${size} > ${max}`,
    )
    this.peerId = peerId
    this.limit = limit
    this.size = size
    this.max = max
  }
}

/** A peer entry in a format version this node does not speak (a newer SDK); refused whole. */
export class UnsupportedEntryVersionError extends DecodeError {
  constructor(version: unknown) {
    super(
      `unsupported peer entry format version ${describeValue(version)} (this node speaks ${ENTRY_FORMAT_VERSION})`,
    )
  }
}

export function isDigestBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length === 32
}

function isDigestArray(v: unknown): v is Uint8Array[] {
  return Array.isArray(v) && v.every(isDigestBytes)
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string')
}

// ---- signatures ------------------------------------------------------------------------------------

const ENTRY_DOMAIN = utf8('mosaik/peer-entry/v1')

/**
 * A peer entry with the signature of the peer it describes. The signed bytes are kept exactly as
 * received, so verification never depends on re-encoding.
 */
export class SignedPeerEntry {
  /** The decoded entry. */
  readonly entry: PeerEntry
  /** The signed bytes, exactly as received or encoded. */
  readonly bytes: Uint8Array
  /** The peer's Ed25519 signature over `bytes` (with a domain tag). */
  readonly signature: Uint8Array

  private constructor(entry: PeerEntry, bytes: Uint8Array, signature: Uint8Array) {
    this.entry = entry
    this.bytes = bytes
    this.signature = signature
  }

  /** Encodes `entry` canonically and signs it with the peer key `key`. */
  static async sign(entry: PeerEntry, key: PrivateKey): Promise<SignedPeerEntry> {
    const bytes = entry.encode()
    const signature = await signWith(key, signingInput(ENTRY_DOMAIN, bytes))
    return new SignedPeerEntry(entry, bytes, signature)
  }

  /**
   * Decodes and verifies; throws InvalidSignatureError, EntryLimitError or DecodeError, never returns
   * a bad entry.
   */
  static verify(bytes: Uint8Array, signature: Uint8Array, limits?: EntryLimits): Promise<SignedPeerEntry> {
    return SignedPeerEntry.fromWire([bytes, signature], limits)
  }

  /** Wire form: `[entryBytes, signature]`. */
  toWire(): [Uint8Array, Uint8Array] {
    return [this.bytes, this.signature]
  }

  /** Decodes and verifies the wire form `[entryBytes, signature]`; rejects like `verify`. */
  static fromWire(v: unknown, limits?: EntryLimits): Promise<SignedPeerEntry> {
    try {
      return SignedPeerEntry.parse(v, limits).verify()
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Decodes the wire form without checking the signature yet, so cheap checks (is it newer than what
   * we hold?) can run first. Nothing may be applied before `verify()` succeeds.
   */
  static parse(v: unknown, limits?: EntryLimits): UnverifiedEntry {
    if (
      !Array.isArray(v) ||
      v.length !== 2 ||
      !(v[0] instanceof Uint8Array) ||
      !(v[1] instanceof Uint8Array) ||
      v[1].length !== SIGNATURE_LENGTH
    ) {
      throw new DecodeError('malformed signed entry')
    }
    const [bytes, signature] = v as [Uint8Array, Uint8Array]
    const entry = PeerEntry.decode(bytes, limits)
    return {
      entry,
      bytes,
      signature,
      async verify() {
        if (!(await signatureCheckOf(entry.peerId)(signingInput(ENTRY_DOMAIN, bytes), signature))) {
          throw new InvalidSignatureError(`invalid signature on the entry of ${entry.peerId}`)
        }
        return new SignedPeerEntry(entry, bytes, signature)
      },
    }
  }
}

/** A decoded entry whose signature has not been checked yet. */
export interface UnverifiedEntry {
  readonly entry: PeerEntry
  readonly bytes: Uint8Array
  readonly signature: Uint8Array
  verify(): Promise<SignedPeerEntry>
}

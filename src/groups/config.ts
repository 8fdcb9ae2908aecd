import { Digest } from '../primitives/digest.ts'
import { InvalidArgumentError } from '../primitives/errors.ts'

/**
 * Consensus timing and limits of a group. Defaults aim at sub-second failover on a LAN (etcd's
 * heartbeat of 100 ms); raise them for WANs. Fields marked "shared" are part of the GroupId: members
 * that disagree on them never bond.
 */
export interface ConsensusOptions {
  /** The leader's heartbeat period (default 100 ms; shared). */
  heartbeatMs?: number
  /** The minimum election timeout (default 500 ms; shared). */
  electionTimeoutMs?: number
  /** Election timeouts are drawn from [timeout, timeout + jitter) (default 250 ms). */
  electionJitterMs?: number
  /** How long a fresh member waits for an existing group before founding one (default 1 s). */
  bootstrapDelayMs?: number
  /** The leader replaces a voter silent for this long (default 10 s). */
  voterUnreachableMs?: number
  /** The largest voter set the autopilot builds (default 5, mosaik's committee; shared). */
  maxVoters?: number
  /** A follower's forwarded command or read fails with OfflineError after this (default 2 s). */
  forwardTimeoutMs?: number
  /** A strong query fails with OfflineError after this (default 2 s). */
  queryTimeoutMs?: number
  /** An accepted command not committed within this fails with CommitUnknownError (default 10 s). */
  commitTimeoutMs?: number
  /** Bond keep-alive period when idle (default 500 ms; shared). */
  bondHeartbeatMs?: number
  /** A bond silent for this many keep-alive periods is closed (default 10; shared). */
  maxMissedHeartbeats?: number
  /** Take a state-machine snapshot and compact the log every this many entries (default 10 000). */
  snapshotEvery?: number
  /** Handshake timeout for new bonds (default 2 s). */
  handshakeTimeoutMs?: number
  /**
   * A member that learns it is more than this many committed entries behind pulls them from several
   * members at once, the gap split among them in windows of up to 2 000, instead of taking them from the
   * leader's appends one batch at a time (default 1000). A gap of `snapshotEvery` or more takes a
   * snapshot instead.
   */
  catchUpThreshold?: number
  /**
   * A member catching up asks another member for a window of entries or a chunk of a snapshot when the
   * one it asked has not answered within this (default 10 s; mosaik: 5 s for snapshots, 25 s for
   * log replay). Raise it for large snapshots over slow links.
   */
  catchUpFetchTimeoutMs?: number
  /**
   * A member that asked for a snapshot asks again when no member has offered one within this (default
   * 5 s; mosaik's snapshot request timeout, 15 s).
   */
  snapshotOfferTimeoutMs?: number
  /**
   * How long a member keeps a snapshot it offered after the last chunk fetched from it (default 30 s;
   * mosaik's snapshot TTL, 10 s). Each kept snapshot holds a copy of the state.
   */
  snapshotTtlMs?: number
  /**
   * How many members a new group waits for before it forms (default 1). The first of them founds it
   * with all of them as voters, so a member started alone, or cut off at start-up, cannot found a
   * second history of its own. Set it to the number of nodes an operator starts at once (Consul's
   * `bootstrap_expect`, etcd's initial cluster); members started later join the group as it is.
   */
  bootstrapExpect?: number
  /**
   * The leader refuses (GroupBusyError) commands forwarded by a member that already has this many
   * forwarded commands appended but not yet applied at the leader (default 4096). A single forward
   * larger than the limit is accepted only when nothing of that member is pending.
   */
  maxForwardedCommands?: number
  /** The same limit on the bytes of those commands (default 16 MiB). */
  maxForwardedBytes?: number
  /** The leader refuses strong reads from a member with this many reads in flight there (default 4096). */
  maxForwardedReads?: number
  /**
   * The largest command, encoded, this member proposes or (as leader) accepts from another (default 1
   * MiB). Larger ones fail with FrameTooLargeError before they are proposed: every command must fit a
   * transport frame (`maxFrameSize`, 4 MiB) on its way to each member, so `join` refuses a limit
   * within 64 KiB of it.
   */
  maxCommandBytes?: number
}

export type ConsensusConfig = Required<ConsensusOptions>

/** ConsensusOptions with every default filled in; throws InvalidArgumentError for values out of range. */
export function consensusConfig(options: ConsensusOptions = {}): ConsensusConfig {
  const c: ConsensusConfig = {
    heartbeatMs: options.heartbeatMs ?? 100,
    electionTimeoutMs: options.electionTimeoutMs ?? 500,
    electionJitterMs: options.electionJitterMs ?? 250,
    bootstrapDelayMs: options.bootstrapDelayMs ?? 1000,
    voterUnreachableMs: options.voterUnreachableMs ?? 10_000,
    maxVoters: options.maxVoters ?? 5,
    forwardTimeoutMs: options.forwardTimeoutMs ?? 2000,
    queryTimeoutMs: options.queryTimeoutMs ?? 2000,
    commitTimeoutMs: options.commitTimeoutMs ?? 10_000,
    bondHeartbeatMs: options.bondHeartbeatMs ?? 500,
    maxMissedHeartbeats: options.maxMissedHeartbeats ?? 10,
    snapshotEvery: options.snapshotEvery ?? 10_000,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 2000,
    catchUpThreshold: options.catchUpThreshold ?? 1000,
    catchUpFetchTimeoutMs: options.catchUpFetchTimeoutMs ?? 10_000,
    snapshotOfferTimeoutMs: options.snapshotOfferTimeoutMs ?? 5000,
    snapshotTtlMs: options.snapshotTtlMs ?? 30_000,
    bootstrapExpect: options.bootstrapExpect ?? 1,
    maxForwardedCommands: options.maxForwardedCommands ?? 4096,
    maxForwardedBytes: options.maxForwardedBytes ?? 16 * 1024 * 1024,
    maxForwardedReads: options.maxForwardedReads ?? 4096,
    maxCommandBytes: options.maxCommandBytes ?? 1024 * 1024,
  }
  for (const [name, value] of Object.entries(c)) {
    if (!(typeof value === 'number' && value > 0 && Number.isFinite(value))) {
      throw new InvalidArgumentError(`consensus.${name} must be a positive number, got ${value}`)
    }
  }
  if (!Number.isSafeInteger(c.bootstrapExpect) || c.bootstrapExpect > c.maxVoters) {
    throw new InvalidArgumentError(
      `consensus.bootstrapExpect must be an integer from 1 to maxVoters (${c.maxVoters}), got ${c.bootstrapExpect}`,
    )
  }
  if (c.electionTimeoutMs <= 2 * c.heartbeatMs) {
    throw new InvalidArgumentError('consensus.electionTimeoutMs must exceed twice heartbeatMs')
  }
  return c
}

/** The part of the configuration every member must share; derived into the GroupId. */
export function consensusDigest(c: ConsensusConfig): Digest {
  return Digest.fromParts(
    'mosaik/consensus/v1',
    `${c.heartbeatMs}/${c.electionTimeoutMs}/${c.maxVoters}/${c.bondHeartbeatMs}/${c.maxMissedHeartbeats}`,
  )
}

import { parseEntry } from '../raft/messages.ts'
import { RaftNode } from '../raft/raft.ts'
import type { LoadedLog } from '../storage/log-store.ts'
import type { WorkerInit } from '../worker.ts'

/**
 * The IO-less Raft core of a worker, restored from what its store loaded: the persisted term, vote
 * and log, and the snapshot the log starts after. Each stored entry is checked (`parseEntry`) before
 * the core sees it.
 */
export function restoreCore(
  init: Pick<WorkerInit<unknown, unknown, unknown>, 'id' | 'preference' | 'runtime' | 'consensus'>,
  loaded: LoadedLog,
): RaftNode {
  const c = init.consensus
  return new RaftNode({
    id: init.id,
    preference: init.preference,
    random: init.runtime.random,
    timing: {
      heartbeatMs: c.heartbeatMs,
      electionTimeoutMs: c.electionTimeoutMs,
      electionJitterMs: c.electionJitterMs,
      bootstrapDelayMs: c.bootstrapDelayMs,
      voterUnreachableMs: c.voterUnreachableMs,
    },
    maxVoters: c.maxVoters,
    catchUpThreshold: c.catchUpThreshold,
    bootstrapExpect: c.bootstrapExpect,
    now: init.runtime.now(),
    persisted: {
      hardState: loaded.hardState,
      snapshot: loaded.snapshot,
      entries: loaded.entries.map(parseEntry),
    },
  })
}

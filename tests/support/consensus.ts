import type { ConsensusOptions } from '../../platform/node/index.ts'

/**
 * Fast consensus timings for tests on one machine: heartbeats every 50 ms, elections after 300–450 ms.
 * Every suite starts from these (and overrides what its scenario needs), so a change of the defaults
 * under test happens in one place.
 */
export const FAST_CONSENSUS = {
  heartbeatMs: 50,
  electionTimeoutMs: 300,
  electionJitterMs: 150,
  bootstrapDelayMs: 300,
} as const satisfies ConsensusOptions

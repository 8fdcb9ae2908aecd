/**
 * `npm run soak`: the soak workload (workload.ts) for MOSAIK_SOAK_MINUTES (default 10), sampled every
 * MOSAIK_SOAK_SAMPLE_SECONDS (default 60) after forced garbage collections, with the first
 * MOSAIK_SOAK_WARMUP_SECONDS (default 120) left out of the fits, over MOSAIK_SOAK_TRANSPORT (quic, the
 * default, tcp or memory). Prints the table of samples and the
 * slopes, and exits with 1 when the heap or the handles grow beyond the bounds (bounds.ts).
 */
import type { Transport } from '../support/nodes.ts'
import { secs } from '../support/time.ts'
import { soakFailures } from './bounds.ts'
import { runSoak } from './workload.ts'

const minutes = Number(process.env.MOSAIK_SOAK_MINUTES ?? '') || 10
const sampleSeconds = Number(process.env.MOSAIK_SOAK_SAMPLE_SECONDS ?? '') || 60
const warmupSeconds = Number(process.env.MOSAIK_SOAK_WARMUP_SECONDS ?? '') || 120
const transport = (process.env.MOSAIK_SOAK_TRANSPORT || 'quic') as Transport
if (!['quic', 'tcp', 'memory'].includes(transport)) {
  console.log(`MOSAIK_SOAK_TRANSPORT must be quic, tcp or memory, not ${transport}`)
  process.exit(2)
}

console.log(
  `soak: ${transport}, ${minutes} min, a sample every ${sampleSeconds} s, fits after ${warmupSeconds} s (Node ${process.version}, pid ${process.pid})`,
)
const report = await runSoak({
  durationMs: minutes * 60_000,
  sampleEveryMs: sampleSeconds * 1000,
  warmupMs: warmupSeconds * 1000,
  churnEveryMs: 5000,
  timeoutMs: secs(30),
  transport,
  log: (line) => console.log(line),
})
console.log(report.table.split('\n').at(-1))
const failures = soakFailures(report)
if (failures.length) {
  console.log(`FAILED:\n  ${failures.join('\n  ')}`)
  process.exit(1)
}
console.log('ok: heap and handles flat after the warm-up')
process.exit(0)

/**
 * Long mode of the group-worker simulation: `npm run sim -- --runs N [--scenario name] [--seed S]
 * [--span ms] [--trace]`. Runs N seeds per scenario (from S, default 1) and reports every failing
 * seed, not only the first. `--span` sets the faulty phase (default: each scenario's long span; the
 * default test suite runs shorter ones). `--trace` prints the event trace of failing runs (use it
 * with `--runs 1`).
 */

import { parseArgs } from 'node:util'
import { replayHint, runScenario, SCENARIOS, scenario } from './scenarios.ts'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '100' },
    scenario: { type: 'string' },
    seed: { type: 'string', default: '1' },
    trace: { type: 'boolean', default: false },
    span: { type: 'string' },
  },
})

const runs = Number(values.runs)
const first = Number(values.seed)
const chosen = values.scenario === undefined ? SCENARIOS : [scenario(values.scenario)]
const failures: string[] = []
const started = performance.now()

for (const s of chosen) {
  const t0 = performance.now()
  let worstRecovery = 0
  let events = 0
  let ops = 0
  let failed = 0
  let took = 0
  for (let seed = first; seed < first + runs; seed++) {
    let result: Awaited<ReturnType<typeof runScenario>>
    try {
      result = await runScenario(s, seed, {
        trace: values.trace,
        span: values.span === undefined ? undefined : Number(values.span),
      })
    } catch (err) {
      failed++
      failures.push(`${s.name} seed ${seed}: threw ${(err as Error).stack}\n  ${replayHint(s.name, seed)}`)
      continue
    }
    events += result.stats.events
    if (s.exercises?.took(result)) took++
    ops += result.stats.ops
    worstRecovery = Math.max(worstRecovery, result.stats.recoveryMs ?? Number.POSITIVE_INFINITY)
    if (result.problems.length > 0) {
      failed++
      const line = `${s.name} seed ${seed}:\n  ${result.problems.slice(0, 8).join('\n  ')}\n  ${replayHint(s.name, seed)}`
      failures.push(line)
      console.log(`FAIL ${line}`)
      if (values.trace) console.log(result.sim.traceLines.join('\n'))
    }
  }
  const secs = (performance.now() - t0) / 1000
  console.log(
    `${s.name}: ${runs} seeds, ${failed} failed, ${secs.toFixed(1)} s (${((secs * 1000) / runs).toFixed(0)} ms/seed), ` +
      `${events} events, ${ops} client calls, worst recovery ${worstRecovery.toFixed(0)} ms` +
      (s.exercises ? `, ${s.exercises.what} in ${took} seeds` : ''),
  )
}

console.log(
  `\n${failures.length === 0 ? 'all seeds passed' : `${failures.length} failing seeds`} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
)
for (const f of failures) console.log(`- ${f}`)
process.exitCode = failures.length === 0 ? 0 : 1

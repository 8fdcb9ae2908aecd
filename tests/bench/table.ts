/** A progress line on stderr: stdout carries the section's rows. */
export const log = (msg: string) => process.stderr.write(`  ${msg}\n`)

/** One row of the benchmark table: a figure next to its baseline measured in the same run. */
export interface Row {
  section: string
  name: string
  value: number
  unit: string
  baselineName?: string
  baseline?: number
  /** True when a bigger value is better (throughput); false for times. */
  higherIsBetter?: boolean
}

const fmt = (n: number) =>
  n >= 100_000 ? n.toExponential(2) : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)

/** Renders rows as one markdown table; the ratio column is value ÷ baseline. */
export function renderTable(rows: Row[]): string {
  const lines = ['| section | measurement | value | baseline (same run) | ratio |', '|---|---|---|---|---|']
  for (const r of rows) {
    const base = r.baseline !== undefined ? `${fmt(r.baseline)} ${r.unit} (${r.baselineName})` : '—'
    const ratio = r.baseline ? `${(r.value / r.baseline).toFixed(2)}×` : '—'
    lines.push(`| ${r.section} | ${r.name} | ${fmt(r.value)} ${r.unit} | ${base} | ${ratio} |`)
  }
  return lines.join('\n')
}

/** Operations per second of sequential operations that took `latencies` (ms) one after the other. */
export const sequentialRate = (latencies: readonly number[]): number =>
  (1000 * latencies.length) / latencies.reduce((a, b) => a + b, 0)

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0
    ? Number.NaN
    : s.length % 2
      ? s[(s.length - 1) / 2]!
      : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}

import type { SoakReport } from './workload.ts'

/**
 * What a soak run must show after its warm-up, per minute: the heap and the handles (active resources
 * other than timers, open sockets, connections, streams) stay flat. Timers come and go with the load, so
 * they get more room. `scale` (and `heapScale` for the heap) widens the bounds for short runs, whose
 * fits span less than a minute and so turn noise, and the tail of the warm-up, into steep slopes.
 */
export function soakFailures(report: SoakReport, scale = 1, heapScale = scale): string[] {
  const bounds: [keyof SoakReport['slopes'], number, string][] = [
    ['heapMiB', 1 * heapScale, 'MiB'],
    ['handles', 0.5 * scale, 'handles'],
    ['sockets', 0.5 * scale, 'sockets'],
    ['connections', 0.5 * scale, 'connections'],
    ['streams', 2 * scale, 'streams'],
    ['timers', 5 * scale, 'timers'],
  ]
  const failures = bounds
    .filter(([key, bound]) => report.slopes[key] > bound)
    .map(
      ([key, bound, unit]) =>
        `${key} grows by ${report.slopes[key].toFixed(3)} ${unit}/min after the warm-up (bound ${bound})`,
    )
  if (report.fitted < 3) failures.push(`only ${report.fitted} samples after the warm-up`)
  return [...failures, ...report.errors.map((e) => `workload error: ${e}`)]
}

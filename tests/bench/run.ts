/**
 * `npm run bench`: every figure next to a baseline measured in the same run on the same machine.
 * Sections can be chosen: `npm run bench -- discovery streams`.
 */
import { cpus, totalmem } from 'node:os'
import { benchBrowser } from './browser.ts'
import { benchCollections } from './collections.ts'
import { benchDiscovery } from './discovery.ts'
import { benchGroups } from './groups.ts'
import { benchStreams } from './streams.ts'
import { type Row, renderTable } from './table.ts'

const sections: Record<string, () => Promise<Row[]>> = {
  discovery: benchDiscovery,
  streams: benchStreams,
  groups: benchGroups,
  collections: benchCollections,
  browser: benchBrowser,
}

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'))
const chosen = wanted.length > 0 ? wanted : Object.keys(sections)
for (const name of chosen) {
  if (!sections[name]) {
    throw new Error(`unknown bench section ${name}; known: ${Object.keys(sections).join(', ')}`)
  }
}
const rows: Row[] = []
// A section that fails (a baseline that stalls, say) costs its own rows, not the whole table.
const failed: string[] = []
for (const name of chosen) {
  process.stderr.write(`running ${name}...\n`)
  try {
    rows.push(...(await sections[name]!()))
  } catch (err) {
    process.stderr.write(`section ${name} failed: ${(err as Error).stack}\n`)
    failed.push(`${name} (${(err as Error).message})`)
  }
}
const cpu = cpus()[0]?.model ?? 'unknown CPU'
console.log(
  `Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`,
)
console.log(renderTable(rows))
if (failed.length > 0) console.log(`\nFailed sections, without rows: ${failed.join('; ')}`)
process.exit(failed.length > 0 ? 1 : 0)

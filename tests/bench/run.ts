/**
 * `npm run bench`: every figure next to a baseline measured in the same run on the same machine.
 * Sections can be chosen: `npm run bench -- discovery streams`.
 *
 * Each section runs in a process of its own, one after the other. In one process a section inherited
 * the heap and the compiled code of those before it: streams' QUIC 1 KiB row read 0.83× after
 * discovery's 50-node runs where the same code read 1.01× alone. A figure and its baseline still run
 * in the same process, interleaved.
 */
import { spawn } from 'node:child_process'
import { cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
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

/** The argument that makes this script run one section and print its rows as JSON. */
const SECTION_ARG = '--section'

if (process.argv[2] === SECTION_ARG) {
  const rows = await sections[process.argv[3]!]!()
  process.stdout.write(JSON.stringify(rows))
  process.exit(0)
}

/** Runs one section in a child process; its progress goes to our stderr. */
function runSection(name: string): Promise<Row[]> {
  const child = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), SECTION_ARG, name],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  let out = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    out += chunk
  })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => {
      if (code === 0) resolve(JSON.parse(out) as Row[])
      else reject(new Error(`exited with ${code} (its error is above)`))
    })
  })
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
    rows.push(...(await runSection(name)))
  } catch (err) {
    process.stderr.write(`section ${name} failed: ${(err as Error).message}\n`)
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

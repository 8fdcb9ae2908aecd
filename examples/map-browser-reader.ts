/**
 * A replicated Map written by a Node process and read in a browser.
 *
 * The writer is a Node peer listening on loopback TCP and WebSockets (browsers dial WebSockets or
 * WebRTC; no relay is needed when the writer has a `/ws` address they can reach). It writes a few
 * scores into the `examples/scores` Map, then:
 * - by default, bundles examples/map-browser/ (index.html and main.ts) with esbuild, serves it on
 *   http://127.0.0.1:<port>/ with a /config.json naming the network, its own `/ws` address and the
 *   store, prints that URL, and bumps a random score every second until Ctrl-C. Open the URL: the
 *   page is a reader of the Map and shows each version as it commits.
 * - with `--once`, starts a Node reader instead (the same calls as the page), awaits the writer's
 *   version (`when.reaches`), prints the entries and exits.
 *
 * Run: npx node examples/map-browser-reader.ts [--port 7071]   (then open the printed URL)
 *      npx node examples/map-browser-reader.ts --once          (Node only; exits by itself)
 */
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { build, stop as stopEsbuild } from 'esbuild'
import { collections, Network } from '../platform/node/index.ts'

const { values: flags } = parseArgs({
  options: { once: { type: 'boolean', default: false }, port: { type: 'string', default: '7071' } },
})
const NETWORK = 'examples/map-browser'
const STORE = 'examples/scores'
const signal = AbortSignal.timeout(20_000) // every wait below gives up after 20 s

const writerNet = await Network.create({
  network: NETWORK,
  listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'],
})
const scores = collections.Map.writer<string, number>(writerNet, STORE)
await scores.when.online({ signal }) // a lone writer elects itself leader of the Map's group
let version = 0
for (const [player, score] of [
  ['alice', 3],
  ['bob', 5],
  ['carol', 8],
] as const)
  version = await scores.set(player, score) // resolves with the version (log index) once committed
console.log(`writer: 3 scores written, version ${version}`)

if (flags.once) {
  // A Node reader: joins the Map's group as an observer and catches up from the writer.
  const readerNet = await Network.create({
    network: NETWORK,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: writerNet.addresses,
  })
  const reader = collections.Map.reader<string, number>(readerNet, STORE)
  await reader.when.reaches(version, { signal })
  const entries = [...reader.entries()].map(([k, v]) => `${k}=${v}`).join(' ')
  console.log(`node reader: version ${version}: ${entries}`)
  await Promise.all([readerNet.close(), writerNet.close()])
  console.log('done')
} else {
  const ws = writerNet.addresses.find((a) => a.includes('/ws/'))!
  const page = fileURLToPath(new URL('./map-browser/', import.meta.url))
  const bundle = await build({
    entryPoints: [`${page}main.ts`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2023',
    minify: true,
    write: false,
    logLevel: 'silent',
  })
  await stopEsbuild()
  const files: Record<string, [string, string]> = {
    '/': ['text/html', readFileSync(`${page}index.html`, 'utf8')],
    '/main.js': ['text/javascript', bundle.outputFiles[0]!.text],
    '/config.json': ['application/json', JSON.stringify({ network: NETWORK, bootstrap: [ws], store: STORE })],
  }
  const server = createServer((req, res) => {
    const file = files[new URL(req.url ?? '/', 'http://localhost').pathname]
    res.writeHead(file ? 200 : 404, { 'content-type': file?.[0] ?? 'text/plain' })
    res.end(file?.[1] ?? 'not found')
  })
  const port = Number(flags.port)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })
  console.log(`open http://127.0.0.1:${(server.address() as AddressInfo).port}/ (Ctrl-C stops)`)

  const players = ['alice', 'bob', 'carol']
  const timer = setInterval(() => {
    const player = players[Math.floor(Math.random() * players.length)]!
    scores
      .set(player, (scores.get(player) ?? 0) + 1)
      .then((v) => console.log(`writer: ${player}=${scores.get(player)} at version ${v}`))
      .catch(() => {})
  }, 1000)
  process.once('SIGINT', async () => {
    clearInterval(timer)
    server.closeAllConnections()
    server.close()
    await writerNet.close()
    process.exit(0)
  })
}

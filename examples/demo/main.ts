/**
 * `npm start`: a mosaik network on this machine, and a browser dashboard that is a peer of it.
 *
 * It starts, on loopback and with no external service:
 * - the relay binary (`relay/main.ts`, a child process) on TCP, WebSockets, WebRTC-direct and QUIC
 *   (where available), on free ports;
 * - `--nodes` (default 3) full nodes (`node.ts`, one process each) bootstrapped from the relay, over QUIC
 *   (TCP where QUIC is unavailable), with role tags and a `dataDir` in a temporary directory. They run a
 *   replicated counter (a Raft group), write a Map and a PriorityQueue, and one of them streams
 *   synthetic prices at `--rate` datums/s;
 * - an HTTP server on 127.0.0.1 (`--port`, default 7070, any free port if taken) serving the dashboard
 *   (examples/dashboard, bundled with esbuild now). The page joins the network through the relay's
 *   WebSockets address and reads everything peer to peer; the only HTTP call it makes is
 *   `POST /api/kill-leader`, which SIGKILLs the counter group's leader process (restarted
 *   `--restart-after` ms later from its dataDir).
 *
 * Ctrl-C stops everything (nodes, then the relay) and removes the temporary directory; children also
 * stop by themselves if this script dies (their IPC channel closes). `--once` runs a scripted tour
 * instead: start, show the data flowing, kill the leader, show the new one, restart it, stop, exit 0.
 * `--verbose` prints the children's output.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { build, stop as stopEsbuild } from 'esbuild'
import { quicAvailable } from '../../platform/node/index.ts'
import { NETWORK, type NodeReport } from './shared.ts'

const { values: flags } = parseArgs({
  options: {
    once: { type: 'boolean', default: false },
    nodes: { type: 'string', default: '3' },
    port: { type: 'string', default: '7070' },
    rate: { type: 'string', default: '300' },
    'restart-after': { type: 'string', default: '3000' },
    verbose: { type: 'boolean', default: false },
  },
})
const NODES = Math.max(3, Number(flags.nodes) || 3)
const RESTART_AFTER_MS = Math.max(0, Number(flags['restart-after']) || 0)
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url))
const RELAY_MAIN = here('../../relay/main.ts')
const NODE_MAIN = here('./node.ts')
const RELAY_GUARD = new URL('./relay-guard.ts', import.meta.url).href
const DASHBOARD = here('../dashboard/')
const started = performance.now()
const say = (msg: string) => console.log(msg)
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)}s`

const dataRoot = mkdtempSync(join(tmpdir(), 'mosaik-demo-'))
const children = new Set<ChildProcess>()
let stopping = false

/** Pipes a child's output through with a prefix (with --verbose), keeping the last lines for errors. */
function watchOutput(child: ChildProcess, who: string, tail: string[]): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue
    createInterface({ input: stream }).on('line', (line) => {
      tail.push(line)
      if (tail.length > 20) tail.shift()
      if (flags.verbose) console.log(`[${who}] ${line}`)
    })
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

// ---- the relay ----------------------------------------------------------------------------------------

interface Relay {
  child: ChildProcess
  peerId: string
  addresses: string[]
  address(transport: 'tcp' | 'ws' | 'quic-v1' | 'webrtc-direct'): string | undefined
}

async function startRelay(): Promise<Relay> {
  const listen = [
    '/ip4/127.0.0.1/udp/0/quic-v1', // dropped by the relay where QUIC is unavailable
    '/ip4/127.0.0.1/tcp/0',
    '/ip4/127.0.0.1/tcp/0/ws',
    '/ip4/127.0.0.1/udp/0/webrtc-direct',
  ]
  const child = fork(
    RELAY_MAIN,
    [
      `--network=${NETWORK}`,
      `--listen=${listen.join(',')}`,
      `--identity=${join(dataRoot, 'relay.key')}`,
      '--http-port=off',
    ],
    { execArgv: ['--import', RELAY_GUARD], stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true },
  )
  children.add(child)
  const tail: string[] = []
  watchOutput(child, 'relay', tail)
  const ready = await new Promise<{ peerId: string; addresses: string[] }>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; peerId: string; addresses: string[] }
        if (entry.msg === 'ready') resolve(entry)
      } catch {
        // not a log line
      }
    })
    child.once('exit', (code) =>
      reject(new Error(`the relay exited (${code}) before ready:\n${tail.join('\n')}`)),
    )
  })
  return {
    child,
    ...ready,
    address: (transport) =>
      ready.addresses.find((a) => {
        const parts = a.split('/')
        return transport === 'tcp' ? parts[3] === 'tcp' && parts[5] === 'p2p' : parts.includes(transport)
      }),
  }
}

// ---- the node processes -------------------------------------------------------------------------------

type Status = Extract<NodeReport, { type: 'status' }>

interface NodeProc {
  name: string
  args: string[]
  child: ChildProcess | undefined
  peerId: string | undefined
  status: Status | undefined
  restarts: number
  killedAt: number | undefined
  tail: string[]
}

const nodes: NodeProc[] = []
const reports = new EventEmitter()
const restartTimers = new Set<ReturnType<typeof setTimeout>>()

function startNode(node: NodeProc): void {
  const child = fork(NODE_MAIN, node.args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true })
  node.child = child
  node.status = undefined
  children.add(child)
  watchOutput(child, node.name, node.tail)
  child.on('message', (msg: NodeReport) => {
    if (msg.type === 'ready') node.peerId = msg.peerId
    else node.status = msg
    reports.emit('report', node, msg)
  })
  child.once('exit', (code, signal) => {
    children.delete(child)
    if (node.child === child) node.child = undefined
    if (!stopping && signal !== 'SIGKILL')
      say(`${node.name} exited unexpectedly (${signal ?? code}):\n  ${node.tail.slice(-8).join('\n  ')}`)
    reports.emit('report', node, undefined)
  })
}

/** The counter group's leader as the running nodes report it (the most recent term wins). */
function currentLeader(): { node: NodeProc; term: number } | undefined {
  let best: { peerId: string; term: number } | undefined
  for (const n of nodes) {
    const s = n.child && n.status
    if (s?.leader && (!best || s.term > best.term)) best = { peerId: s.leader, term: s.term }
  }
  const node = best && nodes.find((n) => n.peerId === best.peerId && n.child)
  return node && best ? { node, term: best.term } : undefined
}

/** SIGKILLs a node's process (a crash, not a shutdown) and restarts it from its dataDir later. */
function killNode(node: NodeProc): void {
  if (!node.child) return
  node.child.kill('SIGKILL')
  node.killedAt = Date.now()
  const timer = setTimeout(() => {
    restartTimers.delete(timer)
    if (stopping || node.child) return
    node.restarts++
    say(`${elapsed()} restarting ${node.name} from its dataDir`)
    startNode(node)
  }, RESTART_AFTER_MS)
  restartTimers.add(timer)
}

/** Resolves once `pred` holds over the nodes' reports (checked on every report), or rejects. */
function until<T>(what: string, pred: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const v = pred()
      if (v === undefined || v === false) return
      done()
      resolve(v)
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))
    }, timeoutMs)
    const done = () => {
      clearTimeout(timer)
      reports.off('report', check)
    }
    reports.on('report', check)
    check()
  })
}

// ---- the dashboard ------------------------------------------------------------------------------------

async function bundleDashboard(): Promise<{ js: string; css: string }> {
  const result = await build({
    entryPoints: [join(DASHBOARD, 'main.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2023',
    minify: true,
    write: false,
    outdir: join(dataRoot, 'dashboard'),
    logLevel: 'silent',
  })
  await stopEsbuild() // its service process is not needed any more
  const file = (ext: string) => result.outputFiles.find((f) => f.path.endsWith(ext))?.text ?? ''
  return { js: file('.js'), css: file('.css') }
}

async function serve(config: object): Promise<{ url: string; close(): Promise<void> }> {
  const { js, css } = await bundleDashboard()
  const html = readFileSync(join(DASHBOARD, 'index.html'), 'utf8')
  const send = (res: ServerResponse, status: number, type: string, body: string) => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
    res.end(body)
  }
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    if (req.method === 'POST' && path === '/api/kill-leader') {
      // JSON only: a cross-site form cannot send it, and other origins get no CORS grant to preflight.
      if (!req.headers['content-type']?.startsWith('application/json'))
        return send(res, 415, 'application/json', JSON.stringify({ error: 'send application/json' }))
      let body = ''
      req.on('data', (d) => {
        body += d
      })
      req.on('end', () => {
        let asked: string | undefined
        try {
          asked = (JSON.parse(body || '{}') as { peerId?: string }).peerId
        } catch {
          return send(res, 400, 'application/json', JSON.stringify({ error: 'bad JSON' }))
        }
        // The leader the page shows, if it is one of ours and running; else the one the nodes report.
        const target = nodes.find((n) => n.child && asked && n.peerId === asked) ?? currentLeader()?.node
        if (!target) return send(res, 409, 'application/json', JSON.stringify({ error: 'no leader known' }))
        say(`${elapsed()} dashboard: SIGKILL ${target.name} (the leader), restart in ${RESTART_AFTER_MS} ms`)
        const pid = target.child?.pid
        killNode(target)
        send(
          res,
          200,
          'application/json',
          JSON.stringify({ killed: target.name, peerId: target.peerId, pid, restartInMs: RESTART_AFTER_MS }),
        )
      })
      return
    }
    if (req.method !== 'GET') return send(res, 405, 'text/plain', 'method not allowed')
    if (path === '/') return send(res, 200, 'text/html; charset=utf-8', html)
    if (path === '/dashboard.js') return send(res, 200, 'text/javascript', js)
    if (path === '/dashboard.css') return send(res, 200, 'text/css', css)
    if (path === '/config.json') return send(res, 200, 'application/json', JSON.stringify(config))
    send(res, 404, 'text/plain', 'not found')
  }
  const server = createServer(handle)
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
  try {
    await listen(Number(flags.port) || 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
    await listen(0) // the fixed port is taken (another demo?): any free one
  }
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

// ---- stopping -----------------------------------------------------------------------------------------

let closeServer: (() => Promise<void>) | undefined

async function shutdown(code: number): Promise<never> {
  if (stopping) process.exit(code)
  stopping = true
  for (const t of restartTimers) clearTimeout(t)
  say(`${elapsed()} stopping ${nodes.filter((n) => n.child).length} nodes and the relay`)
  const stopAll = async (procs: ChildProcess[]) => {
    for (const c of procs) c.kill('SIGTERM')
    const force = setTimeout(() => {
      for (const c of procs) c.kill('SIGKILL')
    }, 8000)
    await Promise.all(procs.map(exited))
    clearTimeout(force)
  }
  const relayChild = relay?.child
  await stopAll([...children].filter((c) => c !== relayChild))
  if (relayChild) await stopAll([relayChild])
  await closeServer?.()
  rmSync(dataRoot, { recursive: true, force: true })
  say('all processes stopped')
  process.exit(code)
}
process.on('SIGINT', () => void shutdown(0))
process.on('SIGTERM', () => void shutdown(0))
// Last resort (an uncaught error): no child outlives this process.
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
  rmSync(dataRoot, { recursive: true, force: true })
})

// ---- start --------------------------------------------------------------------------------------------

let relay: Relay | undefined
try {
  const quic = await quicAvailable()
  relay = await startRelay()
  const bootstrap = (quic && relay.address('quic-v1')) || relay.address('tcp')!
  const ws = relay.address('ws')!
  say(`${elapsed()} relay ${relay.peerId} up:\n  ${relay.addresses.join('\n  ')}`)

  const roles = [['role:producer'], ['role:consumer', 'role:worker'], ['role:consumer']]
  for (let i = 0; i < NODES; i++) {
    const name = `node-${i + 1}`
    const tags = roles[i] ?? ['role:consumer']
    const args = [
      `--name=${name}`,
      `--bootstrap=${bootstrap}`,
      `--data=${join(dataRoot, name)}`,
      `--tags=${tags.join(',')}`,
      `--rate=${flags.rate}`,
      ...(tags.includes('role:producer') ? ['--produce'] : []),
      ...(tags.includes('role:consumer') ? ['--consume'] : []),
    ]
    const node: NodeProc = {
      name,
      args,
      child: undefined,
      peerId: undefined,
      status: undefined,
      restarts: 0,
      killedAt: undefined,
      tail: [],
    }
    nodes.push(node)
    startNode(node)
  }
  const server = await serve({ network: NETWORK, bootstrap: [ws], relay: relay.peerId, nodes: NODES })
  closeServer = server.close
  await until('the nodes to start', () => nodes.every((n) => n.peerId))
  for (const n of nodes)
    say(`${elapsed()} ${n.name} ${n.peerId} (${n.args.find((a) => a.startsWith('--tags'))})`)
  say(`\ndashboard: ${server.url}\n`)

  const leader = await until('a leader', () =>
    nodes.every((n) => n.status?.leader) ? currentLeader() : undefined,
  )
  say(`${elapsed()} counter group: leader ${leader.node.name}, term ${leader.term}`)

  if (flags.once) await tour()
  else {
    say('running; open the dashboard, or press Ctrl-C to stop.')
    let lastLeader = leader.node.name
    setInterval(() => {
      if (stopping) return
      const l = currentLeader()
      const s = l?.node.status
      const consumed = nodes.reduce((sum, n) => sum + (n.status?.consumed ?? 0), 0)
      if (l && l.node.name !== lastLeader) say(`${elapsed()} new leader ${l.node.name} (term ${l.term})`)
      lastLeader = l?.node.name ?? lastLeader
      say(
        `${elapsed()} leader ${l?.node.name ?? '(none)'} term ${l?.term ?? '-'} commit ${s?.applied ?? '-'} ` +
          `counter ${s?.counter ?? '-'} | prices consumed ${consumed} | status ${s?.statusEntries ?? '-'} ` +
          `jobs ${s?.jobs ?? '-'}`,
      )
    }, 10_000).unref()
  }
} catch (err) {
  console.error(`npm start failed: ${(err as Error).message}`)
  for (const n of nodes) if (n.tail.length) console.error(`[${n.name}]\n  ${n.tail.join('\n  ')}`)
  await shutdown(1)
}

/** `--once`: show the data flowing, kill the leader, show the new one, restart it, stop. */
async function tour(): Promise<void> {
  const flowing = await until('data to flow', () => {
    const s = nodes.map((n) => n.status)
    const ok = s.every((x) => x && x.counter > 0 && x.statusEntries >= NODES && x.jobs > 0)
    const consumed = s.reduce((sum, x) => sum + (x?.consumed ?? 0), 0)
    return ok && consumed > 0 ? s : undefined
  })
  const before = flowing.reduce((sum, x) => sum + (x?.consumed ?? 0), 0)
  await new Promise((r) => setTimeout(r, 1000))
  const after = nodes.reduce((sum, n) => sum + (n.status?.consumed ?? 0), 0)
  say(
    `${elapsed()} data flows: prices ${after - before} datums/s to the consumers; counter ` +
      `${Math.max(...nodes.map((n) => n.status?.counter ?? 0))}; status Map ${flowing[0]!.statusEntries} ` +
      `entries; jobs queue ${flowing[0]!.jobs} entries`,
  )
  const old = currentLeader()!
  say(`${elapsed()} killing the leader ${old.node.name} (SIGKILL, pid ${old.node.child?.pid})`)
  const killedAt = performance.now()
  killNode(old.node)
  const next = await until('a new leader', () => {
    const l = currentLeader()
    return l && l.node !== old.node && l.term > old.term ? l : undefined
  })
  say(
    `${elapsed()} new leader ${next.node.name}, term ${next.term}, ` +
      `${(performance.now() - killedAt).toFixed(0)} ms after the kill`,
  )
  await until('the killed node to rejoin', () => {
    const s = old.node.child && old.node.status
    return s && s.leader === next.node.peerId && s.counter >= (next.node.status?.counter ?? 0) - 5
  })
  say(`${elapsed()} ${old.node.name} restarted from its dataDir and follows ${next.node.name}`)
  await shutdown(0)
}

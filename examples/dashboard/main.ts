/**
 * The demo dashboard: a browser peer of the demo network. It joins through the relay's WebSockets
 * address and reads everything peer to peer with the SDK's browser build:
 * - topology: the discovery catalog (peers and their tags, RTT) and connections, this page's own
 *   (libp2p) and the ones the nodes stream on `demo/links`, drawn with cytoscape;
 * - the `demo/prices` stream, charted with uPlot, with datums/s, bytes/s and latency;
 * - the counter group, joined as an observer (leader, term, commit index, voters, learners);
 * - the `demo/status` Map and `demo/jobs` PriorityQueue, as readers, with their versions.
 *
 * Rendering is throttled: data handlers only record, and one requestAnimationFrame loop draws (the
 * chart at most 10 times a second, tables when changed, the graph once a second).
 */
import 'uplot/dist/uPlot.min.css'
import cytoscape from 'cytoscape'
import uPlot from 'uplot'
import { collections, GroupKey, Network, type PeerInfo } from '../../platform/browser/index.ts'
import {
  COUNTER_SECRET,
  Counter,
  JOBS_QUEUE,
  type Job,
  type Link,
  type Links,
  LinksStream,
  linkKind,
  type NodeStatus,
  Prices,
  STATUS_MAP,
  SYMBOLS,
} from '../demo/shared.ts'

interface Config {
  network: string
  bootstrap: string[]
  relay: string
  nodes: number
}

const $ = (id: string): HTMLElement => {
  const el = document.querySelector<HTMLElement>(`[data-testid="${id}"]`)
  if (!el) throw new Error(`no element ${id}`)
  return el
}
const text = (id: string, value: string | number) => {
  const el = $(id)
  const s = String(value)
  if (el.textContent !== s) el.textContent = s
}
const short = (id: string | undefined) => (id ? `…${id.slice(-6)}` : '–')
const bytes = (n: number) =>
  n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`
const age = (at: number) => `${Math.max(0, (Date.now() - at) / 1000).toFixed(1)} s`
const html = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!)

const config = (await (await fetch('/config.json')).json()) as Config
text('network', config.network)

const net = await Network.create({
  network: config.network,
  bootstrap: config.bootstrap,
  tags: ['role:dashboard'],
  allowPrivateAddresses: true, // the demo runs on loopback
})
text('self', net.peerId)
const debug: Record<string, unknown> = { net }
;(globalThis as Record<string, unknown>).dashboard = debug

// ---- names and tags -----------------------------------------------------------------------------------

// Peer entries carry tags as digests, so the page recognizes the tags it knows of.
const KNOWN_TAGS = [
  'role:relay',
  'role:producer',
  'role:consumer',
  'role:worker',
  'role:dashboard',
  ...Array.from({ length: config.nodes + 4 }, (_, i) => `node:node-${i + 1}`),
]
let catalog = net.discovery.catalog()
const tagsOf = (peer: PeerInfo) => KNOWN_TAGS.filter((t) => peer.tags.has(t))
const nameOf = (id: string | undefined): string => {
  if (!id) return '–'
  if (id === net.peerId) return 'this page'
  const peer = catalog.get(id)
  const tags = peer ? tagsOf(peer) : []
  const node = tags.find((t) => t.startsWith('node:'))
  if (node) return node.slice(5)
  if (tags.includes('role:relay')) return 'relay'
  if (tags.includes('role:dashboard')) return `dashboard ${short(id)}`
  return short(id)
}

// ---- the stream ---------------------------------------------------------------------------------------

const prices = net.streams.consumer(Prices)
debug.prices = prices
const first = new Map<string, number>()
const last = new Map<string, number>()
let latency = 0
let fresh = false
void (async () => {
  for await (const p of prices) {
    // Plotted as the change since the page first saw the symbol, so every symbol shows its moves.
    if (!first.has(p.symbol)) first.set(p.symbol, p.price)
    const base = first.get(p.symbol)!
    last.set(p.symbol, (p.price / base - 1) * 100)
    latency = Date.now() - p.at
    fresh = true
  }
})()

const WINDOW = 300 // points: 30 s at 10 per second
const xs: number[] = []
const ys: (number | null)[][] = SYMBOLS.map(() => [])
const chartEl = $('chart')
const COLORS = ['#5ab0ff', '#f5a623', '#7ed321', '#d0021b', '#bd10e0']
const plot = new uPlot(
  {
    width: chartEl.clientWidth || 600,
    height: 260,
    series: [
      {},
      ...SYMBOLS.map((s, i) => ({
        label: s,
        stroke: COLORS[i % COLORS.length]!,
        width: 1.5,
        points: { show: false },
      })),
    ],
    axes: [
      { stroke: '#8a96a3', grid: { stroke: '#2a3440' } },
      {
        stroke: '#8a96a3',
        grid: { stroke: '#2a3440' },
        size: 64,
        values: (_u: uPlot, ticks: number[]) => ticks.map((v) => `${v.toFixed(1)} %`),
      },
    ],
    scales: { x: { time: true } },
    legend: { live: false },
    cursor: { show: false },
  },
  [xs, ...ys] as uPlot.AlignedData,
  chartEl,
)
addEventListener('resize', () => plot.setSize({ width: chartEl.clientWidth, height: 260 }))

let lastStats = { at: performance.now(), datums: 0, bytes: 0 }
function renderStreamStats(now: number): void {
  const { datums, bytes: b } = prices.stats
  const dt = (now - lastStats.at) / 1000
  text('datum-count', datums)
  text('datums-per-sec', Math.round((datums - lastStats.datums) / dt))
  text('bytes-per-sec', bytes(Math.round((b - lastStats.bytes) / dt)))
  text('latency', datums > 0 ? `${latency} ms` : '–')
  lastStats = { at: now, datums, bytes: b }
}

function renderChart(): void {
  if (!fresh) return
  fresh = false
  xs.push(Date.now() / 1000)
  for (const [i, s] of SYMBOLS.entries()) ys[i]!.push(last.get(s) ?? null)
  if (xs.length > WINDOW) {
    xs.shift()
    for (const y of ys) y.shift()
  }
  plot.setData([xs, ...ys] as uPlot.AlignedData)
}

// ---- topology -----------------------------------------------------------------------------------------

const reported = new Map<string, Links>()
void (async () => {
  for await (const l of net.streams.consumer(LinksStream)) reported.set(l.peerId, l)
})()

const KIND_COLOR: Record<Link['kind'], string> = { direct: '#4caf50', relayed: '#ff9800', webrtc: '#2196f3' }
const cy = cytoscape({
  container: $('topology'),
  style: [
    {
      selector: 'node',
      style: {
        label: 'data(label)',
        color: '#d8dee6',
        'font-size': 11,
        'text-valign': 'bottom',
        'text-margin-y': 4,
        'background-color': 'data(color)',
        width: 22,
        height: 22,
      },
    },
    {
      selector: 'edge',
      style: {
        width: 2,
        'line-color': 'data(color)',
        'line-style': 'data(style)' as never,
        label: 'data(label)',
        color: '#8a96a3',
        'font-size': 9,
        'text-rotation': 'autorotate',
        'curve-style': 'bezier',
      },
    },
  ],
  layout: { name: 'preset' },
  userZoomingEnabled: false,
  maxZoom: 1.5,
})

interface Edge {
  a: string
  b: string
  kind: Link['kind']
  transport: string
  rtt: number | undefined
}

function edges(): Map<string, Edge> {
  const out = new Map<string, Edge>()
  const add = (from: string, l: Link) => {
    const [a, b] = from < l.peer ? [from, l.peer] : [l.peer, from]
    const key = `${a}|${b}`
    const prev = out.get(key)
    // Several connections between two peers: show the best one (WebRTC, then direct, then relayed).
    const rank = { webrtc: 0, direct: 1, relayed: 2 }
    if (!prev || rank[l.kind] < rank[prev.kind])
      out.set(key, { a, b, kind: l.kind, transport: l.transport, rtt: l.rtt })
  }
  const rtts = new Map(catalog.peers().map((p) => [p.id, p.rtt]))
  for (const c of net.libp2p.getConnections()) {
    const peer = c.remotePeer.toString()
    add(net.peerId, { peer, ...linkKind(c.remoteAddr.toString()), rtt: rtts.get(peer) })
  }
  for (const r of reported.values()) if (Date.now() - r.at < 5000) for (const l of r.links) add(r.peerId, l)
  return out
}

// RTT: discovery measures it when it pings; ping the peers this page is connected to now and then.
setInterval(() => {
  const connected = new Set(net.libp2p.getConnections().map((c) => c.remotePeer.toString()))
  for (const peer of connected)
    net.discovery.ping(peer, { signal: AbortSignal.timeout(2000) }).catch(() => {})
}, 3000)

function ownConnection(peer: string): string {
  const kinds = net.libp2p
    .getConnections()
    .filter((c) => c.remotePeer.toString() === peer)
    .map((c) => {
      const { kind, transport } = linkKind(c.remoteAddr.toString())
      return kind === 'direct'
        ? `direct (${transport})`
        : kind === 'relayed'
          ? `relayed (${transport})`
          : transport
    })
  return kinds.length ? [...new Set(kinds)].join(', ') : '–'
}

/** Places the relay first, then the nodes by name, then the dashboards. */
const order = (id: string) => {
  const name = nameOf(id)
  return name === 'relay' ? '0' : name.startsWith('node-') ? `1${name.padStart(10)}` : `2${name}`
}

function renderTopology(): void {
  catalog = net.discovery.catalog()
  const peers = catalog.peers()
  const ids = new Set([net.peerId, ...peers.map((p) => p.id)])
  const all = edges()
  const visible = [...all.values()].filter((e) => ids.has(e.a) && ids.has(e.b))
  let changed = false
  cy.batch(() => {
    for (const n of cy.nodes()) {
      if (ids.has(n.id())) continue
      n.remove()
      changed = true
    }
    for (const id of ids) {
      const peer = peers.find((p) => p.id === id)
      const tags = peer ? tagsOf(peer) : ['role:dashboard']
      const label = `${nameOf(id)}${peer?.rtt !== undefined ? ` ${peer.rtt.toFixed(1)} ms` : ''}`
      const color =
        id === net.peerId
          ? '#ffffff'
          : tags.includes('role:relay')
            ? '#b388ff'
            : tags.includes('role:dashboard')
              ? '#bbbbbb'
              : id === group.leader
                ? '#f5d000'
                : '#5ab0ff'
      const node = cy.getElementById(id)
      if (node.empty()) {
        cy.add({ group: 'nodes', data: { id, label, color } })
        changed = true
      } else node.data({ label, color })
    }
    const keys = new Set(visible.map((e) => `${e.a}|${e.b}`))
    for (const e of cy.edges()) if (!keys.has(e.id())) e.remove()
    for (const e of visible) {
      const id = `${e.a}|${e.b}`
      const data = {
        id,
        source: e.a,
        target: e.b,
        color: KIND_COLOR[e.kind],
        style: e.kind === 'relayed' ? 'dashed' : 'solid',
        label: `${e.transport}${e.rtt !== undefined ? ` ${e.rtt.toFixed(1)} ms` : ''}`,
      }
      const edge = cy.getElementById(id)
      if (edge.empty()) cy.add({ group: 'edges', data })
      else edge.data(data)
    }
  })
  // A circle: every connection is a chord, so none runs through a peer (the network is a full mesh).
  if (changed)
    cy.layout({
      name: 'circle',
      animate: false,
      fit: true,
      padding: 30,
      radius: 110,
      sort: (a, b) => order(a.id()).localeCompare(order(b.id())),
    }).run()
  text('peer-count', ids.size)
  text('link-count', visible.length)

  $('peers').innerHTML = peers
    .map(
      (p) =>
        `<tr data-testid="peer-row"><td title="${p.id}">${html(nameOf(p.id))} <span class="dim">${short(p.id)}</span></td>` +
        `<td>${html(tagsOf(p).join(' '))}</td><td>${p.rtt !== undefined ? `${p.rtt.toFixed(1)} ms` : '–'}</td>` +
        `<td>${html(ownConnection(p.id))}</td></tr>`,
    )
    .join('')
}

// ---- the group, as an observer ------------------------------------------------------------------------

const group = await net.groups.join({
  key: GroupKey.fromSecret(COUNTER_SECRET),
  stateMachine: new Counter(),
  preference: 'observer',
})

function renderGroup(): void {
  const s = group.status
  text('leader', s.leader ? `${nameOf(s.leader)} (${short(s.leader)})` : 'none (election under way)')
  text('term', s.term)
  // The index applied on this replica: for an online observer, the leader's commit index less at most
  // a round trip. (`status.commitIndex` is a snapshot refreshed only on role, term, leader or
  // membership changes, so it is not a live figure.)
  text('commit-index', group.applied)
  text('counter', group.stateMachine.value)
  text('voters', s.voters.map(nameOf).join(', ') || '–')
  text('learners', s.learners.map(nameOf).join(', ') || '–')
  text('group-self', `${s.role}, observer${s.online ? ', online' : ', offline'}`)
  ;($('kill-leader') as HTMLButtonElement).disabled = killing || !s.leader
}

let killing = false
$('kill-leader').addEventListener('click', async () => {
  const leader = group.leader
  if (!leader) return
  killing = true
  text('kill-status', `asking the start script to SIGKILL ${nameOf(leader)}…`)
  try {
    const res = await fetch('/api/kill-leader', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ peerId: leader }),
    })
    const body = (await res.json()) as { killed?: string; pid?: number; restartInMs?: number; error?: string }
    text(
      'kill-status',
      res.ok
        ? `killed ${body.killed} (pid ${body.pid}); it restarts in ${(body.restartInMs ?? 0) / 1000} s`
        : `refused: ${body.error}`,
    )
  } catch (err) {
    text('kill-status', `failed: ${(err as Error).message}`)
  } finally {
    killing = false
  }
})

// ---- collections, as readers --------------------------------------------------------------------------

const statusMap = collections.Map.reader<string, NodeStatus>(net, STATUS_MAP)
const jobs = collections.PriorityQueue.reader<number, string, Job>(net, JOBS_QUEUE)
let collectionsDirty = true
statusMap.on('updated', () => {
  collectionsDirty = true
})
jobs.on('updated', () => {
  collectionsDirty = true
})

function renderCollections(): void {
  text('map-version', statusMap.version)
  $('map-entries').innerHTML = [...statusMap.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(
      ([key, v]) =>
        `<tr data-testid="map-entry"><td>${html(key)}</td><td>${v.counter}</td><td>${v.beat}</td><td>${v.pid}</td>` +
        `<td>${html(v.tags.join(' '))}</td><td>${age(v.at)}</td></tr>`,
    )
    .join('')
  text('queue-version', jobs.version)
  text('queue-size', jobs.size)
  $('queue-entries').innerHTML = [...jobs.descending()]
    .slice(0, 12)
    .map(
      (e) =>
        `<tr data-testid="queue-entry"><td>${e.priority}</td><td>${html(e.key)}</td><td>${html(e.value.by)}</td>` +
        `<td>${age(e.value.at)}</td></tr>`,
    )
    .join('')
}

// ---- one render loop ----------------------------------------------------------------------------------

let lastChart = 0
let lastSecond = 0
let lastCollections = 0
function frame(now: number): void {
  if (now - lastChart >= 100) {
    lastChart = now
    renderChart()
    renderGroup()
  }
  if (now - lastSecond >= 1000) {
    lastSecond = now
    renderStreamStats(now)
    renderTopology()
    collectionsDirty = true // ages
  }
  if (collectionsDirty && now - lastCollections >= 200) {
    lastCollections = now
    collectionsDirty = false
    renderCollections()
  }
  requestAnimationFrame(frame)
}
requestAnimationFrame(frame)

/**
 * The relay's operations endpoint (node:http): `GET /healthz` (200 with a JSON summary while the node
 * serves, 503 once it stops) and `GET /metrics` (Prometheus text format 0.0.4).
 *
 * Gotchas: it binds 127.0.0.1 by default; expose it (`--http-host 0.0.0.0`) only where the scraper
 * needs it, since it tells anyone who asks how loaded the relay is.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Metric {
  name: string
  help: string
  type: 'gauge' | 'counter'
  samples: { labels?: Record<string, string>; value: number }[]
}

export interface HttpHandlers {
  /** Whether the relay serves, with a summary for the body. */
  health(): { ok: boolean; [field: string]: unknown }
  metrics(): Metric[]
}

export interface HttpEndpoint {
  readonly url: string
  close(): Promise<void>
}

export async function startHttp(host: string, port: number, handlers: HttpHandlers): Promise<HttpEndpoint> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    try {
      if (path === '/healthz') {
        const { ok, ...summary } = handlers.health()
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' })
        res.end(`${JSON.stringify({ status: ok ? 'ok' : 'unavailable', ...summary })}\n`)
      } else if (path === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
        res.end(renderMetrics(handlers.metrics()))
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz or /metrics\n')
      }
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`)
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/** Prometheus text exposition format. */
export function renderMetrics(metrics: Metric[]): string {
  const lines: string[] = []
  for (const m of metrics) {
    lines.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`)
    for (const s of m.samples) {
      const labels = Object.entries(s.labels ?? {})
        .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
        .join(',')
      lines.push(`${m.name}${labels ? `{${labels}}` : ''} ${Number.isFinite(s.value) ? s.value : 0}`)
    }
  }
  return `${lines.join('\n')}\n`
}

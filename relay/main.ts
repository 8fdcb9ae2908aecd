#!/usr/bin/env node
/**
 * `mosaik-relay`: runs a relay (see relay.ts) until SIGINT or SIGTERM, then announces its departure
 * and exits 0. Flags and MOSAIK_RELAY_* variables: `--help` (config.ts). Exit codes: 0 after a clean
 * shutdown, 1 when it cannot start or stop, 2 for a bad flag.
 */
import { HELP, parseConfig, RelayConfigError } from './config.ts'
import { jsonLog } from './log.ts'
import type { Relay } from './relay.ts'

const SHUTDOWN_TIMEOUT_MS = 10_000

async function main(): Promise<void> {
  let config: ReturnType<typeof parseConfig>
  try {
    config = parseConfig(process.argv.slice(2), process.env)
  } catch (err) {
    if (!(err instanceof RelayConfigError)) throw err
    process.stderr.write(`mosaik-relay: ${err.message}\n`)
    process.exit(2)
  }
  if (config === 'help') {
    process.stdout.write(HELP)
    return
  }
  const log = jsonLog(config.logLevel)
  // Process warnings (such as QUIC being unavailable) go into the JSON log, not in Node's own format.
  process.removeAllListeners('warning')
  process.on('warning', (w) => log.warn(w.message, { code: (w as { code?: string }).code, warning: w.name }))
  let relay: Relay | undefined
  let stopping = false
  const stop = () => {
    if (!relay) return // still starting: stopped as soon as it is up
    const timer = setTimeout(() => {
      log.error('shutdown timed out', { timeoutMs: SHUTDOWN_TIMEOUT_MS })
      process.exit(1)
    }, SHUTDOWN_TIMEOUT_MS)
    relay.close().then(
      () => {
        clearTimeout(timer)
        log.info('stopped')
        process.exit(0)
      },
      (err: unknown) => {
        log.error('shutdown failed', { error: err })
        process.exit(1)
      },
    )
  }
  const onSignal = (signal: string) => {
    if (stopping) {
      log.warn('second signal: exiting without a clean shutdown', { signal })
      process.exit(1)
    }
    stopping = true
    log.info('shutting down', { signal })
    stop()
  }
  process.on('SIGINT', () => onSignal('SIGINT'))
  process.on('SIGTERM', () => onSignal('SIGTERM'))

  try {
    // Loaded only now, so that --help and flag errors answer at once.
    const { startRelay } = await import('./relay.ts')
    relay = await startRelay(config, log)
  } catch (err) {
    log.error('cannot start', { error: err })
    process.exit(1)
  }
  if (stopping) {
    stop()
    return
  }

  log.info('ready', {
    peerId: relay.peerId,
    network: config.network,
    addresses: relay.addresses,
    browserAddresses: relay.browserAddresses,
    http: relay.httpUrl,
    limits: config.limits,
  })
  const lines = [
    `mosaik-relay ${relay.peerId} serving network '${config.network}'`,
    'peers bootstrap from:',
    ...relay.addresses.map((a) => `  ${a}`),
    'browsers dial:',
    ...(relay.browserAddresses.length > 0
      ? relay.browserAddresses.map((a) => `  ${a}`)
      : ['  (none: listen on /ws or /webrtc-direct)']),
  ]
  if (relay.httpUrl) lines.push(`health and metrics: ${relay.httpUrl}/healthz ${relay.httpUrl}/metrics`)
  process.stdout.write(`${lines.join('\n')}\n`)
}

await main()

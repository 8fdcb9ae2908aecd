#!/usr/bin/env node
/**
 * `mosaik-relay`: runs a relay (see relay.ts) until SIGINT or SIGTERM, then announces its departure
 * and exits 0. Flags and MOSAIK_RELAY_* variables: `--help` (config.ts). Exit codes: 0 after a clean
 * shutdown, 1 when it cannot start or stop, 2 for a bad flag.
 */
import { HELP, parseConfig, type RelayConfig, RelayConfigError } from './config.ts'
import { jsonLog, type Log } from './log.ts'
import type { Relay } from './relay.ts'

const SHUTDOWN_TIMEOUT_MS = 10_000

async function main(): Promise<void> {
  const config = configOrExit()
  if (config === 'help') {
    process.stdout.write(HELP)
    return
  }
  const log = jsonLog(config.logLevel)
  logProcessWarnings(log)
  const signals = stopOnSignals(log)
  const relay = await startOrExit(config, log)
  if (!signals.started(relay)) return
  announceReady(relay, config, log)
}

/** The configuration or 'help'; a bad flag is printed to stderr and exits 2. */
function configOrExit(): RelayConfig | 'help' {
  try {
    return parseConfig(process.argv.slice(2), process.env)
  } catch (err) {
    if (!(err instanceof RelayConfigError)) throw err
    process.stderr.write(`mosaik-relay: ${err.message}\n`)
    process.exit(2)
  }
}

/** Process warnings (such as QUIC being unavailable) go into the JSON log, not in Node's own format. */
function logProcessWarnings(log: Log): void {
  process.removeAllListeners('warning')
  process.on('warning', (w) => log.warn(w.message, { code: (w as { code?: string }).code, warning: w.name }))
}

/**
 * SIGINT or SIGTERM stops the relay; one that comes while it is still starting stops it as soon as
 * it is up. A second signal exits at once, without a clean shutdown.
 */
function stopOnSignals(log: Log): { started(relay: Relay): boolean } {
  let relay: Relay | undefined
  let stopping = false
  const onSignal = (signal: string) => {
    if (stopping) {
      log.warn('second signal: exiting without a clean shutdown', { signal })
      process.exit(1)
    }
    stopping = true
    log.info('shutting down', { signal })
    if (relay) stop(relay, log)
  }
  process.on('SIGINT', () => onSignal('SIGINT'))
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  return {
    /** Hands over the started relay; false if a signal came meanwhile (the relay is stopping now). */
    started(running) {
      relay = running
      if (stopping) stop(relay, log)
      return !stopping
    },
  }
}

/** Closes the relay and exits: 0 once it is closed, 1 if closing fails or outlasts the timeout. */
function stop(relay: Relay, log: Log): void {
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

/** The running relay; a failure to start is logged and exits 1. */
async function startOrExit(config: RelayConfig, log: Log): Promise<Relay> {
  try {
    // Loaded only now, so that --help and flag errors answer at once.
    const { startRelay } = await import('./relay.ts')
    return await startRelay(config, log)
  } catch (err) {
    log.error('cannot start', { error: err })
    process.exit(1)
  }
}

/** The `ready` log line (what tests wait for), then a summary for a human on stdout. */
function announceReady(relay: Relay, config: RelayConfig, log: Log): void {
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

/**
 * The relay's configuration: command-line flags, each with a `MOSAIK_RELAY_*` environment variable
 * (flags win), parsed into a `RelayConfig`. `HELP` is what `--help` prints.
 */
import { MosaikError } from '../src/primitives/errors.ts'

/** A flag or environment variable the relay cannot use; the CLI prints it and exits 2. */
export class RelayConfigError extends MosaikError {
  constructor(message: string) {
    super('RELAY_CONFIG', message)
  }
}

export interface RelayConfig {
  /** The mosaik network the relay serves (name or 64-hex id). */
  network: string
  /** Listen multiaddrs; `/quic-v1` ones are dropped (with a warning) where QUIC is unavailable. */
  listen: string[]
  /** Peers to join through (other relays), with `/p2p/<id>`. */
  bootstrap: string[]
  /** Discovery tags; `role:relay` is always added. */
  tags: string[]
  /** The Ed25519 identity key file, created (mode 0600) on first run. */
  identityFile: string
  /** The WebRTC-direct certificate file (mode 0600), so the certhash survives restarts. */
  certificateFile: string
  /** Addresses advertised instead of the listen addresses (public ones behind NAT, a TLS proxy's). */
  announce: string[]
  /** HTTP endpoint for /healthz and /metrics; port 0 picks a free one, `httpPort: undefined` = off. */
  httpHost: string
  httpPort: number | undefined
  limits: RelayLimits
  logLevel: LogLevel
}

/** The caps; see README "Relay" for which ones libp2p enforces and which the relay enforces. */
export interface RelayLimits {
  /** Reservations held at once (libp2p: further RESERVE requests are refused). */
  maxReservations: number
  /** Seconds a reservation lasts before the peer must refresh it (libp2p). */
  reservationTtlSeconds: number
  /** Open connections, all transports (libp2p's connection manager prunes beyond it). */
  maxConnections: number
  /** Inbound connections from one IP (or IPv6 /64), loopback exempt (mosaik's connection gater). */
  maxConnectionsPerHost: number
  /** Relayed connections open at once, across all peers (the relay's gater refuses more). */
  maxCircuits: number
  /** Relayed connections one peer may open, or be reached by, at once (libp2p per-connection stream caps). */
  maxCircuitsPerPeer: number
  /** Seconds one relayed connection may live; 0 = no limit (libp2p cuts it). */
  circuitDurationSeconds: number
  /** Bytes one relayed connection may carry; 0 = no limit (libp2p cuts it). */
  circuitDataBytes: number
  /** Relayed bytes per second summed over every relayed connection; 0 = no limit (the relay pauses reads). */
  maxBytesPerSecond: number
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

export const DEFAULT_LISTEN = [
  '/ip4/0.0.0.0/udp/4001/quic-v1',
  '/ip4/0.0.0.0/tcp/4001',
  '/ip4/0.0.0.0/tcp/4002/ws',
  '/ip4/0.0.0.0/udp/4003/webrtc-direct',
]

export const DEFAULT_LIMITS: RelayLimits = {
  maxReservations: 1024,
  reservationTtlSeconds: 2 * 60 * 60,
  maxConnections: 2048,
  maxConnectionsPerHost: 32,
  maxCircuits: 1024,
  maxCircuitsPerPeer: 256,
  circuitDurationSeconds: 0,
  circuitDataBytes: 0,
  maxBytesPerSecond: 0,
}

export const HELP = `mosaik-relay: a circuit-relay-v2 server and bootstrap peer of a mosaik network

Usage: mosaik-relay --network <name> [options]
       npx node relay/main.ts --network <name> [options]     (from a checkout)

Every flag has an environment variable (flags win). Lists take repeated flags or commas.

  --network <name>               MOSAIK_RELAY_NETWORK        network name or 64-hex id (required)
  --listen <multiaddr>           MOSAIK_RELAY_LISTEN         listen addresses (default:
                                   ${DEFAULT_LISTEN.join('\n                                   ')})
                                   QUIC addresses are dropped where QUIC is unavailable
  --bootstrap <multiaddr>        MOSAIK_RELAY_BOOTSTRAP      peers to join through (e.g. other relays)
  --tag <tag>                    MOSAIK_RELAY_TAGS           extra discovery tags (role:relay is always set)
  --identity <file>              MOSAIK_RELAY_IDENTITY       Ed25519 key file, created with mode 0600 on
                                                             first run (default ./mosaik-relay.key)
  --webrtc-certificate <file>    MOSAIK_RELAY_WEBRTC_CERTIFICATE  WebRTC-direct certificate, created on first
                                                             run and kept a year, so the /certhash/ of the
                                                             address stays (default <identity>.webrtc.pem)
  --announce <multiaddr>         MOSAIK_RELAY_ANNOUNCE       advertise these instead of the listen addresses
                                                             (e.g. /dns4/relay.example.com/tcp/443/wss
                                                             behind a TLS proxy, or a public IP behind NAT)
  --http-port <port|off>         MOSAIK_RELAY_HTTP_PORT      /healthz and /metrics (default 9464; 0 = any free)
  --http-host <host>             MOSAIK_RELAY_HTTP_HOST      (default 127.0.0.1)
  --log-level <level>            MOSAIK_RELAY_LOG_LEVEL      debug | info | warn | error (default info)

Limits (0 = no limit where noted):
  --max-reservations <n>         MOSAIK_RELAY_MAX_RESERVATIONS         (default ${DEFAULT_LIMITS.maxReservations})
  --reservation-ttl <seconds>    MOSAIK_RELAY_RESERVATION_TTL          (default ${DEFAULT_LIMITS.reservationTtlSeconds})
  --max-connections <n>          MOSAIK_RELAY_MAX_CONNECTIONS          (default ${DEFAULT_LIMITS.maxConnections})
  --max-connections-per-host <n> MOSAIK_RELAY_MAX_CONNECTIONS_PER_HOST (default ${DEFAULT_LIMITS.maxConnectionsPerHost})
  --max-circuits <n>             MOSAIK_RELAY_MAX_CIRCUITS             relayed connections at once, 0 = none (default ${DEFAULT_LIMITS.maxCircuits})
  --max-circuits-per-peer <n>    MOSAIK_RELAY_MAX_CIRCUITS_PER_PEER    (default ${DEFAULT_LIMITS.maxCircuitsPerPeer})
  --circuit-duration <seconds>   MOSAIK_RELAY_CIRCUIT_DURATION         per relayed connection, 0 = none (default 0)
  --circuit-data <bytes>         MOSAIK_RELAY_CIRCUIT_DATA             per relayed connection, 0 = none (default 0)
  --max-bytes-per-second <n>     MOSAIK_RELAY_MAX_BYTES_PER_SECOND     all relayed traffic, 0 = none (default 0)

  -h, --help                     this text

README.md ("Relay") says which limits libp2p enforces and which the relay itself enforces.

On start it logs (JSON, stderr) and prints (stdout) its peer id and the addresses peers bootstrap
from and browsers dial (/ws, /wss and /webrtc-direct ones). SIGINT or SIGTERM announces its departure
to the network and exits 0.
`

interface FlagSpec {
  env: string
  list?: boolean
}

const FLAGS: Record<string, FlagSpec> = {
  network: { env: 'NETWORK' },
  listen: { env: 'LISTEN', list: true },
  bootstrap: { env: 'BOOTSTRAP', list: true },
  tag: { env: 'TAGS', list: true },
  identity: { env: 'IDENTITY' },
  'webrtc-certificate': { env: 'WEBRTC_CERTIFICATE' },
  announce: { env: 'ANNOUNCE', list: true },
  'http-port': { env: 'HTTP_PORT' },
  'http-host': { env: 'HTTP_HOST' },
  'log-level': { env: 'LOG_LEVEL' },
  'max-reservations': { env: 'MAX_RESERVATIONS' },
  'reservation-ttl': { env: 'RESERVATION_TTL' },
  'max-connections': { env: 'MAX_CONNECTIONS' },
  'max-connections-per-host': { env: 'MAX_CONNECTIONS_PER_HOST' },
  'max-circuits': { env: 'MAX_CIRCUITS' },
  'max-circuits-per-peer': { env: 'MAX_CIRCUITS_PER_PEER' },
  'circuit-duration': { env: 'CIRCUIT_DURATION' },
  'circuit-data': { env: 'CIRCUIT_DATA' },
  'max-bytes-per-second': { env: 'MAX_BYTES_PER_SECOND' },
}

/** `'help'` when --help was asked for; otherwise the configuration, or a RelayConfigError. */
export function parseConfig(argv: string[], env: Record<string, string | undefined>): RelayConfig | 'help' {
  const given = parseArgv(argv)
  if (given === 'help') return 'help'
  const flags = new Flags(given, env)
  // Validated in this order: of several bad flags, the first one here is the one reported.
  const network = flags.one('network')
  if (!network) throw new RelayConfigError('--network (or MOSAIK_RELAY_NETWORK) is required')
  const logLevel = logLevelOf(flags)
  const httpPort = httpPortOf(flags)
  const limits = limitsOf(flags)
  const identityFile = flags.one('identity') ?? 'mosaik-relay.key'
  return {
    network,
    listen: flags.values('listen') ?? DEFAULT_LISTEN,
    bootstrap: flags.values('bootstrap') ?? [],
    tags: [...new Set(['role:relay', ...(flags.values('tag') ?? [])])],
    identityFile,
    certificateFile: flags.one('webrtc-certificate') ?? `${identityFile.replace(/\.key$/, '')}.webrtc.pem`,
    announce: flags.values('announce') ?? [],
    httpHost: flags.one('http-host') ?? '127.0.0.1',
    httpPort,
    limits,
    logLevel,
  }
}

/** Each flag on the command line with its values in order; 'help' as soon as -h or --help comes. */
function parseArgv(argv: string[]): Map<string, string[]> | 'help' {
  const given = new Map<string, string[]>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '-h' || arg === '--help') return 'help'
    if (!arg.startsWith('--')) throw new RelayConfigError(`unexpected argument '${arg}' (see --help)`)
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq < 0 ? undefined : eq)
    if (!FLAGS[name]) throw new RelayConfigError(`unknown flag --${name} (see --help)`)
    // `--flag=value`, or `--flag value` (the next argument is the value, even if it starts with --).
    const value = eq < 0 ? argv[++i] : arg.slice(eq + 1)
    if (value === undefined) throw new RelayConfigError(`--${name} needs a value`)
    const values = given.get(name) ?? []
    values.push(value)
    given.set(name, values)
  }
  return given
}

/** The value of each flag: from the command line, else from its environment variable. */
class Flags {
  readonly #given: Map<string, string[]>
  readonly #env: Record<string, string | undefined>

  constructor(given: Map<string, string[]>, env: Record<string, string | undefined>) {
    this.#given = given
    this.#env = env
  }

  /** A list flag's values (repeated flags and commas both add), or a single flag's last value. */
  values(name: string): string[] | undefined {
    const spec = FLAGS[name]!
    const fromEnv = this.#env[`MOSAIK_RELAY_${spec.env}`]
    // An empty variable counts as unset.
    const raw = this.#given.get(name) ?? (fromEnv ? [fromEnv] : undefined)
    if (!raw) return undefined
    return spec.list
      ? raw
          .flatMap((v) => v.split(','))
          .map((v) => v.trim())
          .filter(Boolean)
      : [raw[raw.length - 1]!.trim()]
  }

  one(name: string): string | undefined {
    return this.values(name)?.[0]
  }

  /** A whole number ≥ 0, or `fallback` when the flag is not set. */
  count(name: string, fallback: number): number {
    const raw = this.one(name)
    if (raw === undefined) return fallback
    const n = Number(raw)
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RelayConfigError(`--${name} must be a whole number ≥ 0, got '${raw}'`)
    }
    return n
  }
}

function logLevelOf(flags: Flags): LogLevel {
  const logLevel = (flags.one('log-level') ?? 'info') as LogLevel
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    throw new RelayConfigError(`--log-level must be debug, info, warn or error, got '${logLevel}'`)
  }
  return logLevel
}

/** The HTTP port, or undefined for `off`. */
function httpPortOf(flags: Flags): number | undefined {
  const httpRaw = flags.one('http-port') ?? '9464'
  const httpPort = httpRaw === 'off' ? undefined : flags.count('http-port', 9464)
  if (httpPort !== undefined && httpPort > 65535) throw new RelayConfigError('--http-port must be ≤ 65535')
  return httpPort
}

function limitsOf(flags: Flags): RelayLimits {
  const limits: RelayLimits = {
    maxReservations: flags.count('max-reservations', DEFAULT_LIMITS.maxReservations),
    reservationTtlSeconds: flags.count('reservation-ttl', DEFAULT_LIMITS.reservationTtlSeconds),
    maxConnections: flags.count('max-connections', DEFAULT_LIMITS.maxConnections),
    maxConnectionsPerHost: flags.count('max-connections-per-host', DEFAULT_LIMITS.maxConnectionsPerHost),
    maxCircuits: flags.count('max-circuits', DEFAULT_LIMITS.maxCircuits),
    maxCircuitsPerPeer: flags.count('max-circuits-per-peer', DEFAULT_LIMITS.maxCircuitsPerPeer),
    circuitDurationSeconds: flags.count('circuit-duration', DEFAULT_LIMITS.circuitDurationSeconds),
    circuitDataBytes: flags.count('circuit-data', DEFAULT_LIMITS.circuitDataBytes),
    maxBytesPerSecond: flags.count('max-bytes-per-second', DEFAULT_LIMITS.maxBytesPerSecond),
  }
  checkLimits(limits)
  return limits
}

/** At 0 these would leave the relay unable to serve (no reservation, connection or circuit at all). */
function checkLimits(limits: RelayLimits): void {
  for (const name of [
    'maxReservations',
    'reservationTtlSeconds',
    'maxConnections',
    'maxCircuitsPerPeer',
  ] as const) {
    if (limits[name] === 0) throw new RelayConfigError(`${name} must be at least 1`)
  }
  // libp2p sends the duration in a uint32 of milliseconds.
  if (limits.circuitDurationSeconds * 1000 > 0xffffffff) {
    throw new RelayConfigError('--circuit-duration must be below 4294967 seconds (49 days)')
  }
}

/**
 * Linux network namespaces for multi-process tests with real partitions: a "switch" namespace holds a
 * bridge, and every host namespace has one veth into it with its own address on a private /24. Pulling
 * a host's cable is `ip link set <port> down` on the bridge side; nothing in the root namespace is
 * touched (the veth pairs are created inside the switch namespace and their host ends moved at once).
 *
 * Needs root and iproute2. `netnsUnavailable()` says why they cannot be used here, so a test can skip
 * with a reason instead of passing silently. Every namespace carries the creating process's pid in its
 * name; `Switch.create` deletes leftovers of processes that no longer exist (a run killed with
 * SIGKILL), and namespaces still alive are deleted on exit, SIGINT and SIGTERM.
 */
import { execFile, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'

const run = promisify(execFile)
const PREFIX = 'mtn-'

async function ip(...args: string[]): Promise<string> {
  try {
    return (await run('ip', args, { timeout: 10_000 })).stdout
  } catch (err) {
    const e = err as Error & { stderr?: string }
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`)
  }
}

/** Why network namespaces cannot be used on this machine, or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'network namespaces need root (ip netns add)'
  try {
    await run('ip', ['-V'])
  } catch {
    return 'iproute2 (`ip`) is not installed'
  }
  const probe = `${PREFIX}${process.pid}-probe-${randomBytes(3).toString('hex')}`
  try {
    await ip('netns', 'add', probe)
  } catch (err) {
    return `ip netns add failed: ${(err as Error).message}`
  }
  try {
    await ip('-n', probe, 'link', 'add', 'br0', 'type', 'bridge')
    await ip('-n', probe, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1')
    await ip('-n', probe, 'link', 'set', 'lo', 'up')
  } catch (err) {
    return `bridges or veth pairs are not available in a namespace: ${(err as Error).message}`
  } finally {
    await ip('netns', 'del', probe).catch(() => {})
  }
  return undefined
}

/** A free private /24 (its first three octets): one not used by any address or route of the root namespace. */
export async function freeSubnet(
  candidates = ['10.213.7', '10.213.77', '10.219.41', '172.31.213'],
): Promise<string> {
  const used = `${await ip('-4', '-o', 'addr', 'show')}\n${await ip('-4', 'route', 'show', 'table', 'all')}`
  const free = candidates.find((c) => !used.includes(`${c}.`))
  if (free === undefined) throw new Error(`every candidate subnet is in use: ${candidates.join(', ')}`)
  return free
}

const alive = new Set<string>()
let hooked = false

/** Deletes our namespaces synchronously, with one `ip` process (for the exit handler). */
function deleteAliveSync(): void {
  if (alive.size === 0) return
  const batch = [...alive].map((ns) => `netns del ${ns}`).join('\n')
  alive.clear()
  try {
    execFileSync('ip', ['-force', '-batch', '-'], {
      input: batch,
      stdio: ['pipe', 'ignore', 'ignore'],
      timeout: 10_000,
    })
  } catch {}
}

/**
 * Deletes our namespaces from a detached process, which finishes even if this one is killed right
 * after the signal (a test runner stopping its workers).
 */
function deleteAliveDetached(): void {
  if (alive.size === 0) return
  const script = [...alive].map((ns) => `ip netns del ${ns}`).join('; ')
  alive.clear()
  try {
    spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' }).unref()
  } catch {}
}

/** Sync cleanups that run on exit, SIGINT and SIGTERM before the namespaces are deleted (kill children). */
const emergency = new Set<() => void>()

export function onEmergency(fn: () => void): () => void {
  emergency.add(fn)
  return () => emergency.delete(fn)
}

function hook(): void {
  if (hooked) return
  hooked = true
  const killChildren = () => {
    for (const fn of emergency) {
      try {
        fn()
      } catch {}
    }
  }
  process.on('exit', () => {
    killChildren()
    deleteAliveSync()
  })
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killChildren()
      deleteAliveDetached()
      process.kill(process.pid, signal)
    })
  }
}

/** Deletes namespaces left by processes that no longer exist (runs killed before they could clean up). */
async function sweepStale(): Promise<void> {
  const list = await ip('netns', 'list').catch(() => '')
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? ''
    const m = /^mtn-(\d+)-/.exec(name)
    if (!m) continue
    const pid = Number(m[1])
    if (pid === process.pid) continue
    try {
      process.kill(pid, 0)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') await ip('netns', 'del', name).catch(() => {})
    }
  }
}

export interface Host {
  /** 1-based. */
  index: number
  ns: string
  ip: string
  /** The bridge-side end of the host's veth (in the switch namespace). */
  port: string
  /** The command prefix that runs a program inside the host's namespace. */
  exec: string[]
}

/** A bridge in its own namespace and `n` hosts plugged into it. */
export class Switch {
  readonly ns: string
  readonly subnet: string
  readonly hosts: Host[]
  #closed = false

  private constructor(ns: string, subnet: string, hosts: Host[]) {
    this.ns = ns
    this.subnet = subnet
    this.hosts = hosts
  }

  static async create(n: number, subnet?: string): Promise<Switch> {
    hook()
    await sweepStale()
    const net = subnet ?? (await freeSubnet())
    const tag = `${PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`
    const ns = `${tag}-sw`
    const hosts: Host[] = Array.from({ length: n }, (_, i) => ({
      index: i + 1,
      ns: `${tag}-h${i + 1}`,
      ip: `${net}.${i + 1}`,
      port: `p${i + 1}`,
      exec: ['ip', 'netns', 'exec', `${tag}-h${i + 1}`],
    }))
    const sw = new Switch(ns, net, hosts)
    try {
      await ip('netns', 'add', ns)
      alive.add(ns)
      await ip('-n', ns, 'link', 'set', 'lo', 'up')
      await ip('-n', ns, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0')
      await ip('-n', ns, 'link', 'set', 'br0', 'up')
      for (const h of hosts) {
        await ip('netns', 'add', h.ns)
        alive.add(h.ns)
        await ip('-n', h.ns, 'link', 'set', 'lo', 'up')
        await ip('-n', ns, 'link', 'add', h.port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns)
        await ip('-n', ns, 'link', 'set', h.port, 'master', 'br0')
        await ip('-n', ns, 'link', 'set', h.port, 'up')
        await ip('-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0')
        await ip('-n', h.ns, 'link', 'set', 'eth0', 'up')
      }
    } catch (err) {
      await sw.close()
      throw err
    }
    return sw
  }

  /** Pulls the host's cable at the switch: its port goes down, nothing crosses until `plug`. */
  async unplug(host: Host): Promise<void> {
    await ip('-n', this.ns, 'link', 'set', host.port, 'down')
  }

  async plug(host: Host): Promise<void> {
    await ip('-n', this.ns, 'link', 'set', host.port, 'up')
  }

  /** Deletes every namespace (which removes the veths and the bridge). Kill the processes inside first. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const name of [this.ns, ...this.hosts.map((h) => h.ns)]) {
      if (!alive.has(name)) continue
      await ip('netns', 'del', name).catch(() => {})
      alive.delete(name)
    }
  }
}

/**
 * The relay binary in a child process, for tests: started from its source (`node relay/main.ts`),
 * ready once its structured log says so, with its stdout, log lines and exit code at hand.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const RELAY_MAIN = fileURLToPath(new URL('../../relay/main.ts', import.meta.url))

/** Every listen transport, loopback only, on free ports. */
export const LOOPBACK_LISTEN = [
  '/ip4/127.0.0.1/udp/0/quic-v1',
  '/ip4/127.0.0.1/tcp/0',
  '/ip4/127.0.0.1/tcp/0/ws',
  '/ip4/127.0.0.1/udp/0/webrtc-direct',
].join(',')

export interface LogLine {
  level: string
  msg: string
  [field: string]: unknown
}

const started = new Set<ChildProcess>()

/** Runs the binary to completion (for --help and bad flags). */
export function runRelay(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [RELAY_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  started.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => {
    stdout += d
  })
  child.stderr.on('data', (d) => {
    stderr += d
  })
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })))
}

export class RelayProcess {
  readonly child: ChildProcess
  readonly logs: LogLine[] = []
  readonly exited: Promise<number | null>
  stdout = ''
  #ready: LogLine | undefined

  private constructor(child: ChildProcess) {
    this.child = child
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  }

  /**
   * Starts the relay and resolves once it logged `ready`; rejects if it exits first, or kills it and
   * rejects when it is not ready within `readyMs` (so a relay that never gets ready is not left behind).
   */
  static start(args: string[], env: Record<string, string> = {}, readyMs = 60_000): Promise<RelayProcess> {
    const child = spawn(process.execPath, [RELAY_MAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    })
    started.add(child)
    const relay = new RelayProcess(child)
    child.stdout!.on('data', (d) => {
      relay.stdout += d
    })
    return new Promise((resolve, reject) => {
      createInterface({ input: child.stderr! }).on('line', (line) => {
        let entry: LogLine
        try {
          entry = JSON.parse(line)
        } catch {
          return // a process warning, not a log line
        }
        relay.logs.push(entry)
        if (entry.msg === 'ready') {
          clearTimeout(timer)
          relay.#ready = entry
          resolve(relay)
        }
      })
      void relay.exited.then((code) =>
        reject(new Error(`relay exited with ${code} before ready: ${JSON.stringify(relay.logs)}`)),
      )
      const timer = setTimeout(() => {
        if (relay.#ready) return
        child.kill('SIGKILL')
        reject(new Error(`relay not ready within ${readyMs} ms: ${JSON.stringify(relay.logs)}`))
      }, readyMs)
      void relay.exited.then(() => clearTimeout(timer))
    })
  }

  get peerId(): string {
    return this.#ready!.peerId as string
  }

  get addresses(): string[] {
    return this.#ready!.addresses as string[]
  }

  get browserAddresses(): string[] {
    return this.#ready!.browserAddresses as string[]
  }

  get http(): string {
    return this.#ready!.http as string
  }

  /** The address on `transport` ('tcp', 'ws', 'quic-v1', 'webrtc-direct'). */
  address(transport: string): string {
    const match = this.addresses.find((a) => {
      const parts = a.split('/')
      return transport === 'tcp' ? parts[3] === 'tcp' && parts[5] === 'p2p' : parts.includes(transport)
    })
    if (!match) throw new Error(`relay has no ${transport} address: ${this.addresses}`)
    return match
  }

  /**
   * Resolves once stdout holds `text`. The relay prints its summary to stdout just after its `ready`
   * log line on stderr, and the two pipes deliver in no set order; rejects if it exits first.
   */
  printed(text: string): Promise<void> {
    const out = this.child.stdout!
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!this.stdout.includes(text)) return
        out.off('data', check)
        resolve()
      }
      out.on('data', check)
      check()
      void this.exited.then(() => {
        out.off('data', check)
        if (!this.stdout.includes(text)) reject(new Error(`relay exited without printing ${text}`))
      })
    })
  }

  /** SIGTERM, then the exit code. */
  async terminate(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM')
    return this.exited
  }
}

/** Kills every process these helpers started that is still running. */
export function killAll(): void {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  started.clear()
}

import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const scripts = {
  node: fileURLToPath(new URL('./node-process.ts', import.meta.url)),
  group: fileURLToPath(new URL('./group-process.ts', import.meta.url)),
  streams: fileURLToPath(new URL('./streams-process.ts', import.meta.url)),
  register: fileURLToPath(new URL('./register-process.ts', import.meta.url)),
  // A relay-reachable peer for the browser tests.
  browserPeer: fileURLToPath(new URL('../../e2e/support/peer-process.ts', import.meta.url)),
}

/** How to launch the child: `prefix` goes before the node binary (e.g. `ip netns exec <ns>`). */
export interface Launch {
  prefix?: string[]
}

/** A node running in a child process; commands go over stdin, replies come back as JSON lines. */
export class NodeProcess {
  readonly peerId: string
  readonly addresses: string[]
  readonly child: ChildProcess
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  readonly exited: Promise<number | null>
  #nextId = 1

  private constructor(child: ChildProcess, ready: { peerId: string; addresses: string[] }) {
    this.child = child
    this.peerId = ready.peerId
    this.addresses = ready.addresses
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  }

  static async start(
    options: Record<string, unknown>,
    timeoutMs = 20_000,
    kind: keyof typeof scripts = 'node',
    launch: Launch = {},
  ): Promise<NodeProcess> {
    const [command, ...args] = [
      ...(launch.prefix ?? []),
      process.execPath,
      scripts[kind],
      JSON.stringify(options),
    ]
    const child = spawn(command!, args, {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    const lines = createInterface({ input: child.stdout! })
    let proc: NodeProcess | undefined
    const ready = new Promise<NodeProcess>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error('child node did not start'))
      }, timeoutMs)
      child.once('exit', (code) => reject(new Error(`child node exited with ${code} before ready`)))
      lines.on('line', (line) => {
        let msg: {
          event?: string
          id?: number
          result?: unknown
          error?: string
          peerId?: string
          addresses?: string[]
        }
        try {
          msg = JSON.parse(line)
        } catch {
          return
        }
        if (msg.event === 'ready') {
          clearTimeout(timer)
          proc = new NodeProcess(child, { peerId: msg.peerId!, addresses: msg.addresses! })
          resolve(proc)
        } else if (msg.id !== undefined && proc) {
          const p = proc.#pending.get(msg.id)
          proc.#pending.delete(msg.id)
          if (msg.error) p?.reject(new Error(msg.error))
          else p?.resolve(msg.result)
        }
      })
    })
    return ready
  }

  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.child.stdin!.write(`${JSON.stringify({ id, cmd, ...args })}\n`)
    })
  }

  /** Graceful stop: the node announces its departure. */
  async terminate(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGTERM')
    await this.exited
  }

  /** A crash: no departure, no cleanup. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGKILL')
    await this.exited
  }
}

/**
 * The test side of a chaos member (member.ts) in its own OS process. Unlike tests/support/processes.ts,
 * a call in flight when the process dies rejects with `ProcessDiedError` (its outcome is unknown), and
 * the child's stderr is kept (its last lines) for the failure report instead of flooding the output.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const script = fileURLToPath(new URL('./member.ts', import.meta.url))

/** The process ended (SIGKILL, crash) before answering: the call may or may not have taken effect. */
export class ProcessDiedError extends Error {
  override name = 'ProcessDiedError'
}

/** Every live child of this test process, killed on exit whatever happens to the test. */
const live = new Set<ChildProcess>()
let hooked = false
function hookExit(): void {
  if (hooked) return
  hooked = true
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL')
  })
}

export class MemberProcess {
  readonly child: ChildProcess
  readonly exited: Promise<void>
  peerId = ''
  addresses: string[] = []
  /** The last lines the child wrote to stderr. */
  readonly stderr: string[] = []
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  #nextId = 1
  #dead = false
  #killed = false

  private constructor(child: ChildProcess) {
    this.child = child
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        this.#dead = true
        live.delete(child)
        for (const p of this.#pending.values()) p.reject(new ProcessDiedError('member process exited'))
        this.#pending.clear()
        resolve()
      }),
    )
  }

  /** Spawns a member; `ready` resolves once it has joined its group and Map (or rejects if it dies). */
  static spawn(options: Record<string, unknown>): { proc: MemberProcess; ready: Promise<MemberProcess> } {
    hookExit()
    const child = spawn(process.execPath, [script, JSON.stringify(options)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    live.add(child)
    const proc = new MemberProcess(child)
    child.stdin!.on('error', () => {}) // writes to a killed child fail: its calls reject on exit
    createInterface({ input: child.stderr! }).on('line', (line) => {
      proc.stderr.push(line)
      if (proc.stderr.length > 40) proc.stderr.shift()
    })
    const ready = new Promise<MemberProcess>((resolve, reject) => {
      void proc.exited.then(() => reject(new ProcessDiedError('member process exited before ready')))
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let msg: { event?: string; id?: number; result?: unknown; error?: string } & Record<string, unknown>
        try {
          msg = JSON.parse(line)
        } catch {
          return
        }
        if (msg.event === 'ready') {
          proc.peerId = String(msg.peerId)
          proc.addresses = msg.addresses as string[]
          resolve(proc)
        } else if (msg.id !== undefined) {
          const p = proc.#pending.get(msg.id)
          proc.#pending.delete(msg.id)
          if (msg.error !== undefined) p?.reject(new RemoteError(msg.error))
          else p?.resolve(msg.result)
        }
      })
    })
    ready.catch(() => {})
    return { proc, ready }
  }

  get dead(): boolean {
    return this.#dead
  }

  /** Whether this process was (or is being) killed with `kill()`, rather than exiting on its own. */
  get killed(): boolean {
    return this.#killed
  }

  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.#dead) return Promise.reject(new ProcessDiedError('member process is dead'))
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.child.stdin!.write(`${JSON.stringify({ id, cmd, ...args })}\n`)
    })
  }

  /** A crash: SIGKILL, no goodbye, no flush. */
  async kill(): Promise<void> {
    this.#killed = true
    if (!this.#dead) this.child.kill('SIGKILL')
    await this.exited
  }
}

/** An error the member answered with, as `<code or name>: <message>`. */
export class RemoteError extends Error {
  override name = 'RemoteError'
  /** The class name of the SDK error (OfflineError, CommitUnknownError, ...): what child.ts sends. */
  readonly code: string

  constructor(text: string) {
    super(text)
    this.code = text.slice(0, Math.max(0, text.indexOf(':')))
  }
}

/**
 * A bench node in a child process of its own, driven over the IPC channel: the parent sends commands
 * and waits for the reports they produce. Multi-process rows use it to put nodes on separate event
 * loops, as on separate hosts (streams-remote.ts, collections-remote.ts).
 */
import { type ChildProcess, fork } from 'node:child_process'

type Kinded = { kind: string }

/** A child running `script` with `args`; `Command` and `Report` are its IPC vocabulary. */
export class BenchChild<Command extends Kinded, Report extends Kinded> {
  readonly #child: ChildProcess
  readonly #exited: Promise<never>

  constructor(script: URL, args: string[], env: Record<string, string>) {
    this.#child = fork(script, args, {
      execArgv: process.execArgv,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    this.#exited = new Promise((_, reject) => {
      this.#child.once('exit', (code) => reject(new Error(`${script.pathname} exited with ${code}`)))
    })
    this.#exited.catch(() => {})
  }

  /** The next report of `kind`, or a rejection if the child exits first. */
  next<K extends Report['kind']>(kind: K): Promise<Extract<Report, { kind: K }>> {
    const report = new Promise<Extract<Report, { kind: K }>>((resolve) => {
      const onMessage = (m: Report) => {
        if (m.kind !== kind) return
        this.#child.off('message', onMessage)
        resolve(m as Extract<Report, { kind: K }>)
      }
      this.#child.on('message', onMessage)
    })
    return Promise.race([report, this.#exited])
  }

  /** Sends `command` and waits for the report of `kind` it produces. */
  async ask<K extends Report['kind']>(command: Command, kind: K): Promise<Extract<Report, { kind: K }>> {
    const report = this.next(kind)
    this.#child.send(command)
    return report
  }

  /** Asks the child to exit (its command `{ kind: 'exit' }`), killing it if it has not within 5 s. */
  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    const exited = new Promise((resolve) => this.#child.once('exit', resolve))
    this.#child.send({ kind: 'exit' })
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}

/**
 * Runs an example as a user would (`node examples/<file>.ts`, Node 24 from node_modules runs .ts
 * directly) and collects its output. A child still running when its time is up, or when the test
 * ends, is SIGKILLed, so a failing example never outlives its test.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

export const ROOT = new URL('../../', import.meta.url).pathname

export interface ExampleRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

const running = new Set<ChildProcess>()

/** A started example: its output so far, awaitable lines, and its exit. */
export class Example {
  readonly child: ChildProcess
  readonly exited: Promise<ExampleRun>
  stdout = ''
  stderr = ''
  readonly #waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = []

  constructor(file: string, args: string[], timeoutMs: number) {
    const started = performance.now()
    this.child = spawn(process.execPath, [file, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    running.add(this.child)
    const timer = setTimeout(() => this.kill(), timeoutMs)
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.stdout += `${line}\n`
      for (const w of [...this.#waiters]) {
        const m = line.match(w.re)
        if (m) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1)
          w.resolve(m)
        }
      }
    })
    this.child.stderr!.on('data', (d) => {
      this.stderr += d
    })
    this.exited = new Promise((resolve) =>
      this.child.once('close', (code, signal) => {
        clearTimeout(timer)
        running.delete(this.child)
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr, ms: performance.now() - started })
      }),
    )
  }

  /** Resolves with the first line (from now on, or already printed) matching `re`. */
  line(re: RegExp): Promise<RegExpMatchArray> {
    for (const line of this.stdout.split('\n')) {
      const m = line.match(re)
      if (m) return Promise.resolve(m)
    }
    return new Promise((resolve) => this.#waiters.push({ re, resolve }))
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
  }
}

/** Runs `file` to completion (killed after `timeoutMs`). */
export function runExample(file: string, args: string[], timeoutMs: number): Promise<ExampleRun> {
  return new Example(file, args, timeoutMs).exited
}

/** SIGKILLs every example still running (call from afterEach). */
export function killExamples(): void {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  running.clear()
}

/**
 * The child side of a node running in its own OS process (see processes.ts for the test side): JSON
 * lines on stdout, JSON commands on stdin, a graceful close on SIGTERM.
 */
import { createInterface } from 'node:readline'

export type Commands = Record<string, (args: Record<string, unknown>) => Promise<unknown>>

export function emit(message: unknown): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

/** Announces readiness, closes gracefully on SIGTERM, and answers commands until stdin ends. */
export async function serve(
  ready: Record<string, unknown>,
  commands: Commands,
  close: () => Promise<void>,
): Promise<void> {
  let closing = false
  const shutdown = async () => {
    if (closing) return
    closing = true
    await close()
    emit({ event: 'closed' })
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown())
  commands.close ??= async () => {
    void shutdown()
    return true
  }
  emit({ event: 'ready', ...ready })
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue
    const { id, cmd, ...args } = JSON.parse(line)
    const handler = commands[cmd]
    if (!handler) {
      emit({ id, error: `unknown command ${cmd}` })
      continue
    }
    handler(args).then(
      (result) => emit({ id, result }),
      (err: Error) => emit({ id, error: `${err.name}: ${err.message}` }),
    )
  }
}

/** An AbortSignal for a command's optional `timeoutMs` argument (default 20 s). */
export function timeout(args: Record<string, unknown>): { signal: AbortSignal } {
  return { signal: AbortSignal.timeout(Number(args.timeoutMs ?? 20_000)) }
}

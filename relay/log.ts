/**
 * Structured logs: one JSON object per line on stderr (`time`, `level`, `msg`, then fields), so a
 * log collector can parse them and stdout stays free for the human-readable summary.
 */
import type { LogLevel } from './config.ts'

export type Fields = Record<string, unknown>

export interface Log {
  debug(msg: string, fields?: Fields): void
  info(msg: string, fields?: Fields): void
  warn(msg: string, fields?: Fields): void
  error(msg: string, fields?: Fields): void
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export function jsonLog(
  level: LogLevel,
  write: (line: string) => void = (l) => process.stderr.write(l),
): Log {
  const at =
    (lvl: LogLevel) =>
    (msg: string, fields: Fields = {}): void => {
      if (ORDER[lvl] < ORDER[level]) return
      write(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }, replacer)}\n`)
    }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Error)
    return { name: value.name, message: value.message, code: (value as { code?: unknown }).code }
  return value
}

/**
 * Every error the SDK throws is a MosaikError with a stable `code`, so callers can branch on
 * `err.code` (or `instanceof`) without parsing messages.
 */
export class MosaikError extends Error {
  /** A stable identifier of the failure (e.g. `OFFLINE`, `TIMEOUT`), one per error class. */
  readonly code: string
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/**
 * The operation needs a condition that does not hold now (no subscriber, no leader, no quorum).
 * `value` carries what was being sent back to the caller, so it can be retried without loss.
 */
export class OfflineError<T = unknown> extends MosaikError {
  /** The value that was not sent, handed back to retry. */
  readonly value: T
  constructor(value: T, message = 'offline', options?: ErrorOptions) {
    super('OFFLINE', message, options)
    this.value = value
  }
}

/** A bounded buffer is full; `value` is handed back. */
export class FullError<T = unknown> extends MosaikError {
  /** The value that was not queued, handed back to retry. */
  readonly value: T
  constructor(value: T, message = 'buffer is full') {
    super('FULL', message)
    this.value = value
  }
}

/** The handle was closed before or while the operation ran. */
export class ClosedError extends MosaikError {
  constructor(message = 'closed', options?: ErrorOptions) {
    super('CLOSED', message, options)
  }
}

/** An operation did not complete within its time limit. */
export class TimeoutError extends MosaikError {
  constructor(message = 'timed out', options?: ErrorOptions) {
    super('TIMEOUT', message, options)
  }
}

/** The caller's AbortSignal fired before the operation completed. */
export class AbortError extends MosaikError {
  constructor(message = 'aborted', options?: ErrorOptions) {
    super('ABORTED', message, options)
  }
}

/** Bytes that do not decode to what the protocol or the codec expects. */
export class DecodeError extends MosaikError {
  constructor(message: string, options?: ErrorOptions) {
    super('DECODE', message, options)
  }
}

/** A frame or value over the configured size limit. */
export class FrameTooLargeError extends MosaikError {
  /** The size of the frame or value, in bytes. */
  readonly size: number
  /** The configured limit it exceeds, in bytes. */
  readonly limit: number
  /** `what` names the thing too large in the message (a frame, a command...). */
  constructor(size: number, limit: number, what = 'frame') {
    super('FRAME_TOO_LARGE', `${what} of ${size} bytes exceeds the limit of ${limit} bytes`)
    this.size = size
    this.limit = limit
  }
}

/** A caller passed an option or argument the SDK cannot use. */
export class InvalidArgumentError extends MosaikError {
  constructor(message: string, options?: ErrorOptions) {
    super('INVALID_ARGUMENT', message, options)
  }
}

/**
 * The runtime lacks what the SDK needs (in Node: a version before 22, without `Promise.withResolvers`).
 * Thrown by `Network.create` before anything starts.
 */
export class UnsupportedRuntimeError extends MosaikError {
  constructor(message: string, options?: ErrorOptions) {
    super('UNSUPPORTED_RUNTIME', message, options)
  }
}

/**
 * A data directory is in use by another node: another process (`pid` on `host`) or another Network or
 * store in this one. Two writers on one directory would lose acknowledged writes.
 */
export class DataDirLockedError extends MosaikError {
  /** The data directory that is locked. */
  readonly dir: string
  /** The id of the process holding the lock. */
  readonly pid: number
  /** The host name of the machine holding the lock. */
  readonly host: string
  constructor(dir: string, pid: number, host: string, message: string) {
    super('DATA_DIR_LOCKED', message)
    this.dir = dir
    this.pid = pid
    this.host = host
  }
}

/** A signature over a peer entry or departure did not verify. */
export class InvalidSignatureError extends MosaikError {
  constructor(message = 'invalid signature') {
    super('INVALID_SIGNATURE', message)
  }
}

/**
 * A short rendering of a value decoded from the wire, for error messages. String() is not safe on
 * such values: a decoded map with a `toString` key makes it throw a TypeError.
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value)
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return String(value)
  if (value instanceof Uint8Array) return `bytes(${value.length})`
  return Array.isArray(value) ? `array(${value.length})` : 'object'
}

/** The error an aborted signal carries, as a MosaikError. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  if (reason instanceof Error) return reason
  return new AbortError(typeof reason === 'string' ? reason : 'aborted')
}

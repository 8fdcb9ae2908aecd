/**
 * Test timing helpers. Every timeout in the suite goes through TIME_FACTOR so slow machines can stretch
 * them (TIME_FACTOR=3 npm test) without editing tests. Tests never sleep to wait for the network: they
 * await the SDK's own conditions, bounded by these timeouts.
 */
export const TIME_FACTOR = Number(process.env.TIME_FACTOR ?? '1') || 1

export function ms(n: number): number {
  return Math.round(n * TIME_FACTOR)
}

export function secs(n: number): number {
  return ms(n * 1000)
}

/** Rejects with a message naming `what` when `promise` takes longer than `timeoutMs` (already scaled). */
export async function within<T>(timeoutMs: number, promise: Promise<T>, what = 'condition'): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} not met within ${timeoutMs} ms`)), timeoutMs)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** A signal that aborts after `timeoutMs` (already scaled). */
export function deadline(timeoutMs: number): AbortSignal {
  return AbortSignal.timeout(timeoutMs)
}

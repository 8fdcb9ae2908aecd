import type { Network } from '../../platform/node/index.ts'

/** Resolves once the node advertises a relayed (`/p2p-circuit`) address, i.e. holds a reservation. */
export function reserved(net: Network, signal: AbortSignal): Promise<void> {
  const has = () => net.addresses.some((a) => a.includes('/p2p-circuit'))
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      net.libp2p.removeEventListener('self:peer:update', check)
      signal.removeEventListener('abort', onAbort)
      if (err) reject(err)
      else resolve()
    }
    const check = () => {
      if (has()) done()
    }
    const onAbort = () => done(new Error('no reservation on the relay in time'))
    net.libp2p.addEventListener('self:peer:update', check)
    signal.addEventListener('abort', onAbort, { once: true })
    check()
  })
}

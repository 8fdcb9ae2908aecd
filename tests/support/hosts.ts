import { networkInterfaces } from 'node:os'

/**
 * A non-loopback address of this machine (`/ip4/...` or `/ip6/...`), or undefined when it has none.
 * Nodes that listen and dial on it reach each other over the loopback interface, but each sees the
 * others' connections coming from that address: one remote host, counted by the per-host limits like
 * any other (loopback connections are not). Link-local IPv6 is left out (it needs a zone).
 */
export function externalAddress(): string | undefined {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? [])
  const v4 = all.find((a) => a.family === 'IPv4' && !a.internal)
  if (v4) return `/ip4/${v4.address}`
  const v6 = all.find((a) => a.family === 'IPv6' && !a.internal && !/^fe[89ab]/i.test(a.address))
  return v6 && `/ip6/${v6.address}`
}

/** Why the per-host tests are skipped on a machine without a non-loopback address. */
export const NO_EXTERNAL_ADDRESS = 'this machine has no non-loopback address'

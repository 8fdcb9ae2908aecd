import { networkInterfaces } from 'node:os'
import type { Network, NetworkOptions } from '../../platform/node/index.ts'
import type { Nodes } from './nodes.ts'
import { secs, within } from './time.ts'

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

/** A node, and identities reaching it from one remote host and from loopback. */
export interface HostCrowd {
  /** Listens on `external` and on loopback. */
  victim: Network
  /** `holders` nodes that reach the victim through `external`: one remote host, many identities. */
  holders: Network[]
  /** One more identity of that host, to be refused once the holders fill the host's cap. */
  late: Network
  /** A node that reaches the victim over loopback, which the per-host caps do not count. */
  good: Network
}

/**
 * Starts a `HostCrowd` on `nodes` (TCP): the victim with `options`, then the host's identities one at
 * a time (a node lets one host have only 8 connections still upgrading), until the victim's catalog
 * holds them all.
 */
export async function hostCrowd(
  nodes: Nodes,
  external: string,
  holders: number,
  options: Partial<NetworkOptions> = {},
): Promise<HostCrowd> {
  const victim = await nodes.create({ ...options, listen: [`${external}/tcp/0`, '/ip4/127.0.0.1/tcp/0'] })
  const viaExternal = victim.addresses.filter((a) => a.startsWith(`${external}/`))
  const crowd: Network[] = []
  for (let i = 0; i <= holders; i++) {
    crowd.push(await nodes.create({ listen: [`${external}/tcp/0`], bootstrap: viaExternal }))
  }
  const good = await nodes.create({ bootstrap: victim.addresses.filter((a) => a.startsWith('/ip4/127.')) })
  await within(secs(15), victim.discovery.when.peers(holders + 2), 'the victim knows everyone')
  return { victim, holders: crowd.slice(0, holders), late: crowd[holders]!, good }
}

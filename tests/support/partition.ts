import type { ConnectionGater, PeerId } from '@libp2p/interface'
import type { Network } from '../../platform/node/index.ts'

/**
 * Network partitions for tests: every node created with `gater()` refuses connections across the
 * current split, and `split` hangs up the connections that cross it. `heal()` lets them reconnect.
 */
export class Partition {
  #sideOf = new Map<string, number>()

  /** A connection gater for one node; pass it as `connectionGater` when creating the node. */
  gater(): { gater: ConnectionGater; bind(net: Network): void } {
    let self: string | undefined
    const blocked = (remote: PeerId) => self !== undefined && this.separated(self, remote.toString())
    return {
      gater: {
        denyDialPeer: async (peer) => blocked(peer),
        denyInboundEncryptedConnection: async (peer) => blocked(peer),
        denyOutboundEncryptedConnection: async (peer) => blocked(peer),
        denyInboundUpgradedConnection: async (peer) => blocked(peer),
        denyOutboundUpgradedConnection: async (peer) => blocked(peer),
      },
      bind: (net) => {
        self = net.peerId
      },
    }
  }

  separated(a: string, b: string): boolean {
    const sa = this.#sideOf.get(a)
    const sb = this.#sideOf.get(b)
    return sa !== undefined && sb !== undefined && sa !== sb
  }

  /** Splits the given nodes into sides that cannot reach each other, cutting current connections. */
  async split(...sides: Network[][]): Promise<void> {
    this.#sideOf.clear()
    sides.forEach((side, i) => {
      for (const net of side) this.#sideOf.set(net.peerId, i)
    })
    const all = sides.flat()
    await Promise.all(
      all.flatMap((a) =>
        all
          .filter((b) => this.separated(a.peerId, b.peerId))
          .flatMap((b) => a.libp2p.getConnections().filter((c) => c.remotePeer.toString() === b.peerId))
          .map((c) => c.close().catch(() => c.abort(new Error('partition')))),
      ),
    )
  }

  heal(): void {
    this.#sideOf.clear()
  }
}

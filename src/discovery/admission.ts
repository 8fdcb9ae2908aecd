/**
 * Admission: who gets a place in a full catalog. Keys are free to mint, so a catalog that admits
 * whoever comes first can be filled by one attacker with fresh keys, after which honest peers are
 * refused. Admission charges every entry to the *group* it came through, and keeps groups fair:
 *
 * - An entry is **direct** when its own peer handed it over a live connection (its own catalog sync,
 *   ping reply or gossip), or when we hold a connection to that peer: the peer demonstrably holds its
 *   key and is reachable. Every other entry is **relayed**: we only heard of it.
 * - The group of an entry is the host of the connection it came through (an IPv4 address, or an IPv6
 *   /64; see `hostKey`), or the peer it came from when that connection has no IP (memory, relayed
 *   transports). A relayed entry is charged to the peer that relayed it; a direct one to the peer's
 *   own connection.
 * - One group may keep at most `maxRelayedPerSource` relayed entries; more are refused `over-quota`
 *   before their signatures are checked.
 * - When the catalog is full, a newcomer takes the place of the oldest entry of the largest group, if
 *   that group is larger than the newcomer's would become; relayed entries go first. A direct newcomer
 *   always displaces a relayed entry when there is one. Peers we are connected to are never evicted.
 *
 * So an attacker who mints keys fills at most its own share: its group is the largest, and each
 * honest newcomer evicts one of its entries.
 */

/** Where an entry came from, as admission sees it. */
export interface Provenance {
  /** The entry came from its own peer, or we hold a connection to that peer. */
  readonly direct: boolean
  /** The group it is charged to: `host:<ip>` or `peer:<id>` of the connection it came through. */
  readonly group: string
}

export interface AdmissionLimits {
  maxPeers: number
  maxRelayedPerSource: number
}

interface Admitted {
  direct: boolean
  group: string
  updatedAt: number
}

interface Group {
  readonly all: Set<string>
  readonly relayed: Set<string>
}

export class Admission {
  readonly #limits: AdmissionLimits
  readonly #isConnected: (peerId: string) => boolean
  readonly #admitted = new Map<string, Admitted>()
  readonly #groups = new Map<string, Group>()
  /** The groups holding relayed entries: few (the peers that relay to us), so cheap to scan. */
  readonly #relaying = new Set<Group>()

  constructor(limits: AdmissionLimits, isConnected: (peerId: string) => boolean) {
    this.#limits = limits
    this.#isConnected = isConnected
  }

  /**
   * Whether a peer not in the catalog may enter it now, with `size` signed entries held: undefined
   * when it may (possibly by evicting `victim()`), else why not.
   */
  refuse(provenance: Provenance, size: number): 'over-quota' | 'catalog-full' | undefined {
    if (!provenance.direct && this.#relayedIn(provenance.group) >= this.#limits.maxRelayedPerSource) {
      return 'over-quota'
    }
    if (size < this.#limits.maxPeers) return undefined
    return this.victim(provenance) === undefined ? 'catalog-full' : undefined
  }

  /** The entry a newcomer with `provenance` would displace from a full catalog, if any. */
  victim(provenance: Provenance): string | undefined {
    const relayed = this.#largest(this.#relaying, (g) => g.relayed.size)
    if (relayed) {
      const [group, size] = relayed
      const mine = this.#relayedIn(provenance.group) + (provenance.direct ? 0 : 1)
      if (provenance.direct || size > mine) {
        const victim = this.#oldest(group.relayed)
        if (victim) return victim
      }
    }
    if (!provenance.direct) return undefined
    const any = this.#largest(this.#groups.values(), (g) => g.all.size)
    if (!any) return undefined
    const [group, size] = any
    const mine = (this.#groups.get(provenance.group)?.all.size ?? 0) + 1
    return size > mine ? this.#oldest(group.all) : undefined
  }

  /** Records an admitted (or updated) entry. A direct sighting upgrades a relayed entry for good. */
  admit(peerId: string, provenance: Provenance, updatedAt: number): void {
    const known = this.#admitted.get(peerId)
    if (known && (known.direct || !provenance.direct)) {
      known.updatedAt = updatedAt
      return
    }
    if (known) this.forget(peerId)
    this.#admitted.set(peerId, { ...provenance, updatedAt })
    const group = this.#group(provenance.group)
    group.all.add(peerId)
    if (!provenance.direct) {
      group.relayed.add(peerId)
      this.#relaying.add(group)
    }
  }

  /** A connection to `peerId` proves it holds its key: its entry, if held, becomes direct. */
  connected(peerId: string, group: string): void {
    const known = this.#admitted.get(peerId)
    if (known && !known.direct) this.admit(peerId, { direct: true, group }, known.updatedAt)
  }

  forget(peerId: string): void {
    const known = this.#admitted.get(peerId)
    if (!known) return
    this.#admitted.delete(peerId)
    const group = this.#groups.get(known.group)
    if (!group) return
    group.all.delete(peerId)
    group.relayed.delete(peerId)
    if (group.relayed.size === 0) this.#relaying.delete(group)
    if (group.all.size === 0) this.#groups.delete(known.group)
  }

  isDirect(peerId: string): boolean {
    return this.#admitted.get(peerId)?.direct === true
  }

  #relayedIn(group: string): number {
    return this.#groups.get(group)?.relayed.size ?? 0
  }

  #group(name: string): Group {
    let group = this.#groups.get(name)
    if (!group) {
      group = { all: new Set(), relayed: new Set() }
      this.#groups.set(name, group)
    }
    return group
  }

  #largest(groups: Iterable<Group>, size: (g: Group) => number): [Group, number] | undefined {
    let best: [Group, number] | undefined
    for (const g of groups) {
      const n = size(g)
      if (n > 0 && (!best || n > best[1])) best = [g, n]
    }
    return best
  }

  /** The least recently updated member that is not connected now. */
  #oldest(members: Set<string>): string | undefined {
    let oldest: string | undefined
    let at = Number.POSITIVE_INFINITY
    for (const id of members) {
      const a = this.#admitted.get(id)!
      if (a.updatedAt < at && !this.#isConnected(id)) {
        oldest = id
        at = a.updatedAt
      }
    }
    return oldest
  }
}

import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import {
  CloseCode,
  DecodeError,
  Digest,
  GroupKey,
  type Network,
  PeerEntry,
  SignedPeerEntry,
} from '../../platform/node/index.ts'
import {
  acceptBond,
  BOND_PROTOCOL_VERSION,
  Bond,
  BondMsg,
  initiateBond,
  RequestRefusedError,
} from '../../src/groups/bond.ts'
import { randomBytes } from '../../src/primitives/bytes.ts'
import { nextEvent } from '../support/events.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { Counter, fastConsensus, observerSecrets } from './support.ts'

const T = secs(10)

describe('bonds: authentication and bad input', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  async function member(): Promise<{ net: Network; outsider: Network; groupId: Digest; protocol: string }> {
    const net = await nodes.create()
    const outsider = await nodes.create({ bootstrap: net.addresses })
    await within(T, net.discovery.when.peers(1))
    const g = await net.groups.join({
      key: GroupKey.fromSecret('right'),
      stateMachine: new Counter(),
      consensus: fastConsensus,
    })
    await within(T, g.when.isLeader())
    return { net, outsider, groupId: g.id, protocol: net.context.protocol('groups/1') }
  }

  it('members with different secrets never bond (their group ids differ)', async () => {
    const [a, b] = await nodes.star(2)
    await within(T, a!.discovery.when.peers(1))
    const ga = await a!.groups.join({
      key: GroupKey.fromSecret('x'),
      stateMachine: new Counter(),
      consensus: fastConsensus,
    })
    const gb = await b!.groups.join({
      key: GroupKey.fromSecret('y'),
      stateMachine: new Counter(),
      consensus: fastConsensus,
    })
    expect(ga.id.equals(gb.id)).toBe(false)
    await within(T, Promise.all([ga.when.isLeader(), gb.when.isLeader()]))
    expect(ga.bonds).toHaveLength(0)
    expect(gb.bonds).toHaveLength(0)
  })

  it('an initiator with the wrong secret is refused with InvalidProof and receives no group data', async () => {
    const { net, outsider, groupId, protocol } = await member()
    const link = await outsider.context.openLink(net.peerId, protocol)
    const secrets = {
      networkId: net.networkId,
      groupId,
      secret: Digest.from('wrong'),
      localId: outsider.peerId,
      observer: false,
    }
    // The member proves first; our check of its proof fails since we hold another secret, and we close.
    await expect(initiateBond(link, secrets, AbortSignal.timeout(T))).rejects.toMatchObject({
      closeCode: CloseCode.GroupInvalidProof,
    })
    // Forge past our own check: send a proof made with the wrong secret anyway.
    const link2 = await outsider.context.openLink(net.peerId, protocol)
    await link2.send([BOND_PROTOCOL_VERSION, net.networkId.bytes, groupId.bytes, randomBytes(32), false])
    const reply = (await link2.recv()) as unknown[]
    expect(reply).toHaveLength(3)
    await link2.send([randomBytes(32)])
    const close = await within(T, link2.closed)
    expect(close.code).toBe(CloseCode.GroupInvalidProof)
    expect(link2.queuedReceives).toBe(0) // nothing but the handshake reply ever arrived
  })

  it('an acceptor with the wrong secret is refused by the initiator', async () => {
    const { net, outsider, groupId } = await member()
    // The outsider serves a fake group endpoint with the right group id but the wrong secret.
    const fake = outsider.context.protocol('fake-groups/1')
    await outsider.context.handle(fake, async (link) => {
      await acceptBond(
        link,
        outsider.networkId,
        () => ({
          ok: true,
          secrets: {
            networkId: outsider.networkId,
            groupId,
            secret: Digest.from('wrong'),
            localId: outsider.peerId,
            observer: false,
          },
        }),
        AbortSignal.timeout(T),
      ).catch(() => {})
    })
    const link = await net.context.openLink(outsider.peerId, fake)
    const real = {
      networkId: net.networkId,
      groupId,
      secret: GroupKey.fromSecret('right').secret,
      localId: net.peerId,
      observer: false,
    }
    await expect(initiateBond(link, real, AbortSignal.timeout(T))).rejects.toMatchObject({
      closeCode: CloseCode.GroupInvalidProof,
    })
  })

  it('a replayed handshake fails: fresh nonces make an old proof worthless', async () => {
    const { net, outsider, groupId, protocol } = await member()
    // Record what an honest initiator sends (we can, since the test knows the secret)...
    const secrets = observerSecrets(net, outsider, groupId)
    const link = await outsider.context.openLink(net.peerId, protocol)
    const sent: unknown[] = []
    const original = link.send.bind(link)
    link.send = (v, o) => {
      sent.push(v)
      return original(v, o)
    }
    await initiateBond(link, secrets, AbortSignal.timeout(T))
    await link.close()
    // ...and replay it on a new link: the acceptor's new nonce makes the old proof fail.
    const replay = await outsider.context.openLink(net.peerId, protocol)
    await replay.send(sent[0])
    await replay.recv()
    await replay.send(sent[1])
    expect((await within(T, replay.closed)).code).toBe(CloseCode.GroupInvalidProof)
  })

  it('refuses unknown groups, other networks, unknown versions and malformed hellos with their codes', async () => {
    const { net, outsider, groupId, protocol } = await member()
    const cases: [unknown, number][] = [
      [
        [BOND_PROTOCOL_VERSION, net.networkId.bytes, Digest.from('nope').bytes, randomBytes(32), false],
        CloseCode.GroupNotFound,
      ],
      [
        [BOND_PROTOCOL_VERSION, Digest.from('elsewhere').bytes, groupId.bytes, randomBytes(32), false],
        CloseCode.DifferentNetwork,
      ],
      [[99, net.networkId.bytes, groupId.bytes, randomBytes(32), false], CloseCode.UnsupportedVersion],
      [[BOND_PROTOCOL_VERSION, 'garbage'], CloseCode.GroupInvalidHandshake],
    ]
    for (const [hello, code] of cases) {
      const link = await outsider.context.openLink(net.peerId, protocol)
      await link.send(hello)
      expect((await within(T, link.closed)).code).toBe(code)
    }
  })

  it('closes a bond that sends malformed frames, and the group keeps working', async () => {
    const { net, outsider, groupId, protocol } = await member()
    const g = await net.groups.join({
      key: GroupKey.fromSecret('right'),
      stateMachine: new Counter(),
      consensus: fastConsensus,
    })
    const secrets = observerSecrets(net, outsider, groupId)
    for (const frame of [
      ['not', 'a', 'frame'],
      [BondMsg.Raft, { type: 'append', bogus: true }],
      [42, null],
      // A refusal is [code, reason, limit?]; a bare string (bond protocol 4) is malformed.
      [BondMsg.Response, [7, false, 'not the leader']],
      [BondMsg.Response, [7, false, ['BUSY']]],
    ]) {
      const link = await outsider.context.openLink(net.peerId, protocol)
      await initiateBond(link, secrets, AbortSignal.timeout(T))
      await link.send(frame)
      expect((await within(T, link.closed)).code).toBe(CloseCode.ProtocolViolation)
    }
    expect(await g.execute({ inc: 1 })).toBeGreaterThan(0)
  })

  it('a forged entry in a bond announcement is counted as refused, not taken, and the bond stays', async () => {
    const { net, outsider, groupId, protocol } = await member()
    const g = await net.groups.join({
      key: GroupKey.fromSecret('right'),
      stateMachine: new Counter(),
      consensus: fastConsensus,
    })
    const link = await outsider.context.openLink(net.peerId, protocol)
    await initiateBond(link, observerSecrets(net, outsider, groupId), AbortSignal.timeout(T))
    // An entry of a fresh identity, signed with the outsider's key: its signature does not verify.
    const key = await generateKeyPair('Ed25519')
    const entry = new PeerEntry({
      peerId: peerIdFromPrivateKey(key).toString(),
      network: net.networkId,
      version: { start: Date.now(), update: Date.now() },
      addresses: ['/ip4/127.0.0.1/udp/9/quic-v1'],
      tags: [],
    })
    const forged = await SignedPeerEntry.sign(entry, outsider.context.privateKey)
    const rejected = nextEvent(net.discovery, 'rejected', (r) => r.reason === 'invalid-signature')
    await link.send([BondMsg.BondFormed, forged.toWire()])
    expect(await within(T, rejected)).toMatchObject({ from: outsider.peerId, peer: entry.peerId })
    expect(net.discovery.stats.rejected['invalid-signature']).toBe(1)
    expect(net.discovery.catalog().has(entry.peerId)).toBe(false)
    expect(link.isClosed).toBe(false)
    expect(await g.execute({ inc: 1 })).toBeGreaterThan(0)
    link.abort()
  })

  it('a request still waiting for credit when its bond closes fails as never sent', async () => {
    const a = await nodes.create()
    const b = await nodes.create({ bootstrap: a.addresses })
    await within(T, a.discovery.when.peers(1))
    // A peer that takes the link and never reads from it: no credit comes back.
    const protocol = b.context.protocol('never-reads/1')
    await b.context.handle(protocol, async (link) => {
      await link.closed
    })
    const link = await a.context.openLink(b.peerId, protocol)
    const bond = new Bond(link, { peer: b.peerId, id: 'test', observer: false }, 0)
    const early = bond.request(1, 'sent before the window filled', T, 0)
    for (let i = 0; i < 8; i++) bond.send(BondMsg.Raft, new Uint8Array(256 * 1024), 0)
    expect(link.queuedSends).toBeGreaterThan(0)
    const late = bond.request(1, 'still queued', T, 0)
    await link.close()
    bond.failPending({ code: CloseCode.Success, reason: '', remote: false })
    await expect(early).rejects.toMatchObject({ sent: true })
    await expect(late).rejects.toMatchObject({ sent: false })
  })

  it('a refusal travels as its code; a code this version does not know reads as FAILED', () => {
    const tooLarge = new RequestRefusedError('TOO_LARGE', 'a command of 9 bytes is over 8', 8)
    expect(RequestRefusedError.parse(RequestRefusedError.wire(tooLarge))).toMatchObject({
      code: 'REQUEST_REFUSED',
      refusal: 'TOO_LARGE',
      limit: 8,
      message: 'a command of 9 bytes is over 8',
    })
    expect(RequestRefusedError.wire(new DecodeError('bad fetch'))).toEqual(['MALFORMED', 'bad fetch'])
    expect(RequestRefusedError.wire(new Error('disk'))).toEqual(['FAILED', 'disk'])
    expect(RequestRefusedError.parse(['FROM_THE_FUTURE', 'new reason'])).toMatchObject({ refusal: 'FAILED' })
    expect(() => RequestRefusedError.parse('not the leader')).toThrow(DecodeError)
  })

  it('an inbound handshake takes small frames until the initiator has proven the secret', async () => {
    const { net, outsider, groupId, protocol } = await member()
    // A hello padded past a handshake's size is refused at its length prefix.
    const big = await outsider.context.openLink(net.peerId, protocol)
    await big.send([
      BOND_PROTOCOL_VERSION,
      net.networkId.bytes,
      groupId.bytes,
      randomBytes(32),
      false,
      randomBytes(8192),
    ])
    expect((await within(T, big.closed)).code).toBe(CloseCode.FrameTooLarge)
    // Once proven, the bond takes frames of the node's full size (a 1 MiB frame is refused only for
    // being malformed, not for its size).
    const secrets = observerSecrets(net, outsider, groupId)
    const link = await outsider.context.openLink(net.peerId, protocol)
    await initiateBond(link, secrets, AbortSignal.timeout(T))
    await link.send([42, randomBytes(1024 * 1024)])
    expect((await within(T, link.closed)).code).toBe(CloseCode.ProtocolViolation)
  })

  it('one peer may have 64 bond handshakes in progress; the 65th gets TooManyStreams', async () => {
    const { net, outsider, protocol } = await member()
    const links = await Promise.all(
      Array.from({ length: 64 }, () => outsider.context.openLink(net.peerId, protocol)),
    )
    // They send nothing: their handshakes stay in progress until the handshake timeout.
    const over = await outsider.context.openLink(net.peerId, protocol)
    expect((await within(T, over.closed)).code).toBe(CloseCode.TooManyStreams)
    for (const l of links) expect(l.isClosed).toBe(false)
    for (const l of links) l.abort()
  })
})

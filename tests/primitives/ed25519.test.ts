import { generateKeyPair } from '@libp2p/crypto/keys'
import { describe, expect, it } from 'vitest'
import '../../platform/node/index.ts'
import { signatureCheckFor, signWith } from '../../src/primitives/ed25519.ts'

describe('Ed25519 signature checks', () => {
  it('the native check accepts exactly what the key itself accepts', async () => {
    const signer = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    const data = new TextEncoder().encode('an entry to sign')
    const signature = await signer.sign(data)
    const flipped = Uint8Array.from(signature)
    flipped[10]! ^= 0x40
    const altered = Uint8Array.from(data)
    altered[0]! ^= 1
    const cases: [Uint8Array, Uint8Array][] = [
      [data, signature],
      [data, flipped],
      [altered, signature],
      [data, await other.sign(data)],
      [data, new Uint8Array(64)],
    ]
    const check = signatureCheckFor(signer.publicKey)
    for (const [d, s] of cases) {
      expect(await check(d, s)).toBe(await signer.publicKey.verify(d, s))
    }
    expect(await check(data, signature)).toBe(true)
    // A signature of the wrong length is refused, not thrown over.
    expect(await check(data, signature.subarray(0, 63))).toBe(false)
    expect(await check(data, new Uint8Array([...signature, 0]))).toBe(false)
  })

  it('one check per key: a check never accepts what another key signed', async () => {
    const a = await generateKeyPair('Ed25519')
    const b = await generateKeyPair('Ed25519')
    const data = new Uint8Array([1, 2, 3])
    const checkA = signatureCheckFor(a.publicKey)
    const checkB = signatureCheckFor(b.publicKey)
    expect(await checkA(data, await a.sign(data))).toBe(true)
    expect(await checkB(data, await a.sign(data))).toBe(false)
    expect(await checkA(data, await b.sign(data))).toBe(false)
  })

  it('the native signer gives the signatures the key itself gives', async () => {
    const key = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    const inputs = [
      new Uint8Array(0),
      new TextEncoder().encode('an entry to sign'),
      new Uint8Array(5000).fill(7),
    ]
    for (const data of inputs) {
      const signature = await signWith(key, data)
      expect(signature).toEqual(Uint8Array.from(await key.sign(data)))
      expect(await key.publicKey.verify(data, signature)).toBe(true)
      expect(await other.publicKey.verify(data, signature)).toBe(false)
    }
    // Each key keeps its own signer: the second key signs as itself, not as the first.
    expect(await signWith(other, inputs[1]!)).toEqual(Uint8Array.from(await other.sign(inputs[1]!)))
  })
})

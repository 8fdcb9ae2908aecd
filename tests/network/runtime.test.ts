import { describe, expect, it } from 'vitest'
import { checkNodeRuntime, Network, UnsupportedRuntimeError } from '../../platform/node/index.ts'
import { uniqueNetwork } from '../support/nodes.ts'

describe('Node runtime check', () => {
  it('refuses Node before 22 with UNSUPPORTED_RUNTIME and the running version', () => {
    const check = () => checkNodeRuntime('20.20.2', true)
    expect(check).toThrow(UnsupportedRuntimeError)
    expect(check).toThrow('mosaik needs Node ≥ 22 (this is v20.20.2)')
    try {
      check()
    } catch (err) {
      expect((err as UnsupportedRuntimeError).code).toBe('UNSUPPORTED_RUNTIME')
    }
    expect(() => checkNodeRuntime('v18.19.0', true)).toThrow('(this is v18.19.0)')
  })

  it('accepts Node 22 and later, unless Promise.withResolvers is missing', () => {
    expect(() => checkNodeRuntime('22.0.0', true)).not.toThrow()
    expect(() => checkNodeRuntime('24.21.0', true)).not.toThrow()
    expect(() => checkNodeRuntime('24.21.0', false)).toThrow(
      /with Promise\.withResolvers \(this is v24\.21\.0, where it is missing\)/,
    )
    expect(() => checkNodeRuntime(process.versions.node)).not.toThrow()
  })

  it('Network.create fails early, before libp2p starts, where Promise.withResolvers is missing', async () => {
    const original = Promise.withResolvers
    // biome-ignore lint/suspicious/noExplicitAny: removing a built-in to simulate Node 20
    delete (Promise as any).withResolvers
    try {
      const created = Network.create({ network: uniqueNetwork(), listen: ['/ip4/127.0.0.1/tcp/0'] })
      await expect(created).rejects.toBeInstanceOf(UnsupportedRuntimeError)
      await expect(created).rejects.toMatchObject({
        code: 'UNSUPPORTED_RUNTIME',
        message: expect.stringContaining('mosaik needs Node ≥ 22'),
      })
    } finally {
      Promise.withResolvers = original
    }
  })
})

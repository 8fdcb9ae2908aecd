import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Network } from '../../platform/node/index.ts'
import { uniqueNetwork } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'

const child = fileURLToPath(new URL('./fixtures/quic-fallback-child.ts', import.meta.url))
const noBinding = fileURLToPath(new URL('./fixtures/no-quic-binding.ts', import.meta.url))

interface Run {
  report: { quic: boolean; peerIds: string[]; addresses: string[] }
  stderr: () => string
  finish: () => Promise<number | null>
}

/** Starts the child; resolves with its report once it has joined `net` (its stdin keeps it up). */
function runChild(net: Network, args: { env?: Record<string, string>; nodeArgs?: string[] }): Promise<Run> {
  const proc = spawn(
    process.execPath,
    [...(args.nodeArgs ?? []), child, net.addresses[0]!, net.peerId, net.networkId.toString()],
    { env: { ...process.env, ...args.env }, stdio: ['pipe', 'pipe', 'pipe'] },
  )
  children.add(proc)
  let stdout = ''
  let stderr = ''
  proc.stderr.on('data', (d) => {
    stderr += d
  })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  return new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      stdout += d
      const line = stdout.split('\n')[0]
      if (stdout.includes('\n') && line) {
        resolve({
          report: JSON.parse(line),
          stderr: () => stderr,
          finish: async () => {
            proc.stdin.end()
            return exited
          },
        })
      }
    })
    void exited.then((code) => reject(new Error(`child exited with ${code}: ${stderr}`)))
  })
}

const children = new Set<ReturnType<typeof spawn>>()
let net: Network

beforeAll(async () => {
  net = await Network.create({ network: uniqueNetwork(), listen: ['/ip4/127.0.0.1/tcp/0'] })
})

afterAll(async () => {
  for (const proc of children) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  await net?.close()
})

describe('QUIC fallback', () => {
  it.each([
    ['MOSAIK_DISABLE_QUIC=1', { env: { MOSAIK_DISABLE_QUIC: '1' } }],
    ['a missing native binding', { nodeArgs: ['--import', noBinding] }],
  ])('with %s, import works and nodes form over TCP with one warning', async (_, args) => {
    const run = await within(secs(30), runChild(net, args), 'child joined')
    expect(run.report.quic).toBe(false)
    expect(run.report.addresses.length).toBeGreaterThan(0)
    for (const address of run.report.addresses) {
      expect(address).toContain('/tcp/')
      expect(address).not.toContain('quic')
    }
    // This node sees both of the child's nodes too.
    await within(
      secs(20),
      net.discovery.when.peers(2, (p) => run.report.peerIds.includes(p.id)),
      'child nodes in the catalog',
    )
    expect(await within(secs(20), run.finish(), 'child exit')).toBe(0)
    const warnings = run.stderr().match(/MOSAIK_QUIC_UNAVAILABLE/g) ?? []
    expect(warnings).toHaveLength(1)
  })
})

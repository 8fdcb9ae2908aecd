import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { FAST_CONSENSUS } from '../support/consensus.ts'
import { uniqueNetwork } from '../support/nodes.ts'
import { NodeProcess } from '../support/processes.ts'
import { secs } from '../support/time.ts'

const consensus = { ...FAST_CONSENSUS, bootstrapDelayMs: 500 }
type Status = { role: string; leader?: string; applied: number; value: number; id: string }

describe('groups between OS processes over QUIC with disk persistence', () => {
  const procs: NodeProcess[] = []
  const dirs: string[] = []
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill()))
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
  })

  async function start(options: Record<string, unknown>): Promise<NodeProcess> {
    const p = await NodeProcess.start(options, secs(20), 'group')
    procs.push(p)
    return p
  }

  it.each([3, 5])(
    'kill -9 the leader of %i: no committed write is lost, and it rejoins from disk',
    async (n) => {
      const network = uniqueNetwork('crash')
      const dataDirs = await Promise.all(
        Array.from({ length: n }, () => mkdtemp(join(tmpdir(), 'mosaik-crash-'))),
      )
      dirs.push(...dataDirs)
      const first = await start({ network, dataDir: dataDirs[0], consensus })
      const members = [first]
      for (let i = 1; i < n; i++)
        members.push(await start({ network, dataDir: dataDirs[i], bootstrap: first.addresses, consensus }))
      await Promise.all(members.map((p) => p.call('awaitVoters', { n: n === 5 ? 5 : 3 })))

      let acknowledged = 0
      const write = async (p: NodeProcess, k: number) => {
        await p.call('execute', { inc: k })
        acknowledged += k
      }
      await Promise.all(Array.from({ length: 40 }, (_, k) => write(members[k % n]!, k + 1)))

      const leaderId = await members[0]!.call<string>('awaitLeader')
      const li = members.findIndex((p) => p.peerId === leaderId)
      const leader = members[li]!
      await leader.kill()
      const survivors = members.filter((p) => p !== leader)
      const next = await Promise.all(
        survivors.map((p) => p.call<string>('awaitLeaderOtherThan', { peer: leaderId })),
      )
      expect(new Set(next).size).toBe(1)
      expect(next[0]).not.toBe(leaderId)
      await Promise.all(
        Array.from({ length: 20 }, (_, k) => write(survivors[k % survivors.length]!, 100 + k)),
      )

      // Restart the killed leader from its data directory: same peer id, state restored from disk.
      const restarted = await start({
        network,
        dataDir: dataDirs[li],
        bootstrap: survivors[0]!.addresses,
        consensus,
      })
      expect(restarted.peerId).toBe(leaderId)
      // It shows its last state at once, replayed from its own disk before hearing from anyone.
      const early = await restarted.call<Status>('status')
      expect(early.applied).toBeGreaterThan(0)
      expect(early.value).toBeGreaterThan(0)
      const last = await survivors[0]!.call<number>('execute', { inc: 0 })
      for (const p of [...survivors, restarted]) await p.call('awaitCommitted', { index: last })
      for (const p of [...survivors, restarted]) {
        const s = await p.call<Status>('status')
        expect(s.value, `value on ${p.peerId}`).toBe(acknowledged)
      }
    },
  )
})

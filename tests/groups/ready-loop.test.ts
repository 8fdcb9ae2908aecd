import { describe, expect, it } from 'vitest'
import type { Ready } from '../../src/groups/raft/types.ts'
import { ReadyLoop } from '../../src/groups/worker/ready-loop.ts'
import type { Runtime } from '../../src/groups/worker/runtime.ts'
import { manualRuntime, ms, within } from '../support/time.ts'

const microtasksDrained = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * The core as the loop sees it: a queue of Readies the test fills, one outstanding at a time (as the
 * real core: `hasReady` is false between `ready()` and the handler's advance), and a tick deadline.
 */
function fakeCore() {
  const queued: string[] = []
  let outstanding = false
  const ticks: number[] = []
  let nextTickAt = 100
  const node = {
    hasReady: () => !outstanding && queued.length > 0,
    ready: () => {
      outstanding = true
      return { id: queued.shift() } as unknown as Ready
    },
    tick: (now: number) => {
      ticks.push(now)
      nextTickAt = now + 100
    },
    nextTickAt: () => nextTickAt,
  }
  const advance = () => {
    outstanding = false
  }
  return { node, queued, ticks, advance }
}

const idOf = (rd: Ready) => (rd as unknown as { id: string }).id

/** A loop over `core` that handles each Ready with `handle`; it runs until `stopped` says otherwise. */
function loopOver(
  core: ReturnType<typeof fakeCore>,
  rt: Runtime,
  handle: (rd: Ready) => Promise<void>,
  options: { stopped?: () => boolean; fail?: (err: unknown) => void } = {},
): ReadyLoop {
  return new ReadyLoop({
    node: core.node,
    rt,
    stopped: options.stopped ?? (() => false),
    handle,
    fail:
      options.fail ??
      ((err) => {
        throw err
      }),
  })
}

describe('ReadyLoop', () => {
  it('handles one Ready at a time, and one that appears while another is handled comes next', async () => {
    const { rt } = manualRuntime()
    const core = fakeCore()
    const handled: string[] = []
    let inHandler = 0
    let release: (() => void) | undefined
    const loop = loopOver(core, rt, async (rd) => {
      inHandler++
      expect(inHandler).toBe(1)
      handled.push(idOf(rd))
      // The first Ready waits for its disk; a message stepped in meanwhile adds the second.
      if (idOf(rd) === 'a') await new Promise<void>((r) => (release = r))
      core.advance()
      inHandler--
    })
    core.queued.push('a')
    loop.kick()
    await microtasksDrained()
    expect(handled).toEqual(['a'])
    core.queued.push('b')
    loop.kick() // while 'a' is being handled: no second loop; the running one takes 'b' next
    await microtasksDrained()
    expect(handled).toEqual(['a'])
    release!()
    await microtasksDrained()
    expect(handled).toEqual(['a', 'b'])
  })

  it('holds calls through its gate until the Ready being handled is done', async () => {
    const { rt } = manualRuntime()
    const core = fakeCore()
    const order: string[] = []
    let release: (() => void) | undefined
    const loop = loopOver(core, rt, async () => {
      order.push('handling')
      await new Promise<void>((r) => (release = r))
      core.advance()
      order.push('handled')
    })
    core.queued.push('a')
    loop.kick()
    await microtasksDrained()
    const held = loop.gate.run(() => order.push('snapshot'))
    await microtasksDrained()
    expect(order).toEqual(['handling'])
    release!()
    await within(ms(2000), held, 'the held call')
    expect(order).toEqual(['handling', 'handled', 'snapshot'])
  })

  it('runNow handles every Ready before it resolves (the start replays the store)', async () => {
    const { rt } = manualRuntime()
    const core = fakeCore()
    const handled: string[] = []
    const loop = loopOver(core, rt, async (rd) => {
      handled.push(idOf(rd))
      if (idOf(rd) === 'a') core.queued.push('b')
      core.advance()
    })
    core.queued.push('a')
    await loop.runNow()
    expect(handled).toEqual(['a', 'b'])
  })

  it('reports a failing Ready to fail() and takes no more', async () => {
    const { rt } = manualRuntime()
    const core = fakeCore()
    const failures: unknown[] = []
    let stopped = false
    const failing = async () => {
      throw new Error('disk full')
    }
    const loop = loopOver(core, rt, failing, {
      stopped: () => stopped,
      fail: (err) => {
        failures.push(err)
        stopped = true
      },
    })
    core.queued.push('a', 'b')
    loop.kick()
    await microtasksDrained()
    expect(failures).toHaveLength(1)
    expect((failures[0] as Error).message).toBe('disk full')
    loop.kick()
    await microtasksDrained()
    expect(failures).toHaveLength(1)
    expect(core.queued).toEqual(['b'])
  })

  it('ticks the core at its deadline, runs the loop after each tick, and stops ticking when stopped', async () => {
    const { rt, time } = manualRuntime()
    const core = fakeCore()
    const handled: string[] = []
    const loop = loopOver(core, rt, async (rd) => {
      handled.push(idOf(rd))
      core.advance()
    })
    await loop.runNow() // arms the tick timer for the core's deadline (100)
    time.advance(99)
    expect(core.ticks).toEqual([])
    core.queued.push('heartbeat')
    time.advance(1)
    expect(core.ticks).toEqual([100])
    await microtasksDrained()
    expect(handled).toEqual(['heartbeat'])
    time.advance(100)
    expect(core.ticks).toEqual([100, 200])
    loop.stop()
    time.advance(1000)
    expect(core.ticks).toEqual([100, 200])
    expect(time.pending).toBe(0)
  })
})

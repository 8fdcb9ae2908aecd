import { afterEach, describe, expect, it } from 'vitest'
import { GroupKey } from '../../platform/node/index.ts'
import { Nodes } from '../support/nodes.ts'
import { secs, within } from '../support/time.ts'
import { Counter, fastConsensus } from './support.ts'

describe('a tight write loop', () => {
  const nodes = new Nodes('memory')
  afterEach(() => nodes.closeAll())

  it('does not starve timers: awaiting execute in a loop still lets the event loop breathe', async () => {
    const net = await nodes.create()
    const g = await net.groups.join({
      key: GroupKey.fromSecret('tight'),
      stateMachine: new Counter(),
      consensus: fastConsensus,
    })
    await within(secs(5), g.when.isLeader())
    let ticks = 0
    const timer = setInterval(() => ticks++, 5)
    const started = performance.now()
    // On an in-memory store a single-voter group commits through microtasks only.
    while (performance.now() - started < 300) await g.execute({ inc: 1 })
    clearInterval(timer)
    // 300 ms of writing with a 5 ms interval timer: it must have fired many times, not zero.
    expect(ticks).toBeGreaterThan(10)
    expect((await g.query('value')).result).toBeGreaterThan(100)
  })
})

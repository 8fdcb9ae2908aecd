import { describe, expect, it } from 'vitest'
import type { AppendMessage, Message } from '../../src/groups/raft/types.ts'
import { RaftOutbox } from '../../src/groups/worker/outbox.ts'

function append(to: string, commit: number, over: Partial<AppendMessage> = {}): AppendMessage {
  return {
    type: 'append',
    from: 'L',
    to,
    term: 3,
    clusterId: 'c',
    prevIndex: commit,
    prevTerm: 3,
    entries: [],
    commit,
    seq: 0,
    quiet: true,
    ...over,
  }
}

function entryAt(index: number) {
  return { index, term: 3, kind: 'command' as const, data: new Uint8Array([0, index]) }
}

/** An outbox whose macrotasks run only when the test says so. */
function harness(urgent: (follower: string) => boolean = () => false) {
  const sent: Message[] = []
  const tasks: (() => void)[] = []
  const outbox = new RaftOutbox({
    transmit: (m) => sent.push(m),
    macrotask: (fn) => tasks.push(fn),
    urgent,
  })
  const runMacrotasks = () => {
    for (const fn of tasks.splice(0)) fn()
  }
  return { outbox, sent, runMacrotasks, tasks }
}

const shape = (m: Message) =>
  m.type === 'append'
    ? `${m.to}:append(${m.entries.length},c${m.commit}${m.quiet ? ',quiet' : ''})`
    : `${m.to}:${m.type}`

describe('the Raft outbox', () => {
  it('sends everything but quiet commit notices at once', () => {
    const { outbox, sent } = harness()
    outbox.send(append('A', 4, { quiet: false, entries: [entryAt(5)] }))
    outbox.send(append('B', 4, { quiet: false }))
    outbox.send({
      type: 'heartbeat',
      from: 'L',
      to: 'A',
      term: 3,
      clusterId: 'c',
      commit: 4,
      seq: 1,
    } as Message)
    expect(sent.map(shape)).toEqual(['A:append(1,c4)', 'B:append(0,c4)', 'A:heartbeat'])
  })

  it('holds a quiet notice for one macrotask, then sends it when nothing overtook it', () => {
    const { outbox, sent, runMacrotasks, tasks } = harness()
    outbox.send(append('A', 5))
    outbox.send(append('B', 5))
    expect(sent).toEqual([])
    expect(tasks).toHaveLength(1)
    runMacrotasks()
    expect(sent.map(shape)).toEqual(['A:append(0,c5,quiet)', 'B:append(0,c5,quiet)'])
    runMacrotasks()
    expect(sent).toHaveLength(2)
  })

  it('drops a held notice that a later append with a commit index at least as high overtakes', () => {
    const { outbox, sent, runMacrotasks } = harness()
    outbox.send(append('A', 5))
    outbox.send(append('A', 5, { quiet: false, entries: [entryAt(6)] }))
    outbox.send(append('B', 5))
    outbox.send(append('B', 6))
    runMacrotasks()
    expect(sent.map(shape)).toEqual(['A:append(1,c5)', 'B:append(0,c6,quiet)'])
  })

  it('keeps the order of the core: a held notice goes before any other message to its follower', () => {
    const { outbox, sent, runMacrotasks } = harness()
    outbox.send(append('A', 5))
    outbox.send({
      type: 'snapshot',
      from: 'L',
      to: 'A',
      term: 3,
      clusterId: 'c',
      index: 9,
      snapshotTerm: 3,
    } as Message)
    // A notice of another term is never replaced by this term's append.
    outbox.send(append('B', 5))
    outbox.send(append('B', 7, { term: 4, quiet: false }))
    runMacrotasks()
    expect(sent.map(shape)).toEqual([
      'A:append(0,c5,quiet)',
      'A:snapshot',
      'B:append(0,c5,quiet)',
      'B:append(0,c7)',
    ])
  })

  it('sends at once to a follower that waits for the commit index of commands it forwarded', () => {
    const { outbox, sent } = harness((follower) => follower === 'A')
    outbox.send(append('A', 5))
    outbox.send(append('B', 5))
    expect(sent.map(shape)).toEqual(['A:append(0,c5,quiet)'])
  })

  it('sends what it holds on flush (closing), and nothing after clear (halted, rejoined)', () => {
    const { outbox, sent, runMacrotasks } = harness()
    outbox.send(append('A', 5))
    outbox.flush()
    expect(sent.map(shape)).toEqual(['A:append(0,c5,quiet)'])
    outbox.send(append('B', 6))
    outbox.clear()
    runMacrotasks()
    expect(sent).toHaveLength(1)
  })
})

import { describe, expect, it } from 'vitest'
import type { Entry } from '../../../src/groups/raft/index.ts'
import { RaftLog } from '../../../src/groups/raft/log.ts'

const cmd = (index: number, term: number): Entry => ({
  index,
  term,
  kind: 'command',
  data: new Uint8Array([index]),
})
const cfg = (index: number, term: number, voters: string[]): Entry => ({
  index,
  term,
  kind: 'config',
  config: { voters },
  clusterId: 'c',
})

/** A log holding entries with the given terms at 1, 2, 3, ... */
function logWith(...terms: number[]): RaftLog {
  const log = new RaftLog()
  log.append(terms.map((term, i) => (i === 0 ? cfg(1, term, ['a']) : cmd(i + 1, term))))
  return log
}

describe('RaftLog', () => {
  it('answers terms, slices and compares logs', () => {
    const log = logWith(1, 1, 2, 3)
    expect(log.lastIndex()).toBe(4)
    expect(log.lastTerm()).toBe(3)
    expect(log.term(0)).toBe(0)
    expect(log.term(3)).toBe(2)
    expect(log.term(5)).toBeUndefined()
    expect(log.slice(2, 10).map((e) => e.index)).toEqual([2, 3, 4])
    expect(log.slice(2, 10, 2).map((e) => e.index)).toEqual([2, 3])
    expect(log.compare(3, 4)).toBe(0)
    expect(log.compare(3, 5)).toBe(1)
    expect(log.compare(4, 1)).toBe(1)
    expect(log.compare(2, 9)).toBe(-1)
  })

  it('appends from a leader, keeping what matches and truncating at the first conflict', () => {
    const log = logWith(1, 1, 2, 2, 2)
    log.takeUnpersisted()
    expect(log.maybeAppend(1, 1, [cmd(2, 1), cmd(3, 2)])).toBe(3)
    expect(log.lastIndex()).toBe(5) // a shorter message never truncates matching entries
    expect(log.hasUnpersisted()).toBe(false)
    expect(log.maybeAppend(2, 1, [cmd(3, 3), cmd(4, 3)])).toBe(4)
    expect(log.lastIndex()).toBe(4)
    expect(log.term(3)).toBe(3)
    const out = log.takeUnpersisted()
    expect(out.truncateFrom).toBe(3)
    expect(out.entries.map((e) => e.index)).toEqual([3, 4])
    expect(log.maybeAppend(4, 2, [])).toBe(-1) // prev does not match
    expect(log.maybeAppend(9, 3, [])).toBe(-1) // prev missing
  })

  it('refuses to truncate committed entries', () => {
    const log = logWith(1, 1, 1)
    log.commitTo(3)
    expect(() => log.maybeAppend(1, 1, [cmd(2, 2)])).toThrow(/committed/)
  })

  it('finds where to probe next with a binary search on terms', () => {
    const log = logWith(1, 1, 2, 2, 2, 4, 4, 5)
    expect(log.findConflictByTerm(8, 5)).toBe(8)
    expect(log.findConflictByTerm(8, 4)).toBe(7)
    expect(log.findConflictByTerm(8, 3)).toBe(5)
    expect(log.findConflictByTerm(5, 1)).toBe(2)
    expect(log.findConflictByTerm(8, 0)).toBe(0)
    expect(log.findConflictByTerm(20, 2)).toBe(5)
  })

  it('hands entries out for persisting and committed entries for applying, once each', () => {
    const log = logWith(1, 1, 1)
    expect(log.takeUnpersisted().entries.length).toBe(3)
    expect(log.hasUnpersisted()).toBe(false)
    log.commitTo(2)
    expect(log.takeUnapplied().map((e) => e.index)).toEqual([1, 2])
    expect(log.hasUnapplied()).toBe(false)
    log.appliedTo(2)
    log.commitTo(3)
    expect(log.takeUnapplied().map((e) => e.index)).toEqual([3])
    expect(() => log.commitTo(4)).toThrow(/past the log end/)
  })

  it('tracks the voter set in force through appends, truncations, compaction and restore', () => {
    const log = new RaftLog()
    log.append([cfg(1, 1, ['a']), cmd(2, 1), cfg(3, 1, ['a', 'b']), cmd(4, 1)])
    expect(log.config().voters).toEqual(['a', 'b'])
    expect(log.configAt(2).voters).toEqual(['a'])
    // A config entry that is overwritten stops being in force (Raft dissertation §4.1).
    log.maybeAppend(4, 1, [cfg(5, 2, ['a', 'b', 'c'])])
    expect(log.config().voters).toEqual(['a', 'b', 'c'])
    log.maybeAppend(4, 1, [cmd(5, 3)])
    expect(log.config().voters).toEqual(['a', 'b'])
    log.commitTo(5)
    log.takeUnapplied()
    log.appliedTo(5)
    const meta = log.compact(4)
    expect(meta).toEqual({ index: 4, term: 1, config: { voters: ['a', 'b'] }, clusterId: 'c' })
    expect(log.firstIndex()).toBe(5)
    expect(log.term(4)).toBe(1)
    expect(log.term(3)).toBeUndefined()
    expect(log.config().voters).toEqual(['a', 'b'])
    expect(() => log.compact(6)).toThrow(/applied/)
    log.restore({ index: 9, term: 4, config: { voters: ['x'] }, clusterId: 'c' }, 'c')
    expect(log.lastIndex()).toBe(9)
    expect(log.committed).toBe(9)
    expect(log.config().voters).toEqual(['x'])
  })

  it('keeps a suffix that continues a restored snapshot and hands it out again', () => {
    const log = logWith(1, 1, 2, 2, 2)
    log.takeUnpersisted()
    log.restore({ index: 3, term: 2, config: { voters: ['a'] } }, 'c')
    expect(log.firstIndex()).toBe(4)
    expect(log.lastIndex()).toBe(5)
    expect(log.takeUnpersisted().entries.map((e) => e.index)).toEqual([4, 5])
    // A snapshot that disagrees with the log replaces all of it.
    log.restore({ index: 4, term: 9, config: { voters: ['a'] } }, 'c')
    expect(log.lastIndex()).toBe(4)
  })

  it('restarts from persisted state, skipping entries the snapshot covers', () => {
    const log = new RaftLog({
      hardState: { term: 3, vote: null, commit: 7 },
      snapshot: { index: 4, term: 2, config: { voters: ['a', 'b'] }, clusterId: 'c' },
      entries: [cmd(3, 2), cmd(4, 2), cmd(5, 3), cmd(6, 3)],
    })
    expect(log.firstIndex()).toBe(5)
    expect(log.lastIndex()).toBe(6)
    expect(log.committed).toBe(6) // never past the log end
    expect(log.applied).toBe(4)
    expect(log.takeUnapplied().map((e) => e.index)).toEqual([5, 6])
    expect(log.config()).toMatchObject({ voters: ['a', 'b'], clusterId: 'c' })
    expect(
      () => new RaftLog({ hardState: { term: 1, vote: null, commit: 0 }, entries: [cmd(1, 1), cmd(3, 1)] }),
    ).toThrow(/contiguous/)
  })
})

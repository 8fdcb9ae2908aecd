/**
 * One writer per directory, across processes: a `LOCK` file created exclusively, holding who took it
 * (pid, host, boot id and process start time). Node has no flock, so liveness is checked instead: a lock
 * whose process is gone from this host (no such pid, a zombie, or the pid reused by a later process) is
 * taken over at once, so a node killed with SIGKILL restarts without waiting for a timeout. A lock from
 * another host cannot be checked and is refused; the error says which file to delete.
 */
import { readFileSync } from 'node:fs'
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { delay } from '../../src/primitives/abort.ts'
import { DataDirLockedError } from '../../src/primitives/errors.ts'

export const LOCK_FILE = 'LOCK'
const HELD = Symbol.for('mosaik.dirLocks')
const TAKEOVER_FILE = 'LOCK.takeover'

export interface DirLock {
  readonly dir: string
  /** Deletes the lock file (if it is still ours); idempotent. */
  release(): Promise<void>
}

interface Holder {
  pid: number
  host: string
  boot?: string
  start?: string
}

/**
 * Directories locked in this process, shared by every copy of this module (a bundle and its source);
 * another realm of the process (a worker) is seen through the file.
 */
const registry = globalThis as { [HELD]?: Set<string> }
registry[HELD] ??= new Set<string>()
const held = registry[HELD]

/** Locks `dir` (created if needed) for this process, or throws DataDirLockedError naming the holder. */
export async function lockDir(dir: string, what = 'directory'): Promise<DirLock> {
  const path = resolve(dir)
  if (held.has(path)) throw locked(path, self(), what)
  held.add(path)
  try {
    await mkdir(path, { recursive: true })
    await acquire(path, what)
  } catch (err) {
    held.delete(path)
    throw err
  }
  let released = false
  return {
    dir: path,
    async release() {
      if (released) return
      released = true
      try {
        const holder = await readHolder(join(path, LOCK_FILE))
        if (holder !== undefined && sameProcess(holder, self()))
          await rm(join(path, LOCK_FILE), { force: true })
      } finally {
        held.delete(path)
      }
    },
  }
}

async function acquire(dir: string, what: string): Promise<void> {
  const me = self()
  const lockPath = join(dir, LOCK_FILE)
  let unreadable = 0
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await createExclusive(lockPath, me)) return
    const holder = await readHolder(lockPath)
    if (holder === undefined) continue // released meanwhile
    if (holder.pid === 0 && unreadable++ < 2) {
      await delay(50) // being written (no hard links), or left empty by a crash: look again
      continue
    }
    if (alive(holder)) throw locked(dir, holder, what)
    // Stale: delete it under a takeover guard, so that two takers cannot delete each other's new lock.
    const guard = join(dir, TAKEOVER_FILE)
    if (!(await createExclusive(guard, me))) {
      const other = await readHolder(guard)
      if (other !== undefined && !alive(other)) await rm(guard, { force: true })
      await delay(10)
      continue
    }
    try {
      const again = await readHolder(lockPath)
      if (again !== undefined && sameProcess(again, holder)) await rm(lockPath, { force: true })
    } finally {
      await rm(guard, { force: true })
    }
  }
  const holder = await readHolder(lockPath)
  throw locked(dir, holder ?? { pid: 0, host: 'unknown' }, what)
}

/** Creates `path` holding `holder`, atomically and only if it does not exist. */
async function createExclusive(path: string, holder: Holder): Promise<boolean> {
  // written whole under a private name, then linked: the lock never exists half-written
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
  await writeFile(tmp, JSON.stringify(holder))
  try {
    await link(tmp, path)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return false
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw err
  } finally {
    await rm(tmp, { force: true })
  }
  // a file system without hard links: readers wait out the moment the file is empty
  try {
    await writeFile(path, JSON.stringify(holder), { flag: 'wx' })
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
}

async function readHolder(path: string): Promise<Holder | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    const h = JSON.parse(text) as Holder
    if (Number.isSafeInteger(h.pid) && h.pid > 0 && typeof h.host === 'string') return h
  } catch {}
  // no owner to check: empty after a power loss, or being written where hard links are missing
  return { pid: 0, host: '' }
}

/** Whether the process that wrote `h` may still run. Unknown means yes. */
function alive(h: Holder): boolean {
  const me = self()
  if (h.pid === 0) return false
  if (h.host !== me.host) return true
  if (h.boot !== undefined && me.boot !== undefined && h.boot !== me.boot) return false // rebooted since
  if (h.pid === me.pid) return h.start === undefined || h.start === me.start
  try {
    process.kill(h.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false
  }
  const stat = procStat(h.pid)
  if (stat === undefined) return true
  // a killed child not yet reaped by its parent is a zombie: it holds nothing
  if (stat.state === 'Z' || stat.state === 'X') return false
  return h.start === undefined || h.start === stat.start
}

function sameProcess(a: Holder, b: Holder): boolean {
  return a.pid === b.pid && a.host === b.host && a.start === b.start && a.boot === b.boot
}

let me: Holder | undefined

function self(): Holder {
  if (me === undefined) {
    me = { pid: process.pid, host: hostname() }
    const boot = readProc('/proc/sys/kernel/random/boot_id')?.trim()
    if (boot) me.boot = boot
    const start = procStat(process.pid)?.start
    if (start !== undefined) me.start = start
  }
  return me
}

/** State and start time (clock ticks since boot) of `pid`, from /proc on Linux. */
function procStat(pid: number): { state: string; start: string } | undefined {
  const text = readProc(`/proc/${pid}/stat`)
  if (text === undefined) return undefined
  // the command name in parentheses may hold spaces: fields are counted after its closing parenthesis
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const state = fields[0]
  const start = fields[19]
  return state === undefined || start === undefined ? undefined : { state, start }
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

function locked(dir: string, h: Holder, what: string): DataDirLockedError {
  const here = h.pid === process.pid && h.host === hostname()
  const message = here
    ? `the ${what} ${dir} is already open in this process (close the Network or store using it first)`
    : h.pid === 0
      ? // No holder could be read: the lock file stayed empty or unreadable, or others kept taking it.
        `the ${what} ${dir} could not be locked: its lock file names no process (empty or unreadable), ` +
        `or other processes kept taking it; if no process uses it, delete ${join(dir, LOCK_FILE)}`
      : `the ${what} ${dir} is in use by process ${h.pid} on ${h.host}; ` +
        `if that process no longer uses it, delete ${join(dir, LOCK_FILE)}`
  return new DataDirLockedError(dir, h.pid, h.host, message)
}

/**
 * A group member in its own OS process (usually inside a network namespace, see netns.ts) joining one
 * register group over QUIC, with a client that starts as soon as `join()` returns: it writes a unique
 * value (`h<host>-<n>`) with `execute`, then reads with a strong query, over and over, recording every
 * operation with wall-clock invoke and complete times (Date.now(): one clock for every process on the
 * machine, so histories merge; ms resolution, so equal times must be read as concurrent).
 *
 * Usage: node tests/support/register-process.ts '<json options>' (see child.ts for the protocol).
 * Options: network, secret, host (its number), listen (an IPv4 address) and port (default 0: any),
 * bootstrap, dataDir, consensus.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { GroupKey, Network } from '../../platform/node/index.ts'
import { linkSignals } from '../../src/primitives/abort.ts'
import { Register } from '../groups/support.ts'
import { serve } from './child.ts'

/** One client operation as recorded. `complete` is absent while it is still in flight. */
export interface RecordedOp {
  host: number
  kind: 'write' | 'read'
  /** The value written, or the value a read returned. */
  value?: string | null
  invoke: number
  complete?: number
  outcome: 'ok' | 'failed' | 'pending'
  /** Write: the log index it was acknowledged at. Read: the applied index it was served at. */
  index?: number
  /** `code: message` of the error a failed call threw. */
  error?: string
}

const options = JSON.parse(process.argv[2] ?? '{}')
const host = Number(options.host)
/** A failed call is retried after this, so a client never spins on a group that fails at once. */
const RETRY_MS = 50

const net = await Network.create({
  network: options.network,
  bootstrap: options.bootstrap ?? [],
  listen: [`/ip4/${options.listen ?? '127.0.0.1'}/udp/${options.port ?? 0}/quic-v1`],
  dataDir: options.dataDir,
})
const group = await net.groups.join({
  key: GroupKey.fromSecret(options.secret ?? 'netns-register'),
  stateMachine: new Register(),
  consensus: options.consensus ?? {},
})
const joinedAt = Date.now()

function describeError(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string }
  return `${e.code ?? e.name ?? 'Error'}: ${e.message ?? String(err)}`
}

const ops: RecordedOp[] = []
const stop = new AbortController()
/** Resolves with the time of this client's first acknowledged write. */
const firstAck = Promise.withResolvers<number>()

async function client(): Promise<void> {
  let n = 0
  while (!stop.signal.aborted) {
    // No leader known: a user would wait for one rather than send into the void.
    if (group.leader === undefined) {
      const linked = linkSignals(stop.signal, AbortSignal.timeout(1000))
      await group.when.leaderElected({ signal: linked.signal }).catch(() => {})
      linked.clear()
      continue
    }
    const value = `h${host}-${++n}`
    const write: RecordedOp = { host, kind: 'write', value, invoke: Date.now(), outcome: 'pending' }
    ops.push(write)
    try {
      write.index = await group.execute({ set: value })
      write.complete = Date.now()
      write.outcome = 'ok'
      firstAck.resolve(write.complete)
    } catch (err) {
      write.complete = Date.now()
      write.outcome = 'failed'
      write.error = describeError(err)
      await delay(RETRY_MS)
    }
    if (stop.signal.aborted) break
    const read: RecordedOp = { host, kind: 'read', invoke: Date.now(), outcome: 'pending' }
    ops.push(read)
    try {
      const { result, at } = await group.query('value', 'strong')
      read.complete = Date.now()
      read.outcome = 'ok'
      read.value = result
      read.index = at
    } catch (err) {
      read.complete = Date.now()
      read.outcome = 'failed'
      read.error = describeError(err)
      await delay(RETRY_MS)
    }
  }
}
const running = client()

function status() {
  const s = group.status
  return {
    host,
    peerId: net.peerId,
    role: s.role,
    term: s.term,
    leader: s.leader,
    clusterId: s.clusterId,
    commitIndex: s.commitIndex,
    applied: group.applied,
    voters: s.voters,
    learners: s.learners,
    online: s.online,
    bonds: group.bonds.length,
    value: group.stateMachine.value,
    ops: ops.length,
  }
}

await serve(
  { peerId: net.peerId, addresses: net.addresses, joinedAt },
  {
    async status() {
      return status()
    },
    /** Resolves with the status once this member knows a leader other than `from` (or any, without). */
    async awaitLeader(args) {
      const from = args.from === undefined ? undefined : String(args.from)
      const signal = AbortSignal.timeout(Number(args.timeoutMs ?? 10_000))
      while (group.leader === undefined || group.leader === from) await group.when.leaderChanged({ signal })
      return status()
    },
    /** Resolves with the time of the client's first acknowledged write (load is flowing here). */
    async awaitFirstAck(args) {
      const timeoutMs = Number(args.timeoutMs ?? 30_000)
      let timer: ReturnType<typeof setTimeout> | undefined
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no write acknowledged within ${timeoutMs} ms`)), timeoutMs)
      })
      try {
        return await Promise.race([firstAck.promise, timedOut])
      } finally {
        clearTimeout(timer)
      }
    },
    /** Stops the client and returns its history; a call still in flight after `timeoutMs` stays pending. */
    async stop(args) {
      stop.abort()
      await Promise.race([running, delay(Number(args.timeoutMs ?? 15_000))])
      return { ops, status: status() }
    },
    /** A strong read, retried until one succeeds or `timeoutMs` passes; every attempt is recorded. */
    async finalRead(args) {
      const deadline = Date.now() + Number(args.timeoutMs ?? 20_000)
      const attempts: RecordedOp[] = []
      while (true) {
        const read: RecordedOp = { host, kind: 'read', invoke: Date.now(), outcome: 'pending' }
        attempts.push(read)
        try {
          const { result, at } = await group.query('value', 'strong')
          read.complete = Date.now()
          read.outcome = 'ok'
          read.value = result
          read.index = at
          return { attempts, status: status() }
        } catch (err) {
          read.complete = Date.now()
          read.outcome = 'failed'
          read.error = describeError(err)
          if (Date.now() >= deadline) return { attempts, status: status() }
          await delay(100)
        }
      }
    },
  },
  () => net.close(),
)

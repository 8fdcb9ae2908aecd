/**
 * A macrotask scheduler for the isomorphic core. A caller looping on an awaited SDK call can run
 * entirely in microtasks; work deferred to a macrotask sees the whole burst (stream producers batch it
 * into one write) and lets timers and I/O run in between (the group worker yields this way, so a tight
 * write loop cannot starve heartbeats).
 *
 * Node (and Bun, Deno) have `setImmediate`, which runs right after pending I/O; browsers do not, and
 * a MessageChannel message is the cheapest macrotask there (setTimeout(0) is clamped to 1-4 ms).
 */
import { Fifo } from './fifo.ts'

type Task = () => void

interface ImmediateHost {
  setImmediate?: (fn: () => void) => unknown
}

export const macrotask: (task: Task) => void = pickScheduler()

function pickScheduler(): (task: Task) => void {
  const setImmediateFn = (globalThis as ImmediateHost).setImmediate
  if (typeof setImmediateFn === 'function') return (task) => void setImmediateFn(task)
  if (typeof MessageChannel === 'function') return messageChannelScheduler()
  return (task) => void setTimeout(task, 0)
}

function messageChannelScheduler(): (task: Task) => void {
  const queue = new Fifo<Task>()
  const channel = new MessageChannel()
  channel.port1.onmessage = () => {
    const task = queue.shift()
    if (task) task()
  }
  return (task) => {
    queue.push(task)
    channel.port2.postMessage(null)
  }
}

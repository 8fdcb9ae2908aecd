/**
 * A macrotask scheduler for the isomorphic core. Producers flush their fan-out queues in a macrotask
 * rather than a microtask: a caller looping on `await producer.send(d)` runs entirely in microtasks,
 * so a macrotask flush sees every datum of that burst and writes them in one batch, where a microtask
 * flush would run between two sends and turn each datum into its own transport write.
 *
 * Node (and Bun, Deno) have `setImmediate`, which runs right after pending I/O; browsers do not, and
 * a MessageChannel message is the cheapest macrotask there (setTimeout(0) is clamped to 1-4 ms).
 */
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
  const queue: Task[] = []
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

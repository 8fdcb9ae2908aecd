import type { Preference } from '../../../platform/node/index.ts'
import type { GroupWorker } from '../../../src/groups/worker.ts'
import type { Prng } from '../sim-network.ts'
import type { DiskHandle, SimDisk } from './disk.ts'
import type { ListCommand, ListMachine, ListResult } from './list-machine.ts'
import type { SimRuntime } from './runtime.ts'
import type { SimTransport } from './transport.ts'

/** The worker every simulated member runs. */
export type ListWorker = GroupWorker<ListCommand, 'value', ListResult>

/** One member of the simulated group: its disk outlives its processes (incarnations). */
export interface SimMember {
  readonly id: string
  readonly disk: SimDisk
  readonly prng: Prng
  readonly rate: number
  /** How it takes part in elections (collection readers are observers). */
  preference: Preference
  incarnation: number
  alive: boolean
  everStarted: boolean
  worker: ListWorker | undefined
  machine: ListMachine | undefined
  runtime: SimRuntime | undefined
  transport: SimTransport | undefined
  handle: DiskHandle | undefined
  knows: Set<string>
  /** Resolves when the current incarnation crashes. */
  crashed: Promise<'crashed'>
  crash: () => void
}

/** Group worker simulation: the leader cut off and healed, and one-way links. */
import { simulate } from './run-seeds.ts'

simulate(['leader-partition', 'one-way'])

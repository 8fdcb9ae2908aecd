/** Group worker simulation: everything at once. */
import { simulate } from './run-seeds.ts'

simulate(['chaos'])

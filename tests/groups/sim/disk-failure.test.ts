/** Group worker simulation: members whose disk fails writes stop at once and rejoin after a restart. */
import { simulate } from './run-seeds.ts'

simulate(['disk-failure'])

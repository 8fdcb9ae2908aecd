/** Group worker simulation: observers and reluctant members among voters, under crashes and cuts. */
import { simulate } from './run-seeds.ts'

simulate(['observers'])

/** Group worker simulation: members far behind pull what they missed while members fail under them. */
import { simulate } from './run-seeds.ts'

simulate(['catch-up'])

/** Group worker simulation: small forwarding limits under load and faults; a BUSY write never takes effect. */
import { simulate } from './run-seeds.ts'

simulate(['busy'])

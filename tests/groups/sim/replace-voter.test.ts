/** Group worker simulation: voters down past voterUnreachableMs are replaced under write load. */
import { simulate } from './run-seeds.ts'

simulate(['replace-voter'])

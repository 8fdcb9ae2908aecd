/** Group worker simulation: formation with writes from the first moment, and promotion under load. */
import { simulate } from './run-seeds.ts'

simulate(['staggered', 'promotion'])

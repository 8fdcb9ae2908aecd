/** Group worker simulation: crashes (also mid-install and mid-catch-up) and rival clusters. */
import { simulate } from './run-seeds.ts'

simulate(['crash-restart', 'rival'])

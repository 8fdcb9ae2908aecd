/** Group worker simulation: crashes (also mid-install and mid-catch-up), power losses and rival clusters. */
import { simulate } from './run-seeds.ts'

simulate(['crash-restart', 'power-loss', 'rival'])

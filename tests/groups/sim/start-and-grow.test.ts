/** Group worker simulation, part 1: formation, promotion under load, leader cuts and one-way links. */
import { simulate } from './run-seeds.ts'

simulate(['staggered', 'promotion', 'leader-partition', 'one-way'])

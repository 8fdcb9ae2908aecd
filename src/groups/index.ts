export { Groups, type GroupsOptions } from './groups.ts'

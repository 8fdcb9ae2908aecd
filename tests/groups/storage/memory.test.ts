import { MemoryLogStore } from '../../../src/groups/storage/memory.ts'
import { runLogStoreCompliance } from './log-store-compliance.ts'

runLogStoreCompliance('MemoryLogStore', async () => ({
  open: async () => new MemoryLogStore(),
  cleanup: async () => {},
}))

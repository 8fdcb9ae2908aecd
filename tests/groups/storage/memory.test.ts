import { MemoryLogStore } from '../../../platform/node/index.ts'
import { runLogStoreCompliance } from './log-store-compliance.ts'

runLogStoreCompliance('MemoryLogStore', async () => ({
  open: async () => new MemoryLogStore(),
  cleanup: async () => {},
}))

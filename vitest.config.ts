import { defineConfig } from 'vitest/config'

const timeFactor = Number(process.env.TIME_FACTOR ?? '1') || 1

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts', 'e2e/**/*.spec.ts'],
    exclude: ['tests/bench/**', 'node_modules/**'],
    pool: 'forks',
    testTimeout: 60_000 * timeFactor,
    hookTimeout: 60_000 * timeFactor,
    teardownTimeout: 20_000,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
})

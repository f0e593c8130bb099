import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // one Dawn device per test file; lavapipe is slow on a cold shader cache
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});

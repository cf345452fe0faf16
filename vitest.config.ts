import { defineConfig } from 'vitest/config';

// Unit tests sit beside the code and import workspace packages from source (the
// "keyhold-source" export condition); e2e tests drive built packages as real processes.
export default defineConfig({
  resolve: { conditions: ['keyhold-source'] },
  ssr: { resolve: { conditions: ['keyhold-source'] } },
  test: {
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['packages/*/src/**/*.test.ts'], testTimeout: 30_000 },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['e2e/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});

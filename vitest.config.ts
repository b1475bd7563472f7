import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          sequence: { groupOrder: 0 },
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.int.test.ts', 'node_modules/**'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          // Unit tests run first (group 0), then integration files two at a time.
          sequence: { groupOrder: 1 },
          include: ['test/**/*.int.test.ts'],
          environment: 'node',
          globalSetup: ['test/helpers/global-setup.ts'],
          pool: 'forks',
          // Two cores: two files at once, each with its own database and queue prefix (with
          // three, node processes of the timing-sensitive partition and failover files were
          // starved often enough to miss their deadlines).
          maxWorkers: 2,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        // The fault campaign (npm run test:chaos): destructive, slower, one file at a time.
        test: {
          name: 'chaos',
          sequence: { groupOrder: 2 },
          include: ['test/chaos/**/*.chaos.ts'],
          environment: 'node',
          globalSetup: ['test/helpers/global-setup.ts'],
          pool: 'forks',
          maxWorkers: 1,
          testTimeout: 300_000,
          hookTimeout: 120_000,
        },
      },
      {
        // The soak (npm run test:soak): one long run, minutes by default.
        test: {
          name: 'soak',
          sequence: { groupOrder: 3 },
          include: ['test/soak/**/*.soak.ts'],
          environment: 'node',
          globalSetup: ['test/helpers/global-setup.ts'],
          pool: 'forks',
          maxWorkers: 1,
          testTimeout: 3_600_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});

import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The unit tier alone, for Stryker (npm run test:mutation, see docs/testing.md): the
// top-level config defines several projects and the vitest runner would run them all,
// integration included.
export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/**/*.int.test.ts', 'node_modules/**', '.stryker-tmp/**'],
    environment: 'node',
    // Lets the one scale test in test/audit/chain.test.ts step aside (see its comment).
    env: { MEMFED_MUTATION: '1' },
  },
});

import { defineConfig } from 'drizzle-kit';

// Used only by `npm run db:generate`; the runtime migrator reads src/db/migrations directly.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './src/db/migrations',
});

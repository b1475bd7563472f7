import postgres from 'postgres';
import { inject } from 'vitest';
import { createDatabase, type Database } from '../../src/db/client.js';
import { PG_ADMIN_URL, dbUrl } from './env.js';

let counter = 0;

export interface TestDatabase {
  name: string;
  url: string;
  database: Database;
  drop(): Promise<void>;
}

/** A fresh database cloned from the migrated template (one per test file, or per node). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const template = inject('templateDb');
  const name = `memfed_t_${inject('testRun')}_${process.pid}_${counter++}`;
  const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    // Cloning needs the template idle; retry briefly if another clone is mid-flight.
    for (let i = 0; ; i++) {
      try {
        await admin.unsafe(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
        break;
      } catch (err) {
        if (i > 50 || (err as { code?: string }).code !== '55006') throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    await admin.end();
  }
  const url = dbUrl(name);
  const database = createDatabase(url, { max: 5 });
  return {
    name,
    url,
    database,
    async drop() {
      await database.close();
      const a = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
      await a.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {});
      await a.end();
    },
  };
}

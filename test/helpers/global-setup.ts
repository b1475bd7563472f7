import { execFileSync } from 'node:child_process';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { runMigrations } from '../../src/db/migrate.js';
import { PG_ADMIN_URL, dbUrl } from './env.js';

/**
 * Migrates one template database per test run; every test file clones it
 * (CREATE DATABASE .. TEMPLATE), which takes milliseconds instead of a migration.
 */
export default async function setup(project: TestProject) {
  // Tests that spawn `memfed` run the compiled build, as production does: bring it up to date.
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  const run = `${process.pid}_${Date.now().toString(36)}`;
  const template = `memfed_tpl_${run}`;
  const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
  // Leftovers of crashed runs older than an hour.
  const stale = await admin`SELECT datname FROM pg_database WHERE (datname LIKE 'memfed_tpl_%' OR datname LIKE 'memfed_t_%') AND datname NOT LIKE ${`%${run}%`}`;
  for (const { datname } of stale) {
    const age = await admin`SELECT (now() - pg_stat_file('base/' || oid || '/PG_VERSION').modification) > interval '1 hour' AS old FROM pg_database WHERE datname = ${datname}`.catch(() => [{ old: false }]);
    if (age[0]?.old) await admin.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => {});
  }
  await admin.unsafe(`CREATE DATABASE "${template}"`);
  await runMigrations(dbUrl(template));
  project.provide('templateDb', template);
  project.provide('testRun', run);
  await admin.end();
  return async () => {
    const a = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
    const mine = await a`SELECT datname FROM pg_database WHERE datname LIKE ${`%${run}%`}`;
    for (const { datname } of mine) await a.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => {});
    await a.end();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    templateDb: string;
    testRun: string;
  }
}

import { describe, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { nemesisDurationMs, nemesisSeed, runNemesis } from '../helpers/nemesis/runner.js';
import { expectCleanNemesisRun } from '../helpers/nemesis/expect-clean.js';
import { privatePostgresAvailable } from '../helpers/private-postgres.js';
import { skipNote } from '../helpers/skip.js';

/*
 * CI smoke subset of the nemesis (the full run: test/chaos/nemesis.chaos.ts): 45 s of
 * overlapping faults under a fixed seed, so CI runs the same schedule every time
 * (NEMESIS_SEED / NEMESIS_DURATION_S still override it for a local replay).
 */

const SEED = nemesisSeed(process.env.NEMESIS_SEED ? undefined : 20261206);
const DURATION_MS = nemesisDurationMs(45);

// Each node has a Redis and a Postgres cluster of its own (restarted by the nemesis).
const missing = !privatePostgresAvailable() ? 'no Postgres 15 binaries (initdb, postgres) for private clusters' : spawnSync('redis-server', ['--version']).status !== 0 ? 'no redis-server for private Redis instances' : null;

describe('nemesis smoke', () => {
  it.skipIf(missing !== null)(`seed ${SEED}: overlapping faults for ${DURATION_MS / 1000} s; nothing lost, nothing unexpected, no duplicate applies, field-level agreement${skipNote(missing !== null, missing ?? '')}`, async () => {
    const r = await runNemesis({
      name: 'nemesis-smoke',
      seed: SEED,
      durationMs: DURATION_MS,
      // Half the client lanes of the full run: other integration files run beside it on two cores.
      concurrency: 5,
      // An unplanned process exit is logged here and a finding in the full run
      // (nemesis.chaos.ts); the crash under pg-terminate that made it so is fixed
      // (docs/reliability.md, "Issues the nemesis found").
      exitsAreFindings: false,
      minimums: { acked: 30, samples: 20 },
    });
    expectCleanNemesisRun(r);
  }, DURATION_MS + 420_000);
});

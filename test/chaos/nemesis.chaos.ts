import { describe, it } from 'vitest';
import { nemesisDurationMs, runNemesis } from '../helpers/nemesis/runner.js';
import { expectCleanNemesisRun } from '../helpers/nemesis/expect-clean.js';

/*
 * The nemesis (docs/reliability.md): three nodes of real api + worker processes, each
 * with its own Redis and Postgres, a mixed workload on every node (W=2 and W=1) for at
 * least three minutes under a seeded schedule of overlapping faults. NEMESIS_SEED replays
 * a schedule, NEMESIS_DURATION_S changes the duration, NEMESIS_KINDS the fault kinds.
 */

const DURATION_MS = nemesisDurationMs(180);

describe('nemesis: randomized overlapping faults under a mixed workload', () => {
  it('loses nothing, makes nothing up, applies nothing twice, and every node ends on the same documents, field for field', async () => {
    const r = await runNemesis({ name: 'nemesis', durationMs: DURATION_MS, minimums: { acked: 200, samples: 100 } });
    // Not a quiet run: at least five kinds of fault, several at once.
    expectCleanNemesisRun(r);
  }, DURATION_MS + 900_000);
});

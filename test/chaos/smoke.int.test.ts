import { describe, expect, it } from 'vitest';
import { OPS, problems, type Report } from '../helpers/checker.js';
import { dropResponseScenario, resetsScenario } from './scenarios.js';

/*
 * CI smoke subset of the fault campaign (the full campaign: npm run test:chaos): the two
 * cheapest scenarios end to end, with the history checker, on in-process nodes, under a
 * mixed workload (creates, updates, deletes, bulk creates, re-creates of deleted ids).
 */

/** The workload really was mixed: every kind of operation took effect at least once. */
function expectMixed(report: Report): void {
  for (const op of OPS) {
    const o = report.byOp[op];
    expect(o.acked + o.committed + o.conflict, `${op} operations that took effect: ${JSON.stringify(report.byOp)}`).toBeGreaterThan(0);
  }
}

describe('fault campaign smoke', () => {
  it('(a) 30% connection resets into one peer during a mixed burst: nothing lost, no resurrection, every document converges', async () => {
    const { report, stats } = await resetsScenario({ writes: 60, name: 'smoke-resets' });
    expect(stats.resets).toBeGreaterThan(0);
    expectMixed(report);
    expect(problems(report, { acked: 15, samples: 3 })).toEqual([]);
  }, 60_000);

  it('(b) responses lost after the peer committed, mixed burst: no duplicate applies, every document converges', async () => {
    const { report, stats } = await dropResponseScenario({ writes: 50, name: 'smoke-drop-response' });
    // Lost acks of pushes, not just of catch-up pulls.
    expect(stats.faultsByRoute['drop POST /api/v1/sync/push'] ?? 0).toBeGreaterThan(0);
    expectMixed(report);
    expect(problems(report, { acked: 12, samples: 3 })).toEqual([]);
  }, 60_000);
});

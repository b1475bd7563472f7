import { describe, expect, it } from 'vitest';
import { problems } from '../helpers/checker.js';
import { dropResponseScenario, resetsScenario } from './scenarios.js';

/*
 * CI smoke subset of the fault campaign (the full campaign: npm run test:chaos): the two
 * cheapest scenarios end to end, with the set checker, on in-process nodes.
 */
describe('fault campaign smoke', () => {
  it('(a) 30% connection resets into one peer during a write burst: nothing lost, no duplicates', async () => {
    const { report, stats } = await resetsScenario({ writes: 45, name: 'smoke-resets' });
    expect(stats.resets).toBeGreaterThan(0);
    expect(problems(report)).toEqual([]);
  }, 60_000);

  it('(b) responses lost after the peer committed: no duplicate applies, converges', async () => {
    const { report, stats } = await dropResponseScenario({ writes: 30, name: 'smoke-drop-response' });
    // Lost acks of pushes, not just of catch-up pulls.
    expect(stats.faultsByRoute['drop POST /api/v1/sync/push'] ?? 0).toBeGreaterThan(0);
    expect(problems(report)).toEqual([]);
  }, 60_000);
});

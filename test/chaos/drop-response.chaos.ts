import { describe, expect, it } from 'vitest';
import { problems } from '../helpers/checker.js';
import { dropResponseScenario } from './scenarios.js';

describe('(b) response lost after the peer committed', () => {
  it('re-sent pushes are LWW no-ops on the peer (one apply per version) and every write converges', async () => {
    const { report, stats } = await dropResponseScenario({ writes: 200, fraction: 0.5, concurrency: 6, name: 'drop-response-50pct' });
    // Lost acks of pushes, not just of catch-up pulls.
    expect(stats.faultsByRoute['drop POST /api/v1/sync/push'] ?? 0).toBeGreaterThan(0);
    expect(report.outcomes.unknown).toBe(0);
    // c applied rows whose acks were lost, then got them again: still one feed row each.
    const c = report.nodes.find((n) => n.node === 'c')!;
    expect(c.duplicateApplies).toEqual([]);
    expect(problems(report, { acked: 100, samples: 10 })).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { problems } from '../helpers/checker.js';
import { resetsScenario } from './scenarios.js';

describe('(a) peer behind a proxy resetting 30% of connections', () => {
  it('a mixed burst over three nodes loses nothing, duplicates nothing, and converges once healed', async () => {
    const { report, stats } = await resetsScenario({ writes: 300, fraction: 0.3, concurrency: 8, name: 'resets-30pct' });
    // The fault really fired, on a real share of the exchanges.
    expect(stats.resets).toBeGreaterThan(0);
    expect(stats.resets / stats.exchanges).toBeGreaterThan(0.1);
    expect(stats.faultsByRoute['reset POST /api/v1/sync/push'] ?? 0).toBeGreaterThan(0);
    // Every operation got a definite answer (W=2 holds with a and b).
    expect(report.outcomes.unknown).toBe(0);
    expect(problems(report, { acked: 150, samples: 10 })).toEqual([]);
  });
});

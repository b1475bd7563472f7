import { describe, expect, it } from 'vitest';
import { openLoop, type Outcome } from './open-loop.js';

describe('open-loop load driver', () => {
  it('starts operations spread over the run, not as a burst at its start', async () => {
    const starts: number[] = [];
    const t0 = performance.now();
    await openLoop(1, 200, async () => {
      starts.push(performance.now() - t0);
      return 'ok';
    });
    expect(starts).toHaveLength(200);
    // Timers fire late, never early: however loaded the machine, operation i starts no
    // sooner than i / rate. A per-second burst would start all 200 at once.
    expect(starts.filter((s) => s < 100).length).toBeLessThanOrEqual(25);
    expect(Math.max(...starts)).toBeGreaterThanOrEqual(990);
  });

  it('counts latency from each due time, so operations that could not even start during a stall are charged for it', async () => {
    let first = true;
    const r = await openLoop(1, 100, async () => {
      if (first) {
        first = false;
        // The process itself is stalled for 300 ms: nothing due meanwhile can start.
        const until = performance.now() + 300;
        while (performance.now() < until);
      }
      return 'ok';
    });
    // About 30 of 100 were due during the stall; each operation is instant once started,
    // so a driver timing from the start of each would see nothing above a few ms.
    expect(r.requests).toBe(100);
    expect(r.p99).toBeGreaterThan(150);
  });

  it('counts non-2xx answers and failures apart, and keeps failures out of the latencies', async () => {
    let i = 0;
    const r = await openLoop(0.5, 100, async (): Promise<Outcome> => {
      i++;
      if (i % 10 === 0) throw new Error('refused');
      return i % 5 === 0 ? 'non2xx' : 'ok';
    });
    expect(r.requests).toBe(50);
    expect(r.errors).toBe(5);
    expect(r.non2xx).toBe(5);
  });
});

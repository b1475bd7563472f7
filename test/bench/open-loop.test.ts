import { describe, expect, it } from 'vitest';
import { openLoop, type Outcome } from './open-loop.js';

describe('open-loop load driver', () => {
  it('starts operations at evenly spaced times, not as a burst at the start of each second', async () => {
    const starts: number[] = [];
    const t0 = performance.now();
    await openLoop(1, 200, async () => {
      starts.push(performance.now() - t0);
      return 'ok';
    });
    expect(starts).toHaveLength(200);
    // 20 due per 100 ms; a per-second burst would put all 200 in the first window. (Bounds
    // loose enough for a loaded machine, whose timers fire late.)
    const windows = Array.from({ length: 10 }, (_, w) => starts.filter((s) => s >= w * 100 && s < (w + 1) * 100).length);
    expect(Math.max(...windows)).toBeLessThan(100);
    expect(windows.filter((n) => n >= 5).length).toBeGreaterThanOrEqual(7);
  });

  it('counts latency from each due time, so a stall is charged to everything due during it', async () => {
    const t0 = performance.now();
    // Nothing finishes before 300 ms: operations due then wait, as behind a stalled server.
    const gate = new Promise<void>((r) => setTimeout(r, 300));
    const r = await openLoop(1, 100, async () => {
      if (performance.now() - t0 < 300) await gate;
      return 'ok';
    });
    // About 30 of 100 were due in the stall; the first waited about 300 ms.
    expect(r.requests).toBe(100);
    expect(r.p99).toBeGreaterThan(200);
  });

  it('counts non-2xx answers and failures apart', async () => {
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

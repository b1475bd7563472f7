import { afterEach, describe, expect, it, vi } from 'vitest';
import { burstWindow, type BurstSummary } from '../src/burst-window.js';

afterEach(() => vi.useRealTimers());

describe('burstWindow', () => {
  it('passes the burst of each key, counts the rest, and reports them once per window', () => {
    vi.useFakeTimers();
    const summaries: Array<BurstSummary<{ who: string }>> = [];
    const w = burstWindow<{ who: string }>({ burst: 2, windowMs: 1000 }, (s) => summaries.push(s), { sampleOf: (e) => e.who, sampleMax: 2 });
    const passed = ['a', 'b', 'c', 'd', 'e'].map((who) => w.admit('tag1', { who }));
    expect(passed).toEqual([true, true, false, false, false]);
    expect(w.admit('tag2', { who: 'x' })).toBe(true);
    vi.advanceTimersByTime(1000);
    expect(summaries).toEqual([{ key: 'tag1', first: { who: 'a' }, suppressed: 3, sample: ['c', 'd'] }]);
    // A new window: the burst is fresh again, and a quiet key reports nothing.
    expect(w.admit('tag1', { who: 'f' })).toBe(true);
    vi.advanceTimersByTime(1000);
    expect(summaries).toHaveLength(1);
    w.stop();
  });

  it('stop() reports what the open window held back', () => {
    const summaries: Array<BurstSummary<number>> = [];
    const w = burstWindow<number>({ burst: 1, windowMs: 60_000 }, (s) => summaries.push(s));
    w.admit('k', 1);
    w.admit('k', 2);
    w.stop();
    expect(summaries).toEqual([{ key: 'k', first: 1, suppressed: 1, sample: [] }]);
  });
});

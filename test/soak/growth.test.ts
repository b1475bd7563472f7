import { describe, expect, it } from 'vitest';
import { DEFAULT_BOUNDS, judgeSeries, median, slope, type ResourceSample } from '../helpers/growth.js';

const series = (minutes: number, rssMb: (min: number) => number, fds: (min: number) => number = () => 30): ResourceSample[] =>
  Array.from({ length: minutes * 12 + 1 }, (_, i) => {
    const min = i / 12;
    return { t: Math.round(min * 60_000), rssKb: Math.round(rssMb(min) * 1024), fds: fds(min) };
  });

describe('soak growth judgement', () => {
  it('computes medians and least-squares slopes', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(slope([[0, 1], [1, 3], [2, 5]])).toBeCloseTo(2);
    expect(slope([[1, 1]])).toBeNaN();
  });

  it('passes a flat series with noise and a start-up climb inside the warm-up', () => {
    const f = judgeSeries('flat', series(10, (m) => (m < 1 ? 60 + 40 * m : 100 + Math.sin(m * 7) * 3)));
    expect(f.judged).toBe(true);
    expect(f.problems).toEqual([]);
    expect(f.rssMaxMb).toBeGreaterThan(100);
  });

  it('fails a steady leak of 4 MB/min by its slope and its growth', () => {
    const f = judgeSeries('leak', series(10, (m) => 100 + 4 * m));
    expect(f.slopeMbPerMin).toBeCloseTo(4, 1);
    expect(f.problems.join('\n')).toMatch(/grows 4(\.\d+)? MB\/min/);
    expect(f.problems.join('\n')).toMatch(/above the first minute/);
  });

  it('fails an fd leak even when RSS is flat', () => {
    const f = judgeSeries('fds', series(10, () => 100, (m) => 30 + Math.floor(m * 5)));
    expect(f.problems).toEqual([expect.stringMatching(/open fds grew by \d+/)]);
  });

  it('reports a short series (a process restarted late by a fault) without judging it', () => {
    const f = judgeSeries('short', series(3, (m) => 100 + 10 * m), DEFAULT_BOUNDS);
    expect(f.judged).toBe(false);
    expect(f.problems).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { ALL_KINDS, DEFAULT_KINDS, kindsNamed } from '../helpers/nemesis/kinds.js';
import { makeSchedule, maxOverlap } from '../helpers/nemesis/schedule.js';

const nodes = ['a', 'b', 'c'];

describe('nemesis schedule', () => {
  it('the same seed gives the same schedule; another seed another one', () => {
    const one = makeSchedule({ seed: 42, durationMs: 180_000, nodes, kinds: DEFAULT_KINDS });
    expect(makeSchedule({ seed: 42, durationMs: 180_000, nodes, kinds: DEFAULT_KINDS })).toEqual(one);
    expect(makeSchedule({ seed: 43, durationMs: 180_000, nodes, kinds: DEFAULT_KINDS })).not.toEqual(one);
  });

  it('never puts two faults on one resource at once, at most three on together, all healed before the tail', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const steps = makeSchedule({ seed, durationMs: 120_000, nodes, kinds: DEFAULT_KINDS });
      expect(maxOverlap(steps)).toBeLessThanOrEqual(3);
      for (const s of steps) {
        expect(s.until).toBeLessThanOrEqual(117_000);
        expect(s.until).toBeGreaterThan(s.at);
        for (const o of steps) {
          if (o === s || o.at >= s.until || o.until <= s.at) continue;
          expect(o.resources.filter((r) => s.resources.includes(r)), `#${s.index} and #${o.index} (seed ${seed})`).toEqual([]);
        }
      }
    }
  });

  it('three minutes interleave many kinds, several at once', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const steps = makeSchedule({ seed, durationMs: 180_000, nodes, kinds: DEFAULT_KINDS });
      expect(new Set(steps.map((s) => s.kind)).size).toBeGreaterThanOrEqual(8);
      expect(maxOverlap(steps)).toBeGreaterThanOrEqual(2);
    }
  });

  it('kinds by name: unknown names are refused; clock skew is opt-in', () => {
    expect(kindsNamed('pg-restart,partition').map((k) => k.name)).toEqual(['pg-restart', 'partition']);
    expect(() => kindsNamed('pg-restart,nope')).toThrow(/unknown kind\(s\) nope/);
    expect(DEFAULT_KINDS.map((k) => k.name)).not.toContain('clock-skew');
    expect(ALL_KINDS.map((k) => k.name)).toContain('clock-skew');
  });
});

import { describe, expect, it } from 'vitest';
import { compileGlob } from '../src/glob.js';
import { prng } from './helpers/prng.js';

/**
 * The RegExp reading of a glob that governance used before the linear matcher, kept here
 * as the oracle: same semantics, only its running time differs.
 */
function regexOracle(glob: string): RegExp {
  const re = glob
    .split('**')
    .map((part) => part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*'))
    .join('.*');
  return new RegExp(`^${re}$`, 's');
}


const pick = (r: () => number, alphabet: string, max: number) => {
  let s = '';
  const n = Math.floor(r() * (max + 1));
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(r() * alphabet.length)];
  return s;
};

describe('compileGlob', () => {
  it('agrees with the RegExp reading on 20,000 random small globs and namespaces', () => {
    const r = prng(20260101);
    for (let i = 0; i < 20_000; i++) {
      const glob = pick(r, 'ab/**.\n\\', 8);
      const ns = pick(r, 'ab/.\n\\', 10);
      expect(compileGlob(glob).test(ns), `glob ${JSON.stringify(glob)} namespace ${JSON.stringify(ns)}`).toBe(regexOracle(glob).test(ns));
    }
  });

  it('agrees with the RegExp reading on globs that match (built from the namespace)', () => {
    const r = prng(7);
    for (let i = 0; i < 5_000; i++) {
      const ns = pick(r, 'ab/c.', 12);
      // Replace random slices of the namespace by `*` or `**`: often a match, sometimes not.
      let glob = '';
      for (let k = 0; k < ns.length; ) {
        const roll = r();
        const len = 1 + Math.floor(r() * 3);
        glob += roll < 0.2 ? '*' : roll < 0.35 ? '**' : ns.slice(k, k + len);
        k += len;
      }
      expect(compileGlob(glob).test(ns), `glob ${JSON.stringify(glob)} namespace ${JSON.stringify(ns)}`).toBe(regexOracle(glob).test(ns));
    }
  });

  it('keeps the glob as written in `source`', () => {
    expect(compileGlob('org/*/x/**').source).toBe('org/*/x/**');
  });

  it('a backtracking-hostile glob costs at most (length + 1) × (tokens + 1) steps on 10,000 characters', () => {
    const cases: Array<[string, string]> = [
      ['*a*a*a*a*a*a*b', 'a'.repeat(10_000)],
      ['**a**a**a**a**a**a**b', 'a'.repeat(10_000)],
      [`${'*a'.repeat(40)}*b`, 'a'.repeat(10_000)],
      [`${'**a'.repeat(40)}**b`, `${'a/'.repeat(5_000)}`],
      ['*a*a*a*a*a*a*b', `${'a'.repeat(9_999)}b`],
    ];
    for (const [glob, ns] of cases) {
      const stats = { steps: 0 };
      const tokens = glob.replace(/\*+/g, '*').length;
      const result = compileGlob(glob).test(ns, stats);
      expect(result).toBe(ns.endsWith('b'));
      // Linear in the input for a fixed glob: a backtracking matcher needs ~n^k steps here.
      expect(stats.steps).toBeLessThanOrEqual(2 * (ns.length + 1) * (tokens + 1));
    }
  });

  it('the step count grows linearly with the input for a fixed glob', () => {
    const glob = compileGlob('*a*a*a*a*a*a*a*b');
    const steps = (n: number) => {
      const s = { steps: 0 };
      glob.test('a'.repeat(n), s);
      return s.steps;
    };
    // Doubling the input at most doubles the work (plus the constant start-up).
    expect(steps(8_000)).toBeLessThanOrEqual(2 * steps(4_000) + 100);
  });
});

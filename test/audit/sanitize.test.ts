import { describe, expect, it } from 'vitest';
import { AUDIT_STRING_MAX, sanitizeAuditRecord } from '../../src/audit/sanitize.js';

describe('audit events are made storable before they reach the outbox', () => {
  it('replaces NUL and lone surrogates, which jsonb refuses, in values and keys', () => {
    const e = sanitizeAuditRecord({ kind: 'federation.refused', actor: 'a\u0000b', details: { peer: '\u0000', ['k\u0000']: 'x\uD800y', ok: 'ä😀' } });
    expect(e.actor).toBe('a\uFFFDb');
    expect(e.details).toEqual({ peer: '\uFFFD', 'k\uFFFD': 'x\uFFFDy', ok: 'ä😀' });
    expect(() => JSON.parse(JSON.stringify(e))).not.toThrow();
  });

  it('cuts long strings with a count of what was cut, and keeps numbers finite', () => {
    const e = sanitizeAuditRecord({ kind: 'federation.refused', actor: 'p'.repeat(6000), details: { path: 'x'.repeat(6000), n: Number.NaN } });
    expect(e.actor!.length).toBeLessThan(300);
    expect(e.details.path).toBe(`${'x'.repeat(AUDIT_STRING_MAX)}...[${6000 - AUDIT_STRING_MAX} more chars]`);
    expect(e.details.n).toBe('NaN');
  });
});

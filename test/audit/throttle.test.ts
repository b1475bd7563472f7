import { describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/events.js';
import { throttleRefusals } from '../../src/audit/throttle.js';

describe('throttleRefusals', () => {
  it('records a burst one by one, then one summary with the count; other kinds pass', () => {
    const seen: AuditRecord[] = [];
    const t = throttleRefusals({ record: (e) => seen.push(e) }, 60_000);
    for (let i = 0; i < 50; i++) t.record({ kind: 'federation.refused', actor: 'x', details: { tag: 'x_memory_sig_bad_signature' } });
    t.record({ kind: 'federation.refused', actor: 'y', details: { tag: 'x_memory_sig_bad_signature' } });
    t.record({ kind: 'memory.deleted', actor: 'x', details: {} });
    expect(seen.filter((e) => e.actor === 'x' && e.kind === 'federation.refused')).toHaveLength(20);
    expect(seen.filter((e) => e.actor === 'y')).toHaveLength(1);
    expect(seen.filter((e) => e.kind === 'memory.deleted')).toHaveLength(1);
    t.stop();
    const summary = seen.find((e) => e.details.summary === true);
    expect(summary).toMatchObject({ actor: 'x', details: { suppressed: 30 } });
  });
});

import { describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/events.js';
import { throttleRefusals } from '../../src/audit/throttle.js';

describe('throttleRefusals', () => {
  it('records a burst one by one, then one summary with the count; other kinds pass', () => {
    const seen: AuditRecord[] = [];
    const t = throttleRefusals({ record: (e) => seen.push(e) }, { burst: 20, windowMs: 60_000 });
    for (let i = 0; i < 50; i++) t.record({ kind: 'federation.refused', actor: 'x', details: { tag: 'x_memory_sig_bad_signature', status: 401 } });
    t.record({ kind: 'memory.deleted', actor: 'x', details: {} });
    expect(seen.filter((e) => e.kind === 'federation.refused')).toHaveLength(20);
    expect(seen.filter((e) => e.kind === 'memory.deleted')).toHaveLength(1);
    t.stop();
    const summary = seen.find((e) => e.details.summary === true);
    expect(summary).toMatchObject({ actor: 'federation', details: { tag: 'x_memory_sig_bad_signature', status: 401, suppressed: 30, actors_sample: ['x'] } });
  });

  it('budgets per tag across callers: random claimed ids cannot each buy entries', () => {
    const seen: AuditRecord[] = [];
    const t = throttleRefusals({ record: (e) => seen.push(e) }, { burst: 5, windowMs: 60_000 });
    for (let i = 0; i < 1000; i++) t.record({ kind: 'federation.refused', actor: `random-${i}`, details: { tag: 'peer_not_enrolled' } });
    for (let i = 0; i < 3; i++) t.record({ kind: 'federation.refused', actor: 'peer-a', details: { tag: 'x_memory_nonce_replay' } });
    t.stop();
    const entries = seen.filter((e) => e.details.summary !== true);
    expect(entries.filter((e) => e.details.tag === 'peer_not_enrolled')).toHaveLength(5);
    expect(entries.filter((e) => e.details.tag === 'x_memory_nonce_replay')).toHaveLength(3);
    const summaries = seen.filter((e) => e.details.summary === true);
    expect(summaries).toHaveLength(1);
    expect(summaries[0]!.details).toMatchObject({ tag: 'peer_not_enrolled', suppressed: 995 });
    expect((summaries[0]!.details.actors_sample as string[]).length).toBe(10);
  });
});

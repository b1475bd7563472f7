import { burstWindow, type BurstLimits } from '../burst-window.js';
import type { AuditRecord, AuditRecorder } from './events.js';

export type RefusalThrottle = BurstLimits;

/**
 * Refusals come from outside and can be flooded; each would be a signed chain entry. The
 * actor of a refusal is whatever the caller claimed, so the budget is per tag across all
 * callers (random ids cannot each buy a fresh one): the first `burst` of a tag in a window
 * are recorded one by one; the rest are counted and recorded as one summary event when the
 * window closes. Nothing goes uncounted.
 */
export function throttleRefusals(inner: AuditRecorder, opts: RefusalThrottle = { burst: 20, windowMs: 60_000 }): AuditRecorder & { stop(): void } {
  const window = burstWindow<AuditRecord>(
    opts,
    ({ key: tag, first, suppressed, sample }) => inner.record({ kind: first.kind, actor: 'federation', details: { tag, status: first.details.status, summary: true, suppressed, window_ms: opts.windowMs, actors_sample: sample } }),
    { sampleOf: (e) => e.actor },
  );
  return {
    record(event) {
      if (event.kind !== 'federation.refused') return inner.record(event);
      if (window.admit(String(event.details.tag ?? ''), event)) inner.record(event);
    },
    stop: () => window.stop(),
  };
}

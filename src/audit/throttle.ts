import type { AuditRecord, AuditRecorder } from './events.js';

export interface RefusalThrottle {
  /** Refusals of one tag recorded one by one per window; the rest are counted. */
  burst: number;
  windowMs: number;
}

// Distinct actors named in a summary, as a sample: the count is what matters.
const SUMMARY_ACTORS = 10;

/**
 * Refusals come from outside and can be flooded; each would be a signed chain entry. The
 * actor of a refusal is whatever the caller claimed, so the budget is per tag across all
 * callers (random ids cannot each buy a fresh one): the first `burst` of a tag in a window
 * are recorded one by one; the rest are counted and recorded as one summary event when the
 * window closes. Nothing goes uncounted.
 */
export function throttleRefusals(inner: AuditRecorder, opts: RefusalThrottle = { burst: 20, windowMs: 60_000 }): AuditRecorder & { stop(): void } {
  const { burst, windowMs } = opts;
  const windows = new Map<string, { count: number; suppressed: number; actors: Set<string>; first: AuditRecord }>();
  const flush = () => {
    for (const [tag, w] of windows) {
      if (w.suppressed > 0) {
        const { kind, details } = w.first;
        inner.record({ kind, actor: 'federation', details: { tag, status: details.status, summary: true, suppressed: w.suppressed, window_ms: windowMs, actors_sample: [...w.actors] } });
      }
      windows.delete(tag);
    }
  };
  const timer = setInterval(flush, windowMs);
  timer.unref();
  return {
    record(event) {
      if (event.kind !== 'federation.refused') return inner.record(event);
      const tag = String(event.details.tag ?? '');
      const w = windows.get(tag) ?? { count: 0, suppressed: 0, actors: new Set<string>(), first: event };
      windows.set(tag, w);
      if (++w.count <= burst) return inner.record(event);
      w.suppressed++;
      if (w.actors.size < SUMMARY_ACTORS && event.actor !== undefined) w.actors.add(event.actor);
    },
    stop() {
      clearInterval(timer);
      flush();
    },
  };
}

import type { AuditRecord, AuditRecorder } from './events.js';

const BURST = 20;

/**
 * Refusals come from outside and can be flooded; each would be a signed chain entry. Per
 * (actor, tag) the first BURST in a window are recorded one by one; the rest are counted
 * and recorded as one summary event when the window closes. Nothing goes unrecorded.
 */
export function throttleRefusals(inner: AuditRecorder, windowMs = 60_000): AuditRecorder & { stop(): void } {
  const windows = new Map<string, { count: number; suppressed: number; first: AuditRecord }>();
  const flush = () => {
    for (const [key, w] of windows) {
      if (w.suppressed > 0) inner.record({ ...w.first, details: { ...w.first.details, summary: true, suppressed: w.suppressed, window_ms: windowMs } });
      windows.delete(key);
    }
  };
  const timer = setInterval(flush, windowMs);
  timer.unref();
  return {
    record(event) {
      if (event.kind !== 'federation.refused') return inner.record(event);
      const key = `${event.actor ?? ''}\u0000${String(event.details.tag ?? '')}`;
      const w = windows.get(key) ?? { count: 0, suppressed: 0, first: event };
      windows.set(key, w);
      if (++w.count <= BURST) inner.record(event);
      else w.suppressed++;
    },
    stop() {
      clearInterval(timer);
      flush();
    },
  };
}

/*
 * Rate-limiting of what outsiders can trigger (refusal log lines, refusal audit events):
 * per key, the first `burst` events of a window pass one by one; the rest are counted, and
 * when the window closes one summary reports how many were held back. Nothing goes
 * uncounted, and a flood costs one summary per key and window.
 */

export interface BurstLimits {
  /** Events of one key passed one by one per window. */
  burst: number;
  windowMs: number;
}

export interface BurstSummary<E> {
  key: string;
  /** The first event of the window (what the suppressed ones were like). */
  first: E;
  suppressed: number;
  /** Distinct `sampleOf` values of the suppressed events, at most `sampleMax`. */
  sample: string[];
}

export interface BurstWindow<E> {
  /** True when `event` should be passed on; false when it was counted for the summary. */
  admit(key: string, event: E): boolean;
  /** Closes every window now (summaries included) and stops the timer. */
  stop(): void;
}

export function burstWindow<E>(limits: BurstLimits, onSummary: (s: BurstSummary<E>) => void, sampling: { sampleOf?: (e: E) => string | undefined; sampleMax?: number } = {}): BurstWindow<E> {
  const { sampleOf, sampleMax = 10 } = sampling;
  const windows = new Map<string, { count: number; suppressed: number; sample: Set<string>; first: E }>();
  const flush = () => {
    for (const [key, w] of windows) {
      if (w.suppressed > 0) onSummary({ key, first: w.first, suppressed: w.suppressed, sample: [...w.sample] });
      windows.delete(key);
    }
  };
  const timer = setInterval(flush, limits.windowMs);
  timer.unref();
  return {
    admit(key, event) {
      let w = windows.get(key);
      if (!w) windows.set(key, (w = { count: 0, suppressed: 0, sample: new Set(), first: event }));
      if (++w.count <= limits.burst) return true;
      w.suppressed++;
      const s = sampleOf?.(event);
      if (s !== undefined && w.sample.size < sampleMax) w.sample.add(s);
      return false;
    },
    stop() {
      clearInterval(timer);
      flush();
    },
  };
}

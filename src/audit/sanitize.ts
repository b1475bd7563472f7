/**
 * Audit events carry values from outside (claimed peer ids, paths, reasons). The outbox
 * stores them as jsonb, which refuses `\u0000` and lone surrogates, and every byte of an
 * event is signed into the chain for good. So each string is made storable (U+FFFD for
 * what jsonb refuses) and cut to a bounded length before the event leaves the recorder:
 * one hostile value can neither fail a batch's insert nor bloat the chain.
 */
export const AUDIT_STRING_MAX = 1024;
const MAX_DEPTH = 16;
// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function sanitizeAuditString(s: string, max = AUDIT_STRING_MAX): string {
  // eslint-disable-next-line no-control-regex
  let out = s.replace(/\u0000/g, '\uFFFD');
  // Cut before repairing: a cut through a surrogate pair leaves a lone half.
  if (out.length > max) out = `${out.slice(0, max)}...[${out.length - max} more chars]`;
  return out.replace(LONE_SURROGATE, '\uFFFD');
}

export function sanitizeAuditValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return sanitizeAuditString(value);
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value === 'boolean') return value;
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (depth >= MAX_DEPTH) return '[nested too deep]';
  if (Array.isArray(value)) return value.map((v) => sanitizeAuditValue(v, depth + 1) ?? null);
  if (value instanceof Date) return value.toISOString();
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const clean = sanitizeAuditValue(v, depth + 1);
    if (clean !== undefined) out[sanitizeAuditString(k, 128)] = clean;
  }
  return out;
}

/** The event as it may be stored: every string storable and bounded. */
export function sanitizeAuditRecord<T extends { actor?: string; subject?: string; details: Record<string, unknown> }>(event: T): T {
  return {
    ...event,
    ...(event.actor !== undefined ? { actor: sanitizeAuditString(event.actor, 256) } : {}),
    ...(event.subject !== undefined ? { subject: sanitizeAuditString(event.subject, 256) } : {}),
    details: sanitizeAuditValue(event.details) as Record<string, unknown>,
  };
}

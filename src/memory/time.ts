/**
 * Timestamps as WIRE.md fixes them: accept any valid RFC 3339, emit
 * `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` (upstream compares them as strings, so the
 * rendering must be exact). Internally a timestamp is integer microseconds since the epoch.
 */

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;

const MIN_MICROS = Date.UTC(1970, 0, 1) * 1000;
const MAX_MICROS = Date.UTC(9999, 11, 31, 23, 59, 59, 999) * 1000 + 999;

/** Parses RFC 3339 into epoch microseconds, or null when invalid. */
export function parseTimestamp(input: unknown): number | null {
  if (typeof input !== 'string' || input.length > 40) return null;
  const m = RFC3339.exec(input);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac, off] = m as unknown as [string, string, string, string, string, string, string, string | undefined, string];
  const year = Number(y), month = Number(mo), day = Number(d), hour = Number(h), minute = Number(mi), second = Number(s);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) return null;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day > daysInMonth) return null;
  let offsetMin = 0;
  if (off !== 'Z' && off !== 'z') {
    const oh = Number(off.slice(1, 3)), om = Number(off.slice(4, 6));
    if (oh > 23 || om > 59) return null;
    offsetMin = (off[0] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const ms = Date.UTC(year, month - 1, day, hour, minute, second) - offsetMin * 60_000;
  const micros = ms * 1000 + Number((frac ?? '').padEnd(6, '0').slice(0, 6));
  if (!Number.isSafeInteger(micros) || micros < MIN_MICROS || micros > MAX_MICROS) return null;
  return micros;
}

/** Renders epoch microseconds in the wire form. */
export function formatTimestamp(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const sub = micros - ms * 1000;
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 23)}${String(sub).padStart(3, '0')}+00:00`;
}

/** Normalises any valid RFC 3339 string to the wire form, or null when invalid. */
export function normalizeTimestamp(input: unknown): string | null {
  const micros = parseTimestamp(input);
  return micros === null ? null : formatTimestamp(micros);
}

let lastNow = 0;

/** Current time in microseconds, strictly increasing within this process. */
export function nowMicros(): number {
  const hr = process.hrtime.bigint();
  const candidate = Date.now() * 1000 + Number((hr / 1000n) % 1000n);
  lastNow = candidate > lastNow ? candidate : lastNow + 1;
  return lastNow;
}

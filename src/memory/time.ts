import { now } from '../clock.js';
/**
 * Timestamps as docs/wire.md fixes them: accept any valid RFC 3339, emit
 * `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` (upstream compares them as strings, so the
 * rendering must be exact). Internally a timestamp is integer microseconds since the epoch.
 */

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * A parsed instant as whole epoch milliseconds plus the microseconds within that
 * millisecond: exact for every year 0001-9999 (a single microsecond count is only exact
 * up to 2255, which far-future expiries like 9999-12-31 exceed).
 */
interface Instant {
  ms: number;
  /** 0-999: microseconds within `ms`. */
  micro: number;
  /** The string parsed is already the wire form of this instant (normalising it is a no-op). */
  wire?: true;
}

/** Parses RFC 3339 into epoch microseconds (exact up to year 2255; beyond, within a few µs), or null. */
export function parseTimestamp(input: unknown): number | null {
  const t = parseInstant(input);
  return t === null ? null : t.ms * 1000 + t.micro;
}

// The form memfed itself writes; most timestamps it parses are in it.
const WIRE_FORM = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$/;

/** A wire-form string as an instant, or null when it takes the general path. */
function parseWireForm(input: string): Instant | null {
  if (input.length !== 32 || !WIRE_FORM.test(input)) return null;
  // Same answer as the general path: the date must render back to itself (no Feb 30, no
  // hour 24); year 0000, leap seconds and anything else unusual take the general path.
  const head = input.slice(0, 23);
  const ms = Date.parse(`${head}Z`);
  if (Number.isNaN(ms) || input.startsWith('0000') || new Date(ms).toISOString().slice(0, 23) !== head) return null;
  return { ms, micro: Number(input.slice(23, 26)), wire: true };
}

// One row's timestamps are parsed several times (validation, admission, LWW, watermark):
// recent answers are kept, in a bounded map emptied when full.
const recent = new Map<string, Instant | null>();
const RECENT_MAX = 8192;

function parseInstant(input: unknown): Instant | null {
  if (typeof input !== 'string' || input.length > 40) return null;
  const known = recent.get(input);
  if (known !== undefined) return known;
  const t = parseWireForm(input) ?? parseGeneral(input);
  if (recent.size >= RECENT_MAX) recent.clear();
  recent.set(input, t);
  return t;
}

function parseGeneral(input: string): Instant | null {
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
  if (year < 1) return null;
  // Date.UTC rolls a leap second (:60) into the next minute, as wanted; but it maps years
  // 0-99 to 1900-1999, so those get their year put back afterwards.
  const d0 = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  if (year < 100) d0.setUTCFullYear(d0.getUTCFullYear() - 1900);
  const ms = d0.getTime() - offsetMin * 60_000;
  const utcYear = new Date(ms).getUTCFullYear();
  if (utcYear < 1 || utcYear > 9999) return null;
  const fraction = Number((frac ?? '').padEnd(6, '0').slice(0, 6));
  return { ms: ms + Math.floor(fraction / 1000), micro: fraction % 1000 };
}

/** Renders epoch microseconds in the wire form. */
export function formatTimestamp(micros: number): string {
  const ms = Math.floor(micros / 1000);
  return formatInstant({ ms, micro: Math.round(micros - ms * 1000) });
}

function formatInstant(t: Instant): string {
  const iso = new Date(t.ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 23)}${String(t.micro).padStart(3, '0')}+00:00`;
}

/** Normalises any valid RFC 3339 string to the wire form (exact for years 0001-9999), or null. */
export function normalizeTimestamp(input: unknown): string | null {
  const t = parseInstant(input);
  if (t === null) return null;
  // parseWireForm checked that the string renders back to itself.
  return t.wire ? (input as string) : formatInstant(t);
}

let lastNow = 0;

/** Current time in microseconds, strictly increasing within this process. */
export function nowMicros(): number {
  const hr = process.hrtime.bigint();
  const candidate = now() * 1000 + Number((hr / 1000n) % 1000n);
  lastNow = candidate > lastNow ? candidate : lastNow + 1;
  return lastNow;
}

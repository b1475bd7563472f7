import { describe, it, expect } from 'vitest';
import { formatTimestamp, normalizeTimestamp, nowMicros, parseTimestamp } from '../../src/memory/time.js';

const WIRE_FORM = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$/;
const utcMicros = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) => Date.UTC(y, mo - 1, d, h, mi, s) * 1000;

describe('parseTimestamp', () => {
  const base = utcMicros(2024, 3, 15, 12, 34, 56);

  it('parses Z and lowercase z', () => {
    expect(parseTimestamp('2024-03-15T12:34:56Z')).toBe(base);
    expect(parseTimestamp('2024-03-15T12:34:56z')).toBe(base);
  });

  it('accepts lowercase t and a space as the date/time separator', () => {
    expect(parseTimestamp('2024-03-15t12:34:56Z')).toBe(base);
    expect(parseTimestamp('2024-03-15 12:34:56Z')).toBe(base);
  });

  it('applies positive and negative offsets', () => {
    expect(parseTimestamp('2024-03-15T14:34:56+02:00')).toBe(base);
    expect(parseTimestamp('2024-03-15T07:04:56-05:30')).toBe(base);
    expect(parseTimestamp('2024-03-15T12:34:56+00:00')).toBe(base);
    expect(parseTimestamp('2024-03-15T12:34:56-00:00')).toBe(base);
    // Offset crossing a day boundary.
    expect(parseTimestamp('2024-03-16T00:34:56+12:00')).toBe(base);
  });

  it('accepts 1..9 fraction digits and truncates to microseconds', () => {
    expect(parseTimestamp('2024-03-15T12:34:56.1Z')).toBe(base + 100_000);
    expect(parseTimestamp('2024-03-15T12:34:56.12Z')).toBe(base + 120_000);
    expect(parseTimestamp('2024-03-15T12:34:56.123Z')).toBe(base + 123_000);
    expect(parseTimestamp('2024-03-15T12:34:56.000001Z')).toBe(base + 1);
    expect(parseTimestamp('2024-03-15T12:34:56.123456Z')).toBe(base + 123_456);
    expect(parseTimestamp('2024-03-15T12:34:56.1234569Z')).toBe(base + 123_456); // truncated, not rounded
    expect(parseTimestamp('2024-03-15T12:34:56.999999999Z')).toBe(base + 999_999);
    expect(parseTimestamp('2024-03-15T12:34:56.123456789+01:00')).toBe(base - 3600e6 + 123_456);
  });

  it('refuses 10 fraction digits and an empty fraction', () => {
    expect(parseTimestamp('2024-03-15T12:34:56.1234567890Z')).toBeNull();
    expect(parseTimestamp('2024-03-15T12:34:56.Z')).toBeNull();
  });

  it('knows month lengths and leap years', () => {
    expect(parseTimestamp('2024-02-29T00:00:00Z')).toBe(utcMicros(2024, 2, 29));
    expect(parseTimestamp('2023-02-29T00:00:00Z')).toBeNull();
    expect(parseTimestamp('2024-02-30T00:00:00Z')).toBeNull();
    expect(parseTimestamp('2024-04-31T00:00:00Z')).toBeNull();
    expect(parseTimestamp('2024-12-31T00:00:00Z')).toBe(utcMicros(2024, 12, 31));
    expect(parseTimestamp('2024-12-32T00:00:00Z')).toBeNull();
    expect(parseTimestamp('2000-02-29T00:00:00Z')).not.toBeNull();
    expect(parseTimestamp('2100-02-29T00:00:00Z')).toBeNull();
  });

  it('refuses out-of-range fields', () => {
    expect(parseTimestamp('2024-13-01T00:00:00Z')).toBeNull();
    expect(parseTimestamp('2024-00-01T00:00:00Z')).toBeNull();
    expect(parseTimestamp('2024-01-00T00:00:00Z')).toBeNull();
    expect(parseTimestamp('2024-01-01T24:00:00Z')).toBeNull();
    expect(parseTimestamp('2024-01-01T23:60:00Z')).toBeNull();
    expect(parseTimestamp('2024-01-01T23:59:61Z')).toBeNull();
    expect(parseTimestamp('2024-01-01T23:59:59Z')).toBe(utcMicros(2024, 1, 1, 23, 59, 59));
  });

  it('refuses bad offsets', () => {
    for (const s of [
      '2024-01-01T00:00:00+24:00',
      '2024-01-01T00:00:00+05:60',
      '2024-01-01T00:00:00+0500',
      '2024-01-01T00:00:00+05',
      '2024-01-01T00:00:00 +05:00',
      '2024-01-01T00:00:00UTC',
      '2024-01-01T00:00:00',
    ]) {
      expect(parseTimestamp(s), s).toBeNull();
    }
    expect(parseTimestamp('2024-01-01T00:00:00+23:59')).toBe(utcMicros(2024, 1, 1) - (23 * 60 + 59) * 60e6);
  });

  it('refuses malformed shapes', () => {
    for (const s of ['', '2024-1-01T00:00:00Z', '24-01-01T00:00:00Z', '2024-01-01', '2024-01-01T00:00Z', ' 2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z ', '2024-01-01X00:00:00Z', '２０２４-01-01T00:00:00Z']) {
      expect(parseTimestamp(s), JSON.stringify(s)).toBeNull();
    }
  });

  it('refuses non-strings', () => {
    for (const v of [undefined, null, 0, 1_700_000_000_000, new Date(), {}, [], true]) {
      expect(parseTimestamp(v)).toBeNull();
    }
  });

  it('refuses strings longer than 40 characters', () => {
    expect(parseTimestamp(`2024-01-01T00:00:00.123456789+00:00${' '.repeat(6)}`)).toBeNull();
    expect(parseTimestamp('2024-01-01T00:00:00.' + '1'.repeat(30) + 'Z')).toBeNull();
  });

  it('accepts the supported range edges', () => {
    expect(parseTimestamp('1970-01-01T00:00:00Z')).toBe(0);
    expect(parseTimestamp('2200-12-31T23:59:59.999999Z')).toBe(utcMicros(2200, 12, 31, 23, 59, 59) + 999_999);
    // An offset that pushes the instant past year 9999.
    expect(parseTimestamp('9999-12-31T23:59:59-01:00')).toBeNull();
    expect(parseTimestamp('10000-01-01T00:00:00Z')).toBeNull();
  });
});

describe('formatTimestamp', () => {
  it('always renders YYYY-MM-DDTHH:MM:SS.ffffff+00:00', () => {
    expect(formatTimestamp(0)).toBe('1970-01-01T00:00:00.000000+00:00');
    expect(formatTimestamp(1)).toBe('1970-01-01T00:00:00.000001+00:00');
    expect(formatTimestamp(999)).toBe('1970-01-01T00:00:00.000999+00:00');
    expect(formatTimestamp(1000)).toBe('1970-01-01T00:00:00.001000+00:00');
    expect(formatTimestamp(1_234_567)).toBe('1970-01-01T00:00:01.234567+00:00');
    expect(formatTimestamp(utcMicros(2024, 3, 15, 12, 34, 56) + 120_000)).toBe('2024-03-15T12:34:56.120000+00:00');
  });

  it('never emits Z and keeps exactly six fraction digits', () => {
    let x = 1;
    for (let i = 0; i < 500; i++) {
      x = (x * 48271) % 2147483647;
      const micros = x * 123_457 + (i % 1000);
      const s = formatTimestamp(micros);
      expect(s).toMatch(WIRE_FORM);
      expect(s).not.toContain('Z');
    }
  });
});

describe('normalizeTimestamp', () => {
  it('normalises any valid RFC 3339 input to the wire form', () => {
    expect(normalizeTimestamp('2024-03-15T14:34:56.5+02:00')).toBe('2024-03-15T12:34:56.500000+00:00');
    expect(normalizeTimestamp('2024-03-15 12:34:56z')).toBe('2024-03-15T12:34:56.000000+00:00');
    expect(normalizeTimestamp('2024-03-15T12:34:56.123456789Z')).toBe('2024-03-15T12:34:56.123456+00:00');
  });

  it('returns null for invalid input', () => {
    expect(normalizeTimestamp('2024-02-30T00:00:00Z')).toBeNull();
    expect(normalizeTimestamp(42)).toBeNull();
  });

  it('is idempotent and round-trips through parse/format', () => {
    const inputs = ['2024-03-15T14:34:56.5+02:00', '1999-12-31T23:59:59.999999-08:00', '2038-01-19T03:14:08Z', '2024-02-29 00:00:00.000001Z'];
    for (const input of inputs) {
      const once = normalizeTimestamp(input)!;
      expect(once).toMatch(WIRE_FORM);
      expect(normalizeTimestamp(once)).toBe(once);
      expect(parseTimestamp(once)).toBe(parseTimestamp(input));
    }
    for (const micros of [0, 1, 999_999, 1_700_000_000_123_456, utcMicros(2200, 12, 31, 23, 59, 59) + 999_999]) {
      expect(parseTimestamp(formatTimestamp(micros))).toBe(micros);
    }
  });

  it('orders wire strings the same way as the instants (string comparison is safe)', () => {
    const a = normalizeTimestamp('2024-01-01T01:00:00+01:00')!; // 00:00Z
    const b = normalizeTimestamp('2024-01-01T00:30:00Z')!;
    expect(a < b).toBe(true);
  });
});

describe('nowMicros', () => {
  it('is strictly increasing over many calls', () => {
    let prev = nowMicros();
    for (let i = 0; i < 50_000; i++) {
      const n = nowMicros();
      expect(n > prev).toBe(true);
      prev = n;
    }
  });

  it('is an integer close to the wall clock', () => {
    const n = nowMicros();
    expect(Number.isSafeInteger(n)).toBe(true);
    expect(Math.abs(n / 1000 - Date.now())).toBeLessThan(1000);
    expect(formatTimestamp(n)).toMatch(WIRE_FORM);
  });
});

describe('far-future and early timestamps', () => {
  it('normalises year 9999 exactly (beyond the 2^53 microsecond range)', () => {
    expect(normalizeTimestamp('9999-12-31T23:59:59.999999Z')).toBe('9999-12-31T23:59:59.999999+00:00');
    expect(normalizeTimestamp('3000-01-01T00:00:00Z')).toBe('3000-01-01T00:00:00.000000+00:00');
    expect(parseTimestamp('3000-01-01T00:00:01Z')! > parseTimestamp('3000-01-01T00:00:00Z')!).toBe(true);
  });
  it('accepts years before 1970 and year 0001, refuses year 0000', () => {
    expect(normalizeTimestamp('1969-07-20T20:17:40Z')).toBe('1969-07-20T20:17:40.000000+00:00');
    expect(normalizeTimestamp('0001-01-01T00:00:00Z')).toBe('0001-01-01T00:00:00.000000+00:00');
    expect(normalizeTimestamp('0050-06-01T00:00:00Z')).toBe('0050-06-01T00:00:00.000000+00:00');
    expect(normalizeTimestamp('0000-01-01T00:00:00Z')).toBeNull();
  });
});

describe('leap seconds', () => {
  it('roll :60 into the next minute, on the right day', () => {
    expect(normalizeTimestamp('2026-03-01T23:59:60Z')).toBe('2026-03-02T00:00:00.000000+00:00');
    expect(normalizeTimestamp('0050-12-31T23:59:60Z')).toBe('0051-01-01T00:00:00.000000+00:00');
  });
});

describe('the wire-form fast path', () => {
  it('parses exactly as the general RFC 3339 path does, valid or not', () => {
    // The same instant written with an offset of -00:00 skips the fast path, so it is
    // read by the general one: both must agree (or both refuse).
    const samples = [
      '2026-12-03T06:35:26.123456+00:00', '0001-01-01T00:00:00.000000+00:00', '9999-12-31T23:59:59.999999+00:00',
      '0000-01-01T00:00:00.000000+00:00', '2024-02-29T12:00:00.000001+00:00', '2023-02-29T12:00:00.000000+00:00',
      '2026-04-31T00:00:00.000000+00:00', '2026-13-01T00:00:00.000000+00:00', '2026-01-01T24:00:00.000000+00:00',
      '2026-01-01T23:60:00.000000+00:00', '2016-12-31T23:59:60.500000+00:00', '0099-06-15T08:09:10.000999+00:00',
    ];
    for (let i = 0; i < 2000; i++) {
      const y = String(1 + ((i * 7919) % 9999)).padStart(4, '0');
      const mo = String(1 + (i % 13)).padStart(2, '0');
      const d = String(1 + ((i * 31) % 32)).padStart(2, '0');
      samples.push(`${y}-${mo}-${d}T${String(i % 25).padStart(2, '0')}:${String(i % 61).padStart(2, '0')}:${String(i % 61).padStart(2, '0')}.${String(i * 977 % 1e6).padStart(6, '0')}+00:00`);
    }
    for (const s of samples) expect(parseTimestamp(s), s).toBe(parseTimestamp(s.replace('+00:00', '-00:00')));
  });

  it('normalises as rendering the parsed instant does, a wire-form string being its own rendering', () => {
    const samples = ['2026-12-03T06:35:26.123456+00:00', '0001-01-01T00:00:00.000000+00:00', '9999-12-31T23:59:59.999999+00:00', '2016-12-31T23:59:60.500000+00:00', '0000-01-01T00:00:00.000000+00:00', '2023-02-29T12:00:00.000000+00:00'];
    for (let i = 0; i < 500; i++) samples.push(`${String(1 + ((i * 7919) % 9999)).padStart(4, '0')}-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (i % 28)).padStart(2, '0')}T${String(i % 24).padStart(2, '0')}:${String(i % 61).padStart(2, '0')}:00.${String((i * 977) % 1e6).padStart(6, '0')}+00:00`);
    for (const s of samples) {
      const micros = parseTimestamp(s);
      expect(normalizeTimestamp(s), s).toBe(micros === null ? null : normalizeTimestamp(s.replace('+00:00', 'Z')));
    }
    expect(normalizeTimestamp('2016-12-31T23:59:60.500000+00:00')).toBe('2017-01-01T00:00:00.500000+00:00');
  });
});

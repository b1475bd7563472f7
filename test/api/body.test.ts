import { describe, it, expect } from 'vitest';
import { MAX_JSON_DEPTH, exceedsDepth, parseJsonBytes } from '../../src/api/body.js';
import { ApiError } from '../../src/errors.js';

const bytes = (s: string) => new TextEncoder().encode(s);

function apiError(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error('expected an ApiError, nothing was thrown');
}

function expectCode(raw: Uint8Array, code: string): void {
  const err = apiError(() => parseJsonBytes(raw));
  expect(err.status).toBe(400);
  expect(err.code).toBe(code);
}

describe('exceedsDepth', () => {
  it('allows exactly max and refuses max + 1', () => {
    expect(exceedsDepth('[[]]', 2)).toBe(false);
    expect(exceedsDepth('[[[]]]', 2)).toBe(true);
    expect(exceedsDepth('['.repeat(40) + ']'.repeat(40), 40)).toBe(false);
    expect(exceedsDepth('['.repeat(41) + ']'.repeat(41), 40)).toBe(true);
  });

  it('counts objects and arrays alike', () => {
    expect(exceedsDepth('{"a":{"b":[{}]}}', 4)).toBe(false);
    expect(exceedsDepth('{"a":{"b":[{}]}}', 3)).toBe(true);
  });

  it('measures depth, not the number of brackets', () => {
    expect(exceedsDepth('[[],[],[],[],[]]', 2)).toBe(false);
    expect(exceedsDepth('[' + '{},'.repeat(1000) + '{}]', 2)).toBe(false);
  });

  it('ignores brackets inside strings', () => {
    expect(exceedsDepth('["[[[[[[{{{{"]', 1)).toBe(false);
    expect(exceedsDepth('{"[[[[":"]]]]{{{{"}', 1)).toBe(false);
  });

  it('handles escaped quotes inside strings', () => {
    // The \" does not end the string, so the brackets after it are still inside it.
    expect(exceedsDepth(String.raw`["\"[[[[", "x"]`, 1)).toBe(false);
    // An escaped backslash does end at the next quote: the brackets after it count.
    expect(exceedsDepth(String.raw`["\\", [[1]]]`, 2)).toBe(true);
    expect(exceedsDepth(String.raw`["\\", [[1]]]`, 3)).toBe(false);
  });

  it('agrees with a character-by-character scan on any mix of brackets, quotes and backslashes', () => {
    const reference = (text: string, max: number) => {
      let depth = 0;
      let inString = false;
      for (let i = 0; i < text.length; i++) {
        const ch = text[i];
        if (inString) {
          if (ch === '\\') i++;
          else if (ch === '"') inString = false;
        } else if (ch === '"') inString = true;
        else if (ch === '[' || ch === '{') {
          if (++depth > max) return true;
        } else if (ch === ']' || ch === '}') depth--;
      }
      return false;
    };
    const alphabet = ['[', ']', '{', '}', '"', '\\', 'a', ','];
    let seed = 11;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
    for (let n = 0; n < 20_000; n++) {
      const text = Array.from({ length: next() % 24 }, () => alphabet[next() % alphabet.length]).join('');
      for (const max of [0, 1, 2, 3]) expect(exceedsDepth(text, max), `${JSON.stringify(text)} at ${max}`).toBe(reference(text, max));
    }
  });

  it('is linear on a huge input', () => {
    expect(exceedsDepth('['.repeat(1_000_000), 40)).toBe(true);
    expect(exceedsDepth('"' + '['.repeat(1_000_000) + '"', 40)).toBe(false);
    expect(exceedsDepth('"\\"'.repeat(300_000) + '['.repeat(41), 40)).toBe(false);
    expect(exceedsDepth('"a\\\\" '.repeat(300_000) + '['.repeat(41), 40)).toBe(true);
  });
});

describe('parseJsonBytes', () => {
  it('parses valid JSON, including multibyte text', () => {
    expect(parseJsonBytes(bytes('{"t":"héllo 😀","n":[1,2]}'))).toEqual({ t: 'héllo 😀', n: [1, 2] });
    expect(parseJsonBytes(bytes('[]'))).toEqual([]);
  });

  it('strips a UTF-8 byte order mark', () => {
    expect(parseJsonBytes(new Uint8Array([0xef, 0xbb, 0xbf, ...bytes('{"a":1}')]))).toEqual({ a: 1 });
  });

  it('EMPTY_BODY for zero bytes', () => {
    expectCode(new Uint8Array(0), 'EMPTY_BODY');
  });

  it('INVALID_UTF8 for malformed sequences', () => {
    expectCode(new Uint8Array([0x22, 0xc3, 0x28, 0x22]), 'INVALID_UTF8');
    expectCode(new Uint8Array([0xc3, 0x28]), 'INVALID_UTF8');
    expectCode(new Uint8Array([0xff]), 'INVALID_UTF8');
    expectCode(new Uint8Array([...bytes('{"a":"'), 0xed, 0xa0, 0x80, ...bytes('"}')]), 'INVALID_UTF8'); // encoded surrogate
    expectCode(new Uint8Array([...bytes('{"a":"'), 0xe2, 0x82]), 'INVALID_UTF8'); // truncated sequence
  });

  it('NESTING_TOO_DEEP before parsing', () => {
    expectCode(bytes('['.repeat(100_000)), 'NESTING_TOO_DEEP');
    expectCode(bytes('['.repeat(MAX_JSON_DEPTH + 1) + ']'.repeat(MAX_JSON_DEPTH + 1)), 'NESTING_TOO_DEEP');
    expect(jsonDepthOf(parseJsonBytes(bytes('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH))))).toBe(MAX_JSON_DEPTH);
  });

  it('INVALID_JSON for syntax errors', () => {
    for (const s of ['{bad', '{"a":1,}', 'undefined', "{'a':1}", '{"a":1} x', ' ']) expectCode(bytes(s), 'INVALID_JSON');
  });

  it('NUL_CHARACTER for \\u0000 in a string or key', () => {
    expectCode(bytes('{"a":"x\\u0000y"}'), 'NUL_CHARACTER');
    expectCode(bytes('[["\\u0000"]]'), 'NUL_CHARACTER');
    expectCode(bytes('{"k\\u0000":1}'), 'NUL_CHARACTER');
  });

  it('FORBIDDEN_KEY for prototype-polluting keys', () => {
    expectCode(bytes('{"__proto__":1}'), 'FORBIDDEN_KEY');
    expectCode(bytes('{"a":[{"__proto__":{}}]}'), 'FORBIDDEN_KEY');
    // "constructor" and "prototype" are plain data once parsed: accepted
    expect(parseJsonBytes(bytes('{"a":[{"constructor":{}}],"b":{"prototype":null}}'))).toEqual({ a: [{ constructor: {} }], b: { prototype: null } });
  });

  it('INVALID_UNICODE for lone surrogates and INVALID_NUMBER for non-finite numbers', () => {
    expectCode(bytes('{"title":"\\ud800"}'), 'INVALID_UNICODE');
    expectCode(bytes('{"k\\udc00":1}'), 'INVALID_UNICODE');
    expect(parseJsonBytes(bytes('{"ok":"\\ud83d\\ude00"}'))).toEqual({ ok: '😀' });
    expectCode(bytes('{"n":1e400}'), 'INVALID_NUMBER');
  });

  it('deepChecks: false leaves per-row checks to the caller (push lanes)', () => {
    expect(parseJsonBytes(bytes('{"memories":[{"content":"a\\u0000b"}]}'), { deepChecks: false })).toEqual({ memories: [{ content: 'a\u0000b' }] });
  });

  it('all errors are 400 ApiErrors with a message', () => {
    const err = apiError(() => parseJsonBytes(bytes('{')));
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/not valid JSON/);
  });
});

function jsonDepthOf(v: unknown): number {
  let d = 0;
  while (Array.isArray(v)) {
    d++;
    v = v[0];
  }
  return d;
}

import { describe, it, expect } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import {
  LIMITS,
  SOURCES,
  assertSafeJson,
  canonicalJson,
  compareVersions,
  defaultExpiry,
  isValidId,
  jsonDepth,
  memoryDigest,
  orderKeys,
  validateConfidence,
  validateContent,
  validateId,
  validateMemory,
  validateMetadata,
  validateNamespace,
  validatePriority,
  validateSource,
  validateTags,
  validateTier,
  validateTitle,
  type Memory,
  type Versioned,
} from '../../src/memory/model.js';

/** Runs fn, expects a ValidationError, returns it. */
function refusal(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError, nothing was thrown');
}

function rawMemory(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'mem-1',
    tier: 'mid',
    namespace: 'global',
    title: 'A title',
    content: 'Some content',
    tags: ['a', 'b'],
    priority: 5,
    confidence: 0.5,
    source: 'api',
    access_count: 0,
    created_at: '2024-01-01T00:00:00Z',
    updated_at: '2024-01-02T00:00:00Z',
    ...over,
  };
}

/** An object nested `depth` levels deep (jsonDepth({}) === 1). */
function nested(depth: number): Record<string, unknown> {
  let v: Record<string, unknown> = {};
  for (let i = 1; i < depth; i++) v = { a: v };
  return v;
}

describe('validateId', () => {
  it('accepts 128 bytes and refuses 129', () => {
    expect(validateId('a'.repeat(LIMITS.idBytes))).toBe('a'.repeat(128));
    expect(refusal(() => validateId('a'.repeat(129))).field).toBe('id');
  });

  it('accepts the whole charset', () => {
    expect(validateId('AZaz09_:.@-')).toBe('AZaz09_:.@-');
    expect(validateId('a.b')).toBe('a.b');
  });

  it('refuses ids a URL path cannot name: ".", "..", and any run of dots', () => {
    for (const id of ['.', '..', '...', 'a..b']) expect(refusal(() => validateId(id)).code, id).toBe('INVALID_ID');
    expect(validateId('.a')).toBe('.a');
  });

  it('refuses characters outside [A-Za-z0-9_:.@-]', () => {
    for (const id of ['a b', 'a/b', 'a\\b', 'é', 'a\u0000', 'a+b', 'a#b', 'a\nb']) {
      expect(() => validateId(id), JSON.stringify(id)).toThrow(ValidationError);
    }
  });

  it('refuses ".." anywhere', () => {
    for (const id of ['..', 'a..b', '..a', 'a..', 'a...b']) expect(() => validateId(id), id).toThrow(ValidationError);
  });

  it('refuses empty and non-strings', () => {
    for (const v of ['', undefined, null, 5, ['a']]) expect(() => validateId(v)).toThrow(ValidationError);
  });

  it('names the field it was given', () => {
    expect(refusal(() => validateId('a b', 'deletions[0]')).field).toBe('deletions[0]');
  });

  it('isValidId mirrors validateId', () => {
    expect(isValidId('ok-id')).toBe(true);
    expect(isValidId('a..b')).toBe(false);
    expect(isValidId(7)).toBe(false);
  });
});

describe('validateTitle', () => {
  it('checks the title trimmed and returns it as sent (upstream stores titles untrimmed)', () => {
    expect(validateTitle('  hello  ')).toBe('  hello  ');
    expect(validateTitle('\n\thello\t\n')).toBe('\n\thello\t\n');
  });

  it('accepts 512 characters and refuses 513 (after trimming)', () => {
    expect(validateTitle('x'.repeat(512))).toHaveLength(512);
    expect(validateTitle(`  ${'x'.repeat(512)}  `)).toHaveLength(516);
    expect(refusal(() => validateTitle('x'.repeat(513))).field).toBe('title');
  });

  it('counts characters, not UTF-16 units', () => {
    const emoji = '😀'.repeat(512); // 1024 UTF-16 units
    expect(validateTitle(emoji)).toBe(emoji);
    expect(() => validateTitle('😀'.repeat(513))).toThrow(ValidationError);
  });

  it('allows \\n and \\t but no other control characters', () => {
    expect(validateTitle('a\nb\tc')).toBe('a\nb\tc');
    for (const c of ['\u0000', '\u0001', '\u0008', '\u000b', '\u000c', '\r', '\u001b', '\u001f', '\u007f']) {
      expect(() => validateTitle(`a${c}b`), JSON.stringify(c)).toThrow(ValidationError);
    }
  });

  it('refuses empty, blank and non-string titles', () => {
    for (const v of ['', '   ', '\n\t', undefined, null, 5]) expect(() => validateTitle(v)).toThrow(ValidationError);
  });
});

describe('validateContent', () => {
  it('accepts 65,536 bytes and refuses 65,537 (bytes, not characters)', () => {
    const atLimit = 'é'.repeat(32_768); // 2 bytes each
    expect(Buffer.byteLength(atLimit)).toBe(LIMITS.contentBytes);
    expect(validateContent(atLimit)).toBe(atLimit);
    const over = `${atLimit}a`;
    expect(over.length).toBeLessThan(LIMITS.contentBytes);
    expect(refusal(() => validateContent(over)).field).toBe('content');
    expect(() => validateContent('€'.repeat(21_845) + 'ab')).toThrow(ValidationError); // 65,537 bytes of 3-byte chars
    expect(validateContent('€'.repeat(21_845) + 'a')).toHaveLength(21_846); // 65,536 bytes
  });

  it('refuses empty, non-string and NUL', () => {
    for (const v of ['', undefined, 3, 'a\u0000b']) expect(() => validateContent(v)).toThrow(ValidationError);
  });

  it('keeps content untouched (no trimming)', () => {
    expect(validateContent('  x\n\t ')).toBe('  x\n\t ');
  });
});

describe('validateNamespace', () => {
  it('accepts depth 8 and refuses depth 9', () => {
    expect(validateNamespace('a/b/c/d/e/f/g/h')).toBe('a/b/c/d/e/f/g/h');
    expect(refusal(() => validateNamespace('a/b/c/d/e/f/g/h/i')).field).toBe('namespace');
  });

  it('refuses empty, "." and ".." segments', () => {
    for (const ns of ['', '/', 'a//b', '/a', 'a/', '.', '..', 'a/./b', 'a/../b', 'a/..']) {
      expect(() => validateNamespace(ns), ns).toThrow(ValidationError);
    }
    expect(validateNamespace('a/.hidden/b..c')).toBe('a/.hidden/b..c');
  });

  it('refuses spaces, NUL, control characters and backslash', () => {
    for (const ns of ['a b', 'a\rb', 'a\u0085b', 'a\u0000b', 'a\\b', 'a\u0007b']) {
      expect(() => validateNamespace(ns), JSON.stringify(ns)).toThrow(ValidationError);
    }
  });

  it('accepts 512 characters and refuses 513', () => {
    expect(validateNamespace('n'.repeat(512))).toHaveLength(512);
    expect(() => validateNamespace('n'.repeat(513))).toThrow(ValidationError);
  });

  it('refuses non-strings and uses the given field name', () => {
    expect(() => validateNamespace(5)).toThrow(ValidationError);
    expect(refusal(() => validateNamespace('a b', 'filter.namespace')).field).toBe('filter.namespace');
  });
});

describe('validateTags', () => {
  it('accepts 50 tags and refuses 51', () => {
    const fifty = Array.from({ length: 50 }, (_, i) => `t${i}`);
    expect(validateTags(fifty)).toEqual(fifty);
    expect(refusal(() => validateTags([...fifty, 'x'])).field).toBe('tags');
  });

  it('accepts a 128-byte tag and refuses a 129-byte one', () => {
    const t128 = 'é'.repeat(64);
    expect(validateTags([t128])).toEqual([t128]);
    expect(refusal(() => validateTags(['ok', `${t128}a`])).field).toBe('tags[1]');
  });

  it('refuses empty tags, non-strings, control characters and non-arrays', () => {
    expect(() => validateTags([''])).toThrow(ValidationError);
    expect(() => validateTags([1])).toThrow(ValidationError);
    expect(() => validateTags(['a\u0001'])).toThrow(ValidationError);
    expect(() => validateTags('a,b')).toThrow(ValidationError);
    expect(validateTags([])).toEqual([]);
  });
});

describe('validateMetadata', () => {
  it('accepts exactly 65,536 serialized bytes and refuses 65,537', () => {
    const overhead = Buffer.byteLength(JSON.stringify({ k: '' }));
    const ok = { k: 'x'.repeat(LIMITS.metadataBytes - overhead) };
    expect(Buffer.byteLength(JSON.stringify(ok))).toBe(65_536);
    expect(validateMetadata(ok)).toBe(ok);
    const over = { k: 'x'.repeat(LIMITS.metadataBytes - overhead + 1) };
    expect(refusal(() => validateMetadata(over)).field).toBe('metadata');
  });

  it('counts serialized bytes of multibyte text', () => {
    const overhead = Buffer.byteLength(JSON.stringify({ k: '' }));
    const n = (LIMITS.metadataBytes - overhead) / 2;
    expect(validateMetadata({ k: 'é'.repeat(n) })).toBeTruthy();
    expect(() => validateMetadata({ k: `${'é'.repeat(n)}x` })).toThrow(ValidationError);
  });

  it('accepts nesting 32 and refuses 33', () => {
    expect(jsonDepth(nested(32))).toBe(32);
    expect(validateMetadata(nested(32))).toBeTruthy();
    expect(refusal(() => validateMetadata(nested(33))).field).toBe('metadata');
  });

  it('counts arrays as nesting levels', () => {
    let arr: unknown = 1;
    for (let i = 0; i < 32; i++) arr = [arr];
    expect(() => validateMetadata({ a: arr })).toThrow(ValidationError); // 1 + 32 = 33
  });

  it('must be an object', () => {
    for (const v of [null, [], 'x', 1, undefined]) expect(() => validateMetadata(v)).toThrow(ValidationError);
  });
});

describe('scalar validators', () => {
  it('priority: integers 1..10 only', () => {
    expect(validatePriority(1)).toBe(1);
    expect(validatePriority(10)).toBe(10);
    for (const v of [0, 11, -1, 5.5, '5', NaN, Infinity, null]) expect(() => validatePriority(v), String(v)).toThrow(ValidationError);
  });

  it('confidence: finite numbers in [0, 1]', () => {
    expect(validateConfidence(0)).toBe(0);
    expect(validateConfidence(1)).toBe(1);
    expect(validateConfidence(0.25)).toBe(0.25);
    for (const v of [-0.0001, 1.0001, NaN, Infinity, '1', null]) expect(() => validateConfidence(v), String(v)).toThrow(ValidationError);
  });

  it('source: the wire contract enum', () => {
    expect([...SOURCES].sort()).toEqual(['api', 'chaos', 'claude', 'cli', 'consolidation', 'hook', 'import', 'nhi', 'notify', 'system', 'user']);
    for (const s of SOURCES) expect(validateSource(s)).toBe(s);
    for (const v of ['API', 'robot', '', null, 1]) expect(() => validateSource(v)).toThrow(ValidationError);
  });

  it('tier: short, mid, long', () => {
    for (const t of ['short', 'mid', 'long']) expect(validateTier(t)).toBe(t);
    for (const v of ['Long', 'forever', undefined]) expect(() => validateTier(v)).toThrow(ValidationError);
  });
});

describe('validateMemory', () => {
  it('accepts a valid memory and normalises timestamps', () => {
    const m = validateMemory(rawMemory({ last_accessed_at: '2024-01-03T01:00:00+01:00', expires_at: '2024-02-01 00:00:00.5Z', confidence_decayed_at: '2024-01-04T00:00:00z' }));
    expect(m.created_at).toBe('2024-01-01T00:00:00.000000+00:00');
    expect(m.updated_at).toBe('2024-01-02T00:00:00.000000+00:00');
    expect(m.last_accessed_at).toBe('2024-01-03T00:00:00.000000+00:00');
    expect(m.expires_at).toBe('2024-02-01T00:00:00.500000+00:00');
    expect(m.confidence_decayed_at).toBe('2024-01-04T00:00:00.000000+00:00');
  });

  it('defaults metadata to {} and version to 1', () => {
    const m = validateMemory(rawMemory());
    expect(m.metadata).toEqual({});
    expect(m.version).toBe(1);
    expect(validateMemory(rawMemory({ metadata: null, version: null })).version).toBe(1);
    expect(validateMemory(rawMemory({ version: 7 })).version).toBe(7);
  });

  it('preserves unknown keys from newer peers', () => {
    const extra = { memory_kind: 'claim', citations: [{ uri: 'doc:x', accessed_at: '2024-01-01T00:00:00Z' }], future_field: { nested: [1, 2, { x: true }] }, reflection_depth: 0 };
    const m = validateMemory(rawMemory(extra));
    for (const [k, v] of Object.entries(extra)) expect(m[k]).toEqual(v);
  });

  it('drops optional keys that are null', () => {
    const m = validateMemory(rawMemory({ expires_at: null, last_accessed_at: null, entity_id: null, metadata: null }));
    expect('expires_at' in m).toBe(false);
    expect('last_accessed_at' in m).toBe(false);
    expect('entity_id' in m).toBe(false);
    expect(m.metadata).toEqual({});
  });

  it('returns the title as sent (validated trimmed)', () => {
    expect(validateMemory(rawMemory({ title: '  padded  ' })).title).toBe('  padded  ');
  });

  it('does not mutate its input', () => {
    const input = rawMemory({ title: ' t ', expires_at: null });
    const copy = structuredClone(input);
    validateMemory(input);
    expect(input).toEqual(copy);
  });

  it('refuses each required field when missing or invalid', () => {
    const cases: Array<[string, unknown]> = [
      ['id', undefined], ['id', 'a..b'], ['tier', 'x'], ['namespace', 'a//b'], ['title', ''], ['content', ''],
      ['tags', undefined], ['priority', 0], ['confidence', 2], ['source', 'nobody'], ['access_count', -1],
      ['access_count', 1.5], ['created_at', 'yesterday'], ['updated_at', undefined], ['version', 0],
      ['expires_at', '2024-02-30T00:00:00Z'], ['last_accessed_at', 12], ['metadata', []],
    ];
    for (const [field, value] of cases) {
      const err = refusal(() => validateMemory(rawMemory({ [field]: value })));
      expect(err.field, `${field}=${String(value)}`).toBe(field);
    }
  });

  it('caps the serialized memory at maxBytes (default 256 KiB) with MEMORY_TOO_LARGE', () => {
    const base = Buffer.byteLength(JSON.stringify(validateMemory(rawMemory({ blob: '' }))));
    // exactly at the cap passes, one byte over is refused; measured on the stored JSON
    expect(() => validateMemory(rawMemory({ blob: 'x'.repeat(20_000 - base) }), { maxBytes: 20_000 })).not.toThrow();
    const err = (() => {
      try {
        validateMemory(rawMemory({ blob: 'x'.repeat(20_001 - base) }), { maxBytes: 20_000 });
      } catch (e) {
        return e as { status: number; code: string; details: Record<string, unknown> };
      }
      return null;
    })();
    expect(err).toMatchObject({ status: 422, code: 'MEMORY_TOO_LARGE', details: { bytes: 20_001, limit: 20_000 } });
    // escapes count: 4,000 control characters serialize to 24,000 bytes
    expect(() => validateMemory(rawMemory({ blob: '\u0001'.repeat(4_000) }), { maxBytes: 20_000 })).toThrow(/MEMORY_TOO_LARGE/);
    expect(() => validateMemory(rawMemory({ blob: 'x'.repeat(256 * 1024) }))).toThrow(/at most 262144/);
  });

  it('refuses non-objects', () => {
    for (const v of [null, [], 'x', 1]) expect(() => validateMemory(v)).toThrow(ValidationError);
  });

  it('refuses NUL and forbidden keys inside unknown keys and metadata', () => {
    expect(refusal(() => validateMemory(rawMemory({ extra: 'a\u0000b' }))).code).toBe('NUL_CHARACTER');
    const metaProto = JSON.parse('{"x":{"__proto__":{"polluted":true}}}') as Record<string, unknown>;
    expect(refusal(() => validateMemory(rawMemory({ metadata: metaProto }))).code).toBe('FORBIDDEN_KEY');
    expect(refusal(() => validateMemory(rawMemory({ extra: JSON.parse('{"__proto__":1}') }))).code).toBe('FORBIDDEN_KEY');
    expect(validateMemory(rawMemory({ extra: { constructor: 1 } })).extra).toEqual({ constructor: 1 });
  });

  it('emits keys in wire order, then unknown keys in arrival order', () => {
    const input = { zeta: 1, ...rawMemory({ expires_at: '2030-01-01T00:00:00Z' }), alpha: 2, metadata: { a: 1 } };
    const reversed = Object.fromEntries(Object.entries(input).reverse());
    const keys = Object.keys(validateMemory(reversed));
    expect(keys).toEqual(['id', 'tier', 'namespace', 'title', 'content', 'tags', 'priority', 'confidence', 'source', 'access_count', 'created_at', 'updated_at', 'expires_at', 'metadata', 'version', 'alpha', 'zeta']);
  });
});

describe('orderKeys', () => {
  it('puts known keys first in wire order and keeps unknown keys in arrival order', () => {
    const m = { version: 2, zz: 1, metadata: {}, id: 'x', aa: 2, last_accessed_at: 'l', updated_at: 'u', created_at: 'c', title: 't', tier: 'mid' } as unknown as Memory;
    expect(Object.keys(orderKeys(m))).toEqual(['id', 'tier', 'title', 'created_at', 'updated_at', 'last_accessed_at', 'metadata', 'version', 'zz', 'aa']);
  });

  it('keeps unknown keys named like Object.prototype members (own-property check, not `in`)', () => {
    const inherited = { constructor: 'c', toString: 't', valueOf: 1, hasOwnProperty: [1], isPrototypeOf: { a: 1 } };
    const m = validateMemory(rawMemory(inherited));
    for (const [k, v] of Object.entries(inherited)) expect(Object.getOwnPropertyDescriptor(m, k)?.value, k).toEqual(v);
    expect(Object.keys(orderKeys({ id: 'x', constructor: 1, toString: 2 } as unknown as Memory))).toEqual(['id', 'constructor', 'toString']);
  });

  it('drops undefined values', () => {
    const m = { id: 'x', expires_at: undefined, extra: undefined } as unknown as Memory;
    expect(orderKeys(m)).toEqual({ id: 'x' });
    expect('extra' in orderKeys(m)).toBe(false);
  });
});

describe('assertSafeJson', () => {
  it('accepts ordinary JSON', () => {
    expect(() => assertSafeJson({ a: [1, 'x', null, { proto: 1, __proto: 2, constructorName: 'constructor' }], b: true })).not.toThrow();
    expect(() => assertSafeJson('plain')).not.toThrow();
    expect(() => assertSafeJson(null)).not.toThrow();
  });

  it('refuses NUL in strings at any depth', () => {
    for (const v of ['\u0000', ['ok', ['a\u0000']], { a: { b: [{ c: 'x\u0000' }] } }]) {
      expect(refusal(() => assertSafeJson(v)).code).toBe('NUL_CHARACTER');
    }
  });

  it('refuses NUL in keys', () => {
    expect(refusal(() => assertSafeJson({ a: { 'k\u0000': 1 } })).code).toBe('NUL_CHARACTER');
  });

  it('refuses an own __proto__ key at any depth', () => {
    for (const text of ['{"__proto__":{}}', '{"a":[{"b":{"__proto__":1}}]}', '[[[{"__proto__":null}]]]']) {
      const v = JSON.parse(text) as unknown;
      expect(refusal(() => assertSafeJson(v)).code, text).toBe('FORBIDDEN_KEY');
    }
  });

  it('accepts constructor and prototype keys (plain data once parsed); refuses __proto__ at any depth', () => {
    expect(() => assertSafeJson({ constructor: 1 })).not.toThrow();
    expect(() => assertSafeJson({ a: [{ prototype: {} }] })).not.toThrow();
    expect(refusal(() => assertSafeJson(JSON.parse('{"x":{"y":{"__proto__":{"prototype":1}}}}'))).code).toBe('FORBIDDEN_KEY');
  });

  it('refuses lone surrogates, non-finite numbers and an int4-overflowing version', () => {
    expect(refusal(() => assertSafeJson({ t: 'a\ud800b' })).code).toBe('INVALID_UNICODE');
    expect(refusal(() => assertSafeJson({ t: '\udfff' })).code).toBe('INVALID_UNICODE');
    expect(() => assertSafeJson({ t: '\ud83d\ude00' })).not.toThrow();
    expect(refusal(() => assertSafeJson({ n: Infinity })).code).toBe('INVALID_NUMBER');
    expect(refusal(() => validateMemory(rawMemory({ version: 2 ** 31 }))).field).toBe('version');
    expect(validateMemory(rawMemory({ version: 2 ** 31 - 1 })).version).toBe(2 ** 31 - 1);
  });

  it('handles very deep structures without recursion', () => {
    let v: unknown = 'a\u0000';
    for (let i = 0; i < 100_000; i++) v = [v];
    expect(refusal(() => assertSafeJson(v)).code).toBe('NUL_CHARACTER');
  });
});

describe('jsonDepth', () => {
  it('measures depth with scalars 0 and {} 1', () => {
    expect(jsonDepth(1)).toBe(0);
    expect(jsonDepth('x')).toBe(0);
    expect(jsonDepth(null)).toBe(0);
    expect(jsonDepth({})).toBe(1);
    expect(jsonDepth([])).toBe(1);
    expect(jsonDepth([[]])).toBe(2);
    expect(jsonDepth({ a: { b: 1 }, c: [[[]]] })).toBe(4);
  });

  it('handles a 100,000-deep array without overflowing the stack', () => {
    let v: unknown = [];
    for (let i = 1; i < 100_000; i++) v = [v];
    expect(jsonDepth(v)).toBe(100_000);
  });
});

describe('canonicalJson', () => {
  it('sorts keys recursively with no whitespace and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: [{ e: 'x y', d: 2, c: undefined }], c: null })).toBe('{"a":[{"d":2,"e":"x y"}],"b":1,"c":null}');
  });

  it('sorts by UTF-16 code unit, not locale', () => {
    expect(canonicalJson({ b: 1, a: 2, B: 3, _: 4, é: 5 })).toBe('{"B":3,"_":4,"a":2,"b":1,"é":5}');
  });

  it('is stable under key reordering and keeps array order', () => {
    const a = { x: { p: 1, q: [3, 2, 1] }, y: 'z' };
    const b = { y: 'z', x: { q: [3, 2, 1], p: 1 } };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson([2, 1])).not.toBe(canonicalJson([1, 2]));
  });

  it('renders scalars like JSON.stringify and escapes keys and strings', () => {
    expect(canonicalJson('a"b\n')).toBe(JSON.stringify('a"b\n'));
    expect(canonicalJson(1.5)).toBe('1.5');
    expect(canonicalJson(true)).toBe('true');
    expect(canonicalJson(null)).toBe('null');
    expect(canonicalJson(undefined)).toBe('null');
    expect(canonicalJson({ 'k"ey': 1 })).toBe('{"k\\"ey":1}');
    expect(JSON.parse(canonicalJson({ b: [1, { c: 'ü' }], a: 'x' }))).toEqual({ a: 'x', b: [1, { c: 'ü' }] });
  });

  it('renders undefined array elements as null and skips an undefined first key', () => {
    expect(canonicalJson([undefined, 1])).toBe('[null,1]');
    expect(canonicalJson({ a: undefined, b: 1, c: undefined })).toBe('{"b":1}');
    expect(canonicalJson({ a: undefined })).toBe('{}');
    expect(canonicalJson([])).toBe('[]');
  });

  it('orders array-index keys as text, where JSON.stringify would put them first in numeric order', () => {
    expect(canonicalJson({ b: 1, '10': 2, '9': 3, '-1': 4 })).toBe('{"-1":4,"10":2,"9":3,"b":1}');
    expect(canonicalJson([{ x: { '1': 0, '!': 1 } }])).toBe('[{"x":{"!":1,"1":0}}]');
  });

  it('keeps a "__proto__" key of parsed JSON as an ordinary key', () => {
    expect(canonicalJson(JSON.parse('{"b":1,"__proto__":{"y":2,"x":1}}'))).toBe('{"__proto__":{"x":1,"y":2},"b":1}');
  });

  it('puts a key outside the BMP (a surrogate pair) before U+FFFF, as UTF-16 code units sort', () => {
    expect(canonicalJson({ '\uFFFF': 1, '\u{1F600}': 2 })).toBe(`{"\u{1F600}":2,"\uFFFF":1}`);
  });

  it('renders every value as the sort-and-join definition does (the digest every node computes)', () => {
    // The definition digests were first computed with; the implementation only builds it faster.
    const reference = (value: unknown): string => {
      if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
      if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${reference(v)}`).join(',')}}`;
    };
    // Array-index keys ('0', '2', '10'; not '01', '-1' or 2^32 - 1) are the ones JSON.stringify would reorder.
    const keys = ['a', 'B', '_', 'é', 'ab', 'a b', '\u{1F600}', '\uFFFF', '10', '2', '0', '01', '-1', '4294967295', '4294967294', '__proto__', 'toJSON', 'k"ey', ''];
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
    const gen = (depth: number): unknown => {
      const r = next() % 9;
      if (depth > 3 || r < 3) return [null, 1.5, -0, 'x\n"y', true, undefined, 1e21, 'ü'][next() % 8];
      if (r < 6) return Array.from({ length: next() % 4 }, () => gen(depth + 1));
      return Object.fromEntries(Array.from({ length: next() % 6 }, () => [keys[next() % keys.length]!, gen(depth + 1)]));
    };
    for (let i = 0; i < 3000; i++) {
      const v = gen(0);
      expect(canonicalJson(v)).toBe(reference(v));
    }
    const m = validateMemory(rawMemory({ metadata: { z: [1, { y: 'ü', x: null }], a: 'b' } }));
    expect(canonicalJson(m)).toBe(reference(m));
  });
});

describe('memoryDigest', () => {
  it('is a hex SHA-256 that ignores key order', () => {
    const m = validateMemory(rawMemory({ metadata: { b: 1, a: 2 } }));
    const reordered = Object.fromEntries(Object.entries(m).reverse()) as Memory;
    reordered.metadata = { a: 2, b: 1 };
    expect(memoryDigest(m)).toMatch(/^[0-9a-f]{64}$/);
    expect(memoryDigest(reordered)).toBe(memoryDigest(m));
  });

  it('changes when any value changes', () => {
    const m = validateMemory(rawMemory());
    expect(memoryDigest({ ...m, content: 'other' })).not.toBe(memoryDigest(m));
    expect(memoryDigest({ ...m, metadata: { x: 1 } })).not.toBe(memoryDigest(m));
  });
});

describe('compareVersions', () => {
  const mem = (updated: string, over: Record<string, unknown> = {}) => validateMemory(rawMemory({ updated_at: updated, ...over }));
  const live = (m: Memory, digest?: string): Versioned => (digest === undefined ? { memory: m, deletedAt: null } : { memory: m, deletedAt: null, digest });
  const tomb = (m: Memory, at: string): Versioned => ({ memory: m, deletedAt: at });

  it('later updated_at wins', () => {
    const older = live(mem('2024-01-01T00:00:00Z'));
    const newer = live(mem('2024-01-01T00:00:00.000001Z'));
    expect(compareVersions(newer, older)).toBeGreaterThan(0);
    expect(compareVersions(older, newer)).toBeLessThan(0);
  });

  it('compares instants, not strings', () => {
    const a = live(mem('2024-01-01T01:00:00+01:00')); // 00:00Z
    const b = live(mem('2024-01-01T00:30:00Z'));
    expect(compareVersions(b, a)).toBeGreaterThan(0);
  });

  it('uses the tombstone time for deleted versions', () => {
    const m = mem('2024-01-01T00:00:00Z');
    const deletedLater = tomb(m, '2024-01-05T00:00:00Z');
    const updatedBetween = live(mem('2024-01-03T00:00:00Z'));
    const updatedAfter = live(mem('2024-01-06T00:00:00Z'));
    expect(compareVersions(deletedLater, updatedBetween)).toBeGreaterThan(0); // older copy never resurrects
    expect(compareVersions(updatedAfter, deletedLater)).toBeGreaterThan(0); // a newer update does
  });

  it('a tombstone beats a live copy at the same time', () => {
    const m = mem('2024-01-01T00:00:00Z');
    const t = tomb(m, '2024-01-01T00:00:00Z');
    expect(compareVersions(t, live(m))).toBeGreaterThan(0);
    expect(compareVersions(live(m), t)).toBeLessThan(0);
    // Even when the live copy's digest is as large as it gets.
    expect(compareVersions(live(m, 'f'.repeat(64)), t)).toBeLessThan(0);
  });

  it('two tombstones at the same time are equal', () => {
    const t1 = tomb(mem('2024-01-01T00:00:00Z', { content: 'x' }), '2024-02-01T00:00:00Z');
    const t2 = tomb(mem('2024-01-01T00:00:00Z', { content: 'y' }), '2024-02-01T00:00:00Z');
    expect(compareVersions(t1, t2)).toBe(0);
  });

  it('breaks equal-time ties by the greater digest, symmetrically and deterministically', () => {
    const a = mem('2024-01-01T00:00:00Z', { content: 'version A' });
    const b = mem('2024-01-01T00:00:00Z', { content: 'version B' });
    const ab = compareVersions(live(a), live(b));
    const ba = compareVersions(live(b), live(a));
    expect(ab).not.toBe(0);
    expect(Math.sign(ab)).toBe(-Math.sign(ba));
    const expectedWinner = memoryDigest(a) > memoryDigest(b) ? 'a' : 'b';
    expect(ab > 0 ? 'a' : 'b').toBe(expectedWinner);
    // Same answer with keys in another order (canonical JSON).
    const aReordered = Object.fromEntries(Object.entries(a).reverse()) as Memory;
    expect(compareVersions(live(aReordered), live(b))).toBe(ab);
    for (let i = 0; i < 5; i++) expect(compareVersions(live(a), live(b))).toBe(ab);
  });

  it('honours a precomputed digest', () => {
    const m = mem('2024-01-01T00:00:00Z');
    expect(compareVersions(live(m, 'ff'), live(m, '00'))).toBeGreaterThan(0);
    expect(compareVersions(live(m, '00'), live(m, 'ff'))).toBeLessThan(0);
  });

  it('identical versions compare equal', () => {
    const m = mem('2024-01-01T00:00:00Z');
    expect(compareVersions(live(m), live(structuredClone(m)))).toBe(0);
  });
});

describe('defaultExpiry', () => {
  const created = '2024-01-01T00:00:00.000000+00:00';

  it('short tier expires after 6 hours', () => {
    expect(defaultExpiry('short', created)).toBe('2024-01-01T06:00:00.000000+00:00');
  });

  it('mid tier expires after 7 days', () => {
    expect(defaultExpiry('mid', created)).toBe('2024-01-08T00:00:00.000000+00:00');
    expect(defaultExpiry('mid', '2024-02-25T12:00:00.123456+00:00')).toBe('2024-03-03T12:00:00.123456+00:00');
  });

  it('long tier never expires', () => {
    expect(defaultExpiry('long', created)).toBeUndefined();
  });

  it('accepts any RFC 3339 created_at and returns undefined for garbage', () => {
    expect(defaultExpiry('short', '2024-01-01T02:00:00+02:00')).toBe('2024-01-01T06:00:00.000000+00:00');
    expect(defaultExpiry('short', 'not a time')).toBeUndefined();
  });
});

describe('validateMemory against prototype pollution', () => {
  it('refuses a top-level "__proto__" key before copying anything', () => {
    const raw = JSON.parse(`{"__proto__":{"polluted":1,"expires_at":"2030-01-01T00:00:00Z"},${JSON.stringify(rawMemory()).slice(1)}`);
    expect(() => validateMemory(raw)).toThrow(ValidationError);
    try {
      validateMemory(raw);
    } catch (err) {
      expect((err as ValidationError).code).toBe('FORBIDDEN_KEY');
    }
  });
});

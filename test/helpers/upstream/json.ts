/**
 * A strict JSON reader that keeps what serde_json sees and JSON.parse hides: the lexeme of
 * every number (integer vs float, range), duplicate object keys, and refuses what serde_json
 * refuses (invalid UTF-8, lone surrogates, raw control characters in strings, numbers out of
 * f64 range, nesting deeper than 128). Facts from upstream's serde_json 1.0.149 (Cargo.lock
 * of release/v0.7.0), used by `serde_json::from_slice` in src/handlers/federation_receive.rs.
 */
export type JNode =
  | { t: 'null' }
  | { t: 'bool'; v: boolean }
  | { t: 'num'; raw: string; int: boolean }
  | { t: 'str'; v: string }
  | { t: 'arr'; v: JNode[] }
  | { t: 'obj'; v: Array<[string, JNode]> };

export class JsonError extends Error {}

// serde_json: default recursion limit 128.
const MAX_DEPTH = 128;

export function parseJson(input: Uint8Array | string): JNode {
  let s: string;
  if (typeof input === 'string') s = input;
  else {
    try {
      // serde_json::from_slice refuses invalid UTF-8 ("invalid unicode code point").
      s = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(input);
    } catch {
      throw new JsonError('invalid unicode code point');
    }
  }
  let i = 0;
  const ws = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  };
  const fail = (msg: string): never => {
    throw new JsonError(`${msg} at offset ${i}`);
  };
  const value = (depth: number): JNode => {
    ws();
    const c = s[i];
    if (c === undefined) return fail('EOF while parsing a value');
    if (c === '{' || c === '[') {
      if (depth >= MAX_DEPTH) fail('recursion limit exceeded');
      return c === '{' ? object(depth + 1) : array(depth + 1);
    }
    if (c === '"') return { t: 'str', v: string() };
    if (c === 't' && s.startsWith('true', i)) return (i += 4), { t: 'bool', v: true };
    if (c === 'f' && s.startsWith('false', i)) return (i += 5), { t: 'bool', v: false };
    if (c === 'n' && s.startsWith('null', i)) return (i += 4), { t: 'null' };
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    return fail('expected value');
  };
  const number = (): JNode => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(s.slice(i, i + 400));
    if (!m) return fail('invalid number');
    const raw = m[0];
    i += raw.length;
    const int = m[2] === undefined && m[3] === undefined;
    // An integer beyond u64/i64 is read as f64; any f64 beyond range is an error.
    if (!Number.isFinite(Number(raw))) fail('number out of range');
    return { t: 'num', raw, int };
  };
  const string = (): string => {
    i++; // opening quote
    let out = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) return fail('EOF while parsing a string');
      const code = c.charCodeAt(0);
      if (c === '"') {
        i++;
        return out;
      }
      if (code < 0x20) fail('control character (\\u0000-\\u001F) found while parsing a string');
      if (c !== '\\') {
        out += c;
        i++;
        continue;
      }
      const e = s[i + 1];
      i += 2;
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e !== undefined && e in simple) {
        out += simple[e];
        continue;
      }
      if (e !== 'u') fail('invalid escape');
      const hex = (): number => {
        const h = s.slice(i, i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('invalid escape');
        i += 4;
        return parseInt(h, 16);
      };
      const u = hex();
      if (u >= 0xdc00 && u <= 0xdfff) fail('lone trailing surrogate in hex escape');
      if (u >= 0xd800 && u <= 0xdbff) {
        if (s[i] !== '\\' || s[i + 1] !== 'u') fail('unexpected end of hex escape');
        i += 2;
        const lo = hex();
        if (lo < 0xdc00 || lo > 0xdfff) fail('lone leading surrogate in hex escape');
        out += String.fromCharCode(u, lo);
      } else out += String.fromCharCode(u);
    }
  };
  const array = (depth: number): JNode => {
    i++;
    const v: JNode[] = [];
    ws();
    if (s[i] === ']') return i++, { t: 'arr', v };
    for (;;) {
      v.push(value(depth));
      ws();
      if (s[i] === ',') {
        i++;
        continue;
      }
      if (s[i] === ']') return i++, { t: 'arr', v };
      fail('expected `,` or `]`');
    }
  };
  const object = (depth: number): JNode => {
    i++;
    const v: Array<[string, JNode]> = [];
    ws();
    if (s[i] === '}') return i++, { t: 'obj', v };
    for (;;) {
      ws();
      if (s[i] !== '"') fail('key must be a string');
      const k = string();
      ws();
      if (s[i] !== ':') fail('expected `:`');
      i++;
      v.push([k, value(depth)]);
      ws();
      if (s[i] === ',') {
        i++;
        continue;
      }
      if (s[i] === '}') return i++, { t: 'obj', v };
      fail('expected `,` or `}`');
    }
  };
  const root = value(0);
  ws();
  if (i < s.length) fail('trailing characters');
  return root;
}

/** serde_json::Value semantics: an object keeps the last of duplicate keys. */
export function toValue(n: JNode): unknown {
  switch (n.t) {
    case 'null':
      return null;
    case 'bool':
      return n.v;
    case 'num':
      return Number(n.raw);
    case 'str':
      return n.v;
    case 'arr':
      return n.v.map(toValue);
    case 'obj': {
      const o: Record<string, unknown> = {};
      for (const [k, v] of n.v) o[k] = toValue(v);
      return o;
    }
  }
}

/**
 * serde_json's float text (ryu): integral values keep a `.0` ("1.0"), exponents carry no
 * `+` ("1e21"). Used where upstream serialises an f64.
 */
export function rustF64(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) < 1e16) return `${x}.0`;
  return String(x).replace('e+', 'e');
}

/**
 * serde_json::to_vec of a serde_json::Value: compact, object keys sorted (a BTreeMap: the
 * release/v0.7.0 Cargo.lock has no indexmap under serde_json, so no `preserve_order`).
 * `floats` names the object keys whose numbers are f64 in upstream's types.
 */
export function rustJson(v: unknown, floats: ReadonlySet<string> = new Set(), key = ''): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number') return floats.has(key) ? rustF64(v) : String(v);
  if (typeof v === 'string' || typeof v === 'boolean') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map((x) => rustJson(x, floats, key)).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : Buffer.from(a) > Buffer.from(b) ? 1 : 0));
  return `{${keys.map((k) => `${JSON.stringify(k)}:${rustJson(o[k], floats, k)}`).join(',')}}`;
}

/** Byte length of a node as serde_json would re-serialise it (for validate_metadata's size cap). */
export function serdeLength(n: JNode): number {
  switch (n.t) {
    case 'null':
      return 4;
    case 'bool':
      return n.v ? 4 : 5;
    case 'num':
      return (n.int && Number.isSafeInteger(Number(n.raw)) ? n.raw.replace(/^-0$/, '0') : rustF64(Number(n.raw))).length;
    case 'str':
      return Buffer.byteLength(JSON.stringify(n.v));
    case 'arr':
      return 2 + Math.max(0, n.v.length - 1) + n.v.reduce((a, x) => a + serdeLength(x), 0);
    case 'obj': {
      const last = new Map(n.v);
      let len = 2 + Math.max(0, last.size - 1);
      for (const [k, x] of last) len += Buffer.byteLength(JSON.stringify(k)) + 1 + serdeLength(x);
      return len;
    }
  }
}

/** validate.rs json_depth over a node (objects and arrays count one level each). */
export function jsonDepth(n: JNode): number {
  if (n.t === 'obj') return 1 + Math.max(0, ...[...new Map(n.v).values()].map(jsonDepth));
  if (n.t === 'arr') return 1 + Math.max(0, ...n.v.map(jsonDepth));
  return 0;
}

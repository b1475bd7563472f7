import { describe, expect, it } from 'vitest';
import { parseJson, parsePushBody, UpstreamStore, upstreamValidate as v, urlencodingEncode, syncSinceUrl, globMatch, projectable, NonceCache, rustJson, verifyUpstreamSig } from '../helpers/upstream-peer.js';
import { deMemory, type UpMemory } from '../helpers/upstream/serde.js';
import { FakePeer } from '../helpers/peer.js';

// The conformance peer's rules, table-driven: each row is a fact read in upstream's source
// (the file named in the helper's comments); a change that breaks a rule fails its row.

const row = (over: Record<string, unknown> = {}) => ({
  id: 'm-1',
  tier: 'long',
  namespace: 'fed/test',
  title: 'a title',
  content: 'some content',
  tags: [],
  priority: 5,
  confidence: 1.0,
  source: 'api',
  access_count: 0,
  created_at: '2026-01-01T00:00:00.000000+00:00',
  updated_at: '2026-01-01T00:00:00.000000+00:00',
  metadata: {},
  ...over,
});
const body = (mems: unknown[], extra: Record<string, unknown> = {}) => Buffer.from(JSON.stringify({ sender_agent_id: 'a', memories: mems, ...extra }));
/** Serde + validate verdict for one row text: 'serde: ...', 'invalid: ...' or 'ok'. */
const verdict = (text: string): string => {
  const p = parsePushBody(Buffer.from(`{"sender_agent_id":"a","memories":[${text}]}`));
  if (!p.ok) return `serde: ${p.error}`;
  const m = p.body.memories[0]!;
  const r = v.validateMemory(m.mem, m.metadataNode);
  return r ? `invalid: ${r}` : 'ok';
};
const json = (over: Record<string, unknown>) => JSON.stringify(row(over));

describe('serde rules (src/models/memory.rs Memory, federation_receive.rs SyncPushBody)', () => {
  it.each([
    ['a well-formed row', json({}), 'ok'],
    ['missing required title', JSON.stringify((({ title: _t, ...r }) => r)(row())), 'serde: missing field `title`'],
    ['missing required tags', JSON.stringify((({ tags: _t, ...r }) => r)(row())), 'serde: missing field `tags`'],
    ['priority as a float lexeme', json({}).replace('"priority":5', '"priority":5.0'), 'serde: invalid type: floating point `5.0`, expected i32'],
    ['priority out of i32', json({ priority: 3_000_000_000 }), 'serde: invalid value: integer `3000000000`, expected i32'],
    ['confidence as an integer (f64 accepts it)', json({ confidence: 1 }), 'ok'],
    ['title null', json({ title: null }), 'serde: invalid type: null, expected a string'],
    ['unknown tier', json({ tier: 'forever' }), 'serde: unknown variant `forever`, expected one of `short`, `mid`, `long`'],
    ['unknown memory_kind', json({ memory_kind: 'thought' }), expect.stringMatching(/^serde: unknown variant `thought`/)],
    ['unknown confidence_source', json({ confidence_source: 'guess' }), expect.stringMatching(/^serde: unknown variant `guess`/)],
    ['citations not an array', json({ citations: 'x' }), 'serde: invalid type: string "x", expected a sequence'],
    ['source_span with a negative start', json({ source_span: { start: -1, end: 2 } }), 'serde: invalid value: integer `-1`, expected usize'],
    ['persona_version as a string', json({ persona_version: '2' }), 'serde: invalid type: string "2", expected i32'],
    ['reflection_depth null (no Option)', json({ reflection_depth: null }), 'serde: invalid type: null, expected i32'],
    ['confidence_signals missing a field', json({ confidence_signals: { source_age_days: 1 } }), 'serde: missing field `atom_derivation`'],
    ['a duplicate known key', json({}).replace('{"id":"m-1"', '{"id":"m-1","id":"m-2"'), 'serde: duplicate field `id`'],
    ['an unknown key (ignored)', json({ newer_field: 1 }), 'ok'],
    ['expires_at null (Option)', json({ expires_at: null }), 'ok'],
  ])('%s', (_name, text, expected) => {
    expect(verdict(text)).toEqual(expected);
  });

  it('drops unknown keys and fills upstream defaults', () => {
    const { mem } = deMemory(parseJson(json({ extra: true })));
    expect(mem).not.toHaveProperty('extra');
    expect(mem).toMatchObject({ reflection_depth: 0, memory_kind: 'observation', citations: [], confidence_source: 'caller_provided', version: 1, metadata: {} });
  });

  it.each([
    ['invalid UTF-8', Buffer.concat([Buffer.from('{"sender_agent_id":"a","memories":[],"x":"'), Buffer.from([0xff]), Buffer.from('"}')]), /invalid unicode/],
    ['a lone surrogate escape', Buffer.from('{"sender_agent_id":"a","memories":[],"x":"\\ud800"}'), /unexpected end of hex escape/],
    ['a number beyond f64', Buffer.from('{"sender_agent_id":"a","memories":[],"x":1e400}'), /number out of range/],
    ['a missing memories lane', Buffer.from('{"sender_agent_id":"a"}'), /missing field `memories`/],
    ['a link with an unknown relation', body([], { links: [{ source_id: 'a', target_id: 'b', relation: 'likes', created_at: 'x' }] }), /unknown variant `likes`/],
    ['a raw control character in a string', Buffer.from('{"sender_agent_id":"a","memories":[],"x":"\u0001"}'), /control character/],
  ])('refuses the whole body on %s', (_name, raw, msg) => {
    const p = parsePushBody(raw);
    expect(p.ok).toBe(false);
    if (!p.ok) expect(p.error).toMatch(msg);
  });
});

describe('validate_memory (src/validate.rs)', () => {
  it.each([
    ['content with \\r', json({ content: 'a\rb' }), 'invalid: content contains invalid characters'],
    ['content with a C1 control (U+0085)', json({ content: 'a\u0085b' }), 'invalid: content contains invalid characters'],
    ['content with \\n and \\t', json({ content: 'a\n\tb' }), 'ok'],
    ['whitespace-only content', json({ content: ' \n\t ' }), 'invalid: content cannot be empty'],
    ['content of 65,537 bytes', json({ content: 'x'.repeat(65_537) }), 'invalid: content exceeds max size of 65536 bytes'],
    ['title with U+0085 inside', json({ title: 'a\u0085b' }), 'invalid: title contains invalid characters'],
    ['title with a trailing NEL (Rust trims it)', json({ title: 'ab\u0085' }), 'ok'],
    ['title with a leading \\r (checked trimmed)', json({ title: '\rab' }), 'ok'],
    ['title of 513 characters', json({ title: 'é'.repeat(513) }), 'invalid: title exceeds max length of 512 characters'],
    ['namespace with a tab (allowed upstream)', json({ namespace: 'a\tb' }), 'ok'],
    ['namespace with a space', json({ namespace: 'a b' }), 'invalid: namespace cannot contain spaces (use hyphens or underscores)'],
    ['namespace with a leading space (trimmed away)', json({ namespace: ' ab' }), 'ok'],
    ['namespace with a dot segment', json({ namespace: 'a/./b' }), "invalid: namespace segments '.' and '..' are not allowed"],
    ['namespace 9 levels deep', json({ namespace: 'a/b/c/d/e/f/g/h/i' }), 'invalid: namespace depth 9 exceeds max of 8'],
    ['id with a slash', json({ id: 'a/b' }), "invalid: id may not contain '/' or '\\' (path-traversal guard)"],
    ['id with a space', json({ id: 'a b' }), 'invalid: id contains characters outside the allowed set [A-Za-z0-9_:.@-] (path-traversal guard)'],
    ['unknown source', json({ source: 'robot' }), expect.stringMatching(/^invalid: invalid source 'robot'/)],
    ['source "claude" (back-compat)', json({ source: 'claude' }), 'ok'],
    ['an empty tag', json({ tags: [' '] }), 'invalid: tags cannot contain empty strings'],
    ['51 tags', json({ tags: Array.from({ length: 51 }, (_, i) => `t${i}`) }), 'invalid: too many tags (max 50)'],
    ['priority 0', json({ priority: 0 }), 'invalid: priority must be between 1 and 10 (got 0)'],
    ['confidence 1.5', json({ confidence: 1.5 }), 'invalid: confidence must be between 0.0 and 1.0 (got 1.5)'],
    ['negative access_count', json({ access_count: -1 }), 'invalid: access_count cannot be negative'],
    ['updated_at without an offset', json({ updated_at: '2026-01-01T00:00:00' }), 'invalid: updated_at is not valid RFC3339'],
    ['updated_at with a space separator (chrono accepts)', json({ updated_at: '2026-01-01 00:00:00Z' }), 'ok'],
    ['updated_at with nanoseconds', json({ updated_at: '2026-01-01T00:00:00.123456789Z' }), 'ok'],
    ['updated_at on 30 February', json({ updated_at: '2026-02-30T00:00:00Z' }), 'invalid: updated_at is not valid RFC3339'],
    ['metadata not an object', json({ metadata: [] }), 'invalid: metadata must be a JSON object'],
    ['metadata 33 levels deep', json({ metadata: JSON.parse('{"a":'.repeat(33) + '1' + '}'.repeat(33)) }), 'invalid: metadata nesting depth exceeds limit of 32 (got 33)'],
    ['a citation without a scheme', json({ citations: [{ uri: 'http://x', accessed_at: '2026-01-01T00:00:00Z' }] }), 'invalid: source URI must start with one of: uri:, doc:, file:'],
    ['source_span start >= end', json({ source_span: { start: 2, end: 2 } }), 'invalid: source_span requires start < end (got start=2, end=2)'],
    ['a past expires_at (accepted on import)', json({ expires_at: '2000-01-01T00:00:00Z' }), 'ok'],
  ])('%s', (_name, text, expected) => {
    expect(verdict(text)).toEqual(expected);
  });

  it.each([
    ['host:a', null],
    ['daemon', "agent_id 'daemon' is reserved for internal use and cannot be supplied by wire callers"],
    ['a b', "agent_id contains invalid character ' ' (allowed: alphanumeric, _-:@./)"],
    ['../x', "agent_id may not contain '..' (path-traversal guard)"],
  ])('validate_agent_id(%j)', (id, expected) => {
    expect(v.validateAgentId(id)).toBe(expected);
  });
});

describe('store semantics (src/storage/mod.rs)', () => {
  const mem = (over: Partial<UpMemory>): UpMemory => deMemory(parseJson(json(over as Record<string, unknown>))).mem;

  it('upserts on (title, namespace): a new id with a known title merges into the existing row', () => {
    const s = new UpstreamStore();
    s.insertIfNewer(mem({ id: 'a', content: 'old' }));
    expect(s.insertIfNewer(mem({ id: 'b', content: 'new', updated_at: '2026-01-02T00:00:00Z' }))).toBe('a');
    expect(s.memories.get('a')).toMatchObject({ content: 'new' });
    expect(s.memories.has('b')).toBe(false);
  });

  it('refuses a known id under another title (the id primary key, not the upsert target)', () => {
    const s = new UpstreamStore();
    s.insertIfNewer(mem({ id: 'a' }));
    expect(() => s.insertIfNewer(mem({ id: 'a', title: 'renamed', updated_at: '2026-01-02T00:00:00Z' }))).toThrow(/UNIQUE constraint failed: memories.id/);
  });

  it('keeps the newer copy: an older update changes no content but ratchets priority', () => {
    const s = new UpstreamStore();
    s.insertIfNewer(mem({ id: 'a', content: 'new', priority: 3, updated_at: '2026-01-02T00:00:00Z' }));
    s.insertIfNewer(mem({ id: 'a', content: 'old', priority: 9 }));
    expect(s.memories.get('a')).toMatchObject({ content: 'new', priority: 9, updated_at: '2026-01-02T00:00:00Z' });
  });

  it('serves since by string comparison, ordered by updated_at, with the 15-column defaults', () => {
    const s = new UpstreamStore();
    s.insertIfNewer(mem({ id: 'a', title: 'a', updated_at: '2026-01-01T00:00:00.5Z', reflection_depth: 2 }));
    s.insertIfNewer(mem({ id: 'b', title: 'b', updated_at: '2026-01-01T00:00:00Z' }));
    // '...00.5Z' > '...00Z' is false as strings ('.' < 'Z'): upstream compares text, not instants.
    expect(s.updatedSince('2026-01-01T00:00:00Z', 10).map((m) => m.id)).toEqual([]);
    expect(s.updatedSince(undefined, 10).map((m) => m.id)).toEqual(['a', 'b']);
    expect(s.updatedSince(undefined, 10)[0]).toMatchObject({ reflection_depth: 0 });
  });

  it('archives move the row out of memories; restore brings it back with a fresh updated_at', () => {
    const s = new UpstreamStore();
    s.insertIfNewer(mem({ id: 'a' }));
    expect(s.archive('a', 'sync_push')).toBe(true);
    expect(s.archive('a', 'sync_push')).toBe(false);
    expect(s.memories.has('a')).toBe(false);
    expect(s.restore('a')).toBe(true);
    expect(s.memories.get('a')!.updated_at > '2026-01-01T00:00:00.000000+00:00').toBe(true);
  });

  it('links need both ends live and are idempotent on (source, target, relation)', () => {
    const s = new UpstreamStore();
    s.insertIfNewer(mem({ id: 'a', title: 'a' }));
    const link = { source_id: 'a', target_id: 'b', relation: 'related_to', created_at: '2026-01-01T00:00:00Z' };
    expect(() => s.createLinkInbound(link, 'unsigned')).toThrow(/MemoryNotFound target/);
    s.insertIfNewer(mem({ id: 'b', title: 'b' }));
    s.createLinkInbound(link, 'unsigned');
    s.createLinkInbound(link, 'unsigned');
    expect(s.links.size).toBe(1);
  });
});

describe('wire details', () => {
  it('serialises like serde_json: sorted keys, f64 with .0', () => {
    expect(rustJson({ sender_agent_id: 'a', memories: [{ confidence: 1, priority: 5 }], dry_run: false }, new Set(['confidence']))).toBe('{"dry_run":false,"memories":[{"confidence":1.0,"priority":5}],"sender_agent_id":"a"}');
  });

  it('builds the poller URL as catchup.rs does (byte-wise percent-encoding, peer not encoded)', () => {
    expect(urlencodingEncode('2026-01-01T00:00:00.000000+00:00')).toBe('2026-01-01T00%3A00%3A00.000000%2B00%3A00');
    expect(syncSinceUrl('http://h', 'host:a', undefined)).toBe('http://h/api/v1/sync/since?peer=host:a');
  });

  it.each([
    ['public/**', 'public', true],
    ['public/**', 'publicx', false],
    ['public/*', 'public/a/b', false],
    ['*/notes', 'alice/notes', true],
    ['exact', 'exact', true],
  ])('glob %s ~ %s = %s', (p, t, exp) => expect(globMatch(p, t)).toBe(exp));

  it('projects private rows only to their owner or inbox target; federation_share opts in', () => {
    const m = (metadata: unknown) => ({ metadata }) as UpMemory;
    expect(projectable(m({ agent_id: 'x' }), 'y')).toBe(false);
    expect(projectable(m({ agent_id: 'y' }), 'y')).toBe(true);
    expect(projectable(m({ scope: 'shared' }), 'y')).toBe(true);
    expect(projectable(m({ federation_share: true }), 'y')).toBe(true);
    expect(projectable(m({ federation_share: 'true' }), 'y')).toBe(false);
  });

  it('keeps 10,000 nonces per peer, evicting the oldest', () => {
    const c = new NonceCache();
    for (let i = 0; i < 10_000; i++) c.recordAndCheck('p', `n${i}`);
    expect(c.recordAndCheck('p', 'n0')).toBe('replay');
    c.recordAndCheck('p', 'fresh');
    expect(c.recordAndCheck('p', 'n0')).toBe('fresh');
    expect(c.recordAndCheck('q', 'n1')).toBe('fresh');
  });

  it('checks signatures as signing.rs does: case-sensitive prefix, canonical padded base64, 64 bytes', async () => {
    const p = await new FakePeer('p').init();
    const bytes = Buffer.from('body');
    const good = p.signPost(bytes, 'n').slice('ed25519='.length);
    const signed = Buffer.concat([bytes, Buffer.from([0]), Buffer.from('n')]);
    const pub = Buffer.from(p.pub);
    expect(verifyUpstreamSig(`ed25519=${good}`, signed, pub)).toBeNull();
    expect(verifyUpstreamSig(`ed25519=${good}; v2=x`, signed, pub)).toBeNull();
    expect(verifyUpstreamSig(`ED25519=${good}`, signed, pub)).toBe('x_memory_sig_unknown_algorithm');
    expect(verifyUpstreamSig(`ed25519=${good.replace(/==$/, '')}`, signed, pub)).toBe('x_memory_sig_malformed');
    expect(verifyUpstreamSig(`ed25519=${Buffer.alloc(32).toString('base64')}`, signed, pub)).toBe('x_memory_sig_malformed');
    expect(verifyUpstreamSig(`ed25519=${good}`, Buffer.from('other'), pub)).toBe('x_memory_sig_bad_signature');
  });
});

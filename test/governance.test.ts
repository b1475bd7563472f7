import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileGlob } from '../src/glob.js';
import { checkMemory, checkNamespace, checkUpdate, loadPolicy, parsePolicy } from '../src/governance.js';
import { validateMemory, type Memory } from '../src/memory/model.js';

const mem = (over: Record<string, unknown> = {}): Memory =>
  validateMemory({
    id: 'm-1',
    tier: 'long',
    namespace: 'shared/a',
    title: 't',
    content: 'c',
    tags: [],
    priority: 5,
    confidence: 1,
    source: 'api',
    access_count: 0,
    created_at: '2026-01-01T00:00:00.000000+00:00',
    updated_at: '2026-01-01T00:00:00.000000+00:00',
    metadata: {},
    ...over,
  });

describe('compileGlob', () => {
  const matches = (glob: string, ns: string) => compileGlob(glob).test(ns);

  it('`*` matches within one segment only', () => {
    expect(matches('tmp/*', 'tmp/a')).toBe(true);
    expect(matches('tmp/*', 'tmp/')).toBe(true);
    expect(matches('tmp/*', 'tmp/a/b')).toBe(false);
    expect(matches('tmp/*', 'tmp')).toBe(false);
    expect(matches('a*c', 'abbc')).toBe(true);
    expect(matches('a*c', 'ab/c')).toBe(false);
  });

  it('`**` matches across segments', () => {
    expect(matches('secret/**', 'secret/a')).toBe(true);
    expect(matches('secret/**', 'secret/a/b/c')).toBe(true);
    expect(matches('secret/**', 'secret')).toBe(false);
    expect(matches('**', 'any/thing')).toBe(true);
    expect(matches('a/**/z', 'a/b/c/z')).toBe(true);
  });

  it('matches the whole namespace, never a prefix or suffix', () => {
    expect(matches('global', 'global')).toBe(true);
    expect(matches('global', 'global2')).toBe(false);
    expect(matches('global', 'xglobal')).toBe(false);
    expect(matches('secret/**', 'notsecret/a')).toBe(false);
  });

  it('treats regex characters in a glob literally', () => {
    expect(matches('a.b', 'a.b')).toBe(true);
    expect(matches('a.b', 'axb')).toBe(false);
    expect(matches('a+b', 'a+b')).toBe(true);
    expect(matches('a+b', 'aab')).toBe(false);
    expect(matches('(x)|y', '(x)|y')).toBe(true);
    expect(matches('(x)|y', 'y')).toBe(false);
    expect(matches('a?', 'a?')).toBe(true);
    expect(matches('a?', 'ab')).toBe(false);
    expect(matches('[ab]', 'a')).toBe(false);
    expect(matches('$^', '$^')).toBe(true);
  });
});

describe('hostile deny globs', () => {
  it('judge a 512-character namespace against backtracking-hostile globs without stalling', () => {
    // A backtracking RegExp takes ~n^k steps on these (k stars); the matcher is linear.
    const p = parsePolicy(JSON.stringify({ deny_namespaces: ['*a*a*a*a*a*a*a*a*b', '**a**a**a**a**a**a**b', `${'*a'.repeat(30)}*b`] }), 'hostile');
    expect(checkNamespace(p, 'a'.repeat(512))).toBeNull();
    expect(checkNamespace(p, `${'a'.repeat(511)}b`)?.code).toBe('GOVERNANCE_NAMESPACE_DENIED');
  });
});

describe('parsePolicy', () => {
  it('parses every field and keeps the source', () => {
    const src = { deny_namespaces: ['secret/**'], max_content_bytes: 10, max_metadata_bytes: 20, peer_namespaces: { 'peer-b': ['shared/**', 'global'] } };
    const p = parsePolicy(JSON.stringify(src), 'test');
    expect(p.denyNamespaces).toHaveLength(1);
    expect(p.maxContentBytes).toBe(10);
    expect(p.maxMetadataBytes).toBe(20);
    expect([...p.peerNamespaces.keys()]).toEqual(['peer-b']);
    expect(p.peerNamespaces.get('peer-b')).toHaveLength(2);
    expect(p.source).toEqual(src);
  });

  it('defaults to no rules: an empty policy refuses nothing', () => {
    const p = parsePolicy('{}', 'test');
    expect(p.denyNamespaces).toEqual([]);
    expect(p.peerNamespaces.size).toBe(0);
    expect('maxContentBytes' in p).toBe(false);
    expect('maxMetadataBytes' in p).toBe(false);
    expect(checkMemory(p, mem({ content: 'x'.repeat(60_000) }), 'any-peer')).toBeNull();
  });

  it('names the origin and the reason for JSON that does not parse', () => {
    expect(() => parsePolicy('{"deny_namespaces": [', '/etc/policy.json')).toThrow(/^governance policy \(\/etc\/policy\.json\) is not valid JSON: /);
  });

  it.each([
    ['an unknown key', { deny_namespace: ['x'] }, /is invalid: .*deny_namespace/],
    ['a string where a list is expected', { deny_namespaces: 'secret/**' }, /is invalid: deny_namespaces: /],
    ['an empty glob', { deny_namespaces: [''] }, /is invalid: deny_namespaces\.0: /],
    ['a zero size cap', { max_content_bytes: 0 }, /is invalid: max_content_bytes: /],
    ['a fractional size cap', { max_metadata_bytes: 1.5 }, /is invalid: max_metadata_bytes: /],
    ['a negative size cap', { max_metadata_bytes: -1 }, /is invalid: max_metadata_bytes: /],
    ['a peer mapped to a string', { peer_namespaces: { p: 'shared/**' } }, /is invalid: peer_namespaces\.p: /],
    ['a list at the top', [], /is invalid: /],
  ])('refuses %s with the field named', (_what, raw, message) => {
    expect(() => parsePolicy(JSON.stringify(raw), 'GOVERNANCE_POLICY')).toThrow(/^governance policy \(GOVERNANCE_POLICY\) /);
    expect(() => parsePolicy(JSON.stringify(raw), 'GOVERNANCE_POLICY')).toThrow(message);
  });

  it('reports every invalid field at once', () => {
    expect(() => parsePolicy(JSON.stringify({ deny_namespaces: 1, max_content_bytes: 'big' }), 'x')).toThrow(/deny_namespaces: .*; max_content_bytes: /);
  });
});

describe('loadPolicy', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'memfed-policy-'));

  it('is null without a file or an inline policy', async () => {
    expect(await loadPolicy({ file: '', inline: '' })).toBeNull();
  });

  it('reads GOVERNANCE_FILE, which wins over GOVERNANCE_POLICY', async () => {
    const file = path.join(dir, 'p.json');
    writeFileSync(file, JSON.stringify({ deny_namespaces: ['from-file'] }));
    const p = await loadPolicy({ file, inline: JSON.stringify({ deny_namespaces: ['inline'] }) });
    expect(p!.source.deny_namespaces).toEqual(['from-file']);
    expect((await loadPolicy({ file: '', inline: JSON.stringify({ deny_namespaces: ['inline'] }) }))!.source.deny_namespaces).toEqual(['inline']);
  });

  it('fails for a missing file and names the file for an invalid one', async () => {
    await expect(loadPolicy({ file: path.join(dir, 'nope.json'), inline: '' })).rejects.toThrow(/ENOENT/);
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, '{"max_content_bytes": "x"}');
    await expect(loadPolicy({ file: bad, inline: '{}' })).rejects.toThrow(`governance policy (${bad}) is invalid: max_content_bytes`);
  });
});

describe('checkMemory and checkNamespace', () => {
  const policy = parsePolicy(JSON.stringify({ deny_namespaces: ['tmp/*', 'secret/**'], max_content_bytes: 4, max_metadata_bytes: 12, peer_namespaces: { 'peer-b': ['shared/**'] } }), 't');

  it('refuses a denied namespace naming the rule that matched', () => {
    expect(checkNamespace(policy, 'secret/x/y')).toMatchObject({ code: 'GOVERNANCE_NAMESPACE_DENIED', rule: 'deny_namespaces[1]' });
    expect(checkNamespace(policy, 'tmp/x')).toMatchObject({ rule: 'deny_namespaces[0]' });
    expect(checkNamespace(policy, 'tmp/x/y')).toBeNull();
    expect(checkNamespace(null, 'secret/x')).toBeNull();
  });

  it('applies peer_namespaces to the listed peer only', () => {
    expect(checkNamespace(policy, 'private/a', 'peer-b')).toMatchObject({ code: 'GOVERNANCE_PEER_NAMESPACE', rule: 'peer_namespaces.peer-b' });
    expect(checkNamespace(policy, 'shared/a', 'peer-b')).toBeNull();
    expect(checkNamespace(policy, 'private/a', 'peer-unlisted')).toBeNull();
    expect(checkNamespace(policy, 'private/a')).toBeNull();
  });

  it('max_content_bytes is a limit on UTF-8 bytes, inclusive', () => {
    expect(checkMemory(policy, mem({ content: 'abcd' }))).toBeNull();
    expect(checkMemory(policy, mem({ content: 'abcde' }))).toMatchObject({ code: 'GOVERNANCE_CONTENT_TOO_LARGE', rule: 'max_content_bytes' });
    // two characters, four bytes: at the limit; three such characters are over it
    expect(checkMemory(policy, mem({ content: 'éé' }))).toBeNull();
    expect(checkMemory(policy, mem({ content: 'ééé' }))).toMatchObject({ code: 'GOVERNANCE_CONTENT_TOO_LARGE' });
  });

  it('max_metadata_bytes is a limit on the serialized metadata, inclusive', () => {
    // {"a":"1234"} is 12 bytes
    expect(checkMemory(policy, mem({ metadata: { a: '1234' } }))).toBeNull();
    expect(checkMemory(policy, mem({ metadata: { a: '12345' } }))).toMatchObject({ code: 'GOVERNANCE_METADATA_TOO_LARGE', rule: 'max_metadata_bytes' });
    expect(checkMemory(policy, mem({ metadata: { a: 'éé' } }))).toBeNull();
    expect(checkMemory(policy, mem({ metadata: { a: 'ééé' } }))).toMatchObject({ code: 'GOVERNANCE_METADATA_TOO_LARGE' });
  });

  it('checks in order: namespace, content, metadata, then the peer allowlist', () => {
    const all = { namespace: 'secret/a', content: 'toolong', metadata: { a: 'much too long' } };
    expect(checkMemory(policy, mem(all), 'peer-b')!.code).toBe('GOVERNANCE_NAMESPACE_DENIED');
    expect(checkMemory(policy, mem({ ...all, namespace: 'private/a' }), 'peer-b')!.code).toBe('GOVERNANCE_CONTENT_TOO_LARGE');
    expect(checkMemory(policy, mem({ ...all, namespace: 'private/a', content: 'ok' }), 'peer-b')!.code).toBe('GOVERNANCE_METADATA_TOO_LARGE');
    expect(checkMemory(policy, mem({ namespace: 'private/a', content: 'ok' }), 'peer-b')!.code).toBe('GOVERNANCE_PEER_NAMESPACE');
    expect(checkMemory(policy, mem({ namespace: 'private/a', content: 'ok' }))).toBeNull();
  });
});

describe('checkUpdate: a version replacing a stored memory', () => {
  const policy = parsePolicy(JSON.stringify({ deny_namespaces: ['secret/**'], max_content_bytes: 100, peer_namespaces: { 'peer-b': ['shared/**'] } }), 't');

  it('refuses moving a memory out of a namespace the writer may not write', () => {
    const r = checkUpdate(policy, { namespace: 'private/notes' }, mem({ id: 'x', namespace: 'shared/a' }), 'peer-b');
    expect(r).toMatchObject({ code: 'GOVERNANCE_PEER_NAMESPACE', rule: 'peer_namespaces.peer-b' });
    expect(r!.reason).toContain('moving memory x from private/notes to shared/a');
    expect(checkUpdate(policy, { namespace: 'secret/old' }, mem({ namespace: 'global' }))).toMatchObject({ code: 'GOVERNANCE_NAMESPACE_DENIED', rule: 'deny_namespaces[0]' });
  });

  it('refuses moving a memory into such a namespace (the new version is judged as a write)', () => {
    expect(checkUpdate(policy, { namespace: 'shared/a' }, mem({ namespace: 'private/x' }), 'peer-b')).toMatchObject({ code: 'GOVERNANCE_PEER_NAMESPACE' });
    expect(checkUpdate(policy, { namespace: 'global' }, mem({ namespace: 'secret/x' }))).toMatchObject({ code: 'GOVERNANCE_NAMESPACE_DENIED' });
  });

  it('judges the new version first: its own refusal is the one reported', () => {
    expect(checkUpdate(policy, { namespace: 'secret/old' }, mem({ namespace: 'global', content: 'x'.repeat(101) }))!.code).toBe('GOVERNANCE_CONTENT_TOO_LARGE');
  });

  it('allows moves between namespaces the writer may write, and anything with nothing stored', () => {
    expect(checkUpdate(policy, { namespace: 'shared/a' }, mem({ namespace: 'shared/b' }), 'peer-b')).toBeNull();
    expect(checkUpdate(policy, { namespace: 'private/a' }, mem({ namespace: 'private/b' }))).toBeNull();
    expect(checkUpdate(policy, undefined, mem({ namespace: 'shared/b' }), 'peer-b')).toBeNull();
    expect(checkUpdate(policy, null, mem({ namespace: 'shared/b' }), 'peer-b')).toBeNull();
    // a bare tombstone for an id never seen here stores no namespace
    expect(checkUpdate(policy, {}, mem({ namespace: 'shared/b' }), 'peer-b')).toBeNull();
    expect(checkUpdate(policy, { namespace: '' }, mem({ namespace: 'shared/b' }), 'peer-b')).toBeNull();
    expect(checkUpdate(null, { namespace: 'secret/old' }, mem({ namespace: 'global' }))).toBeNull();
  });

  it('judges an unchanged namespace like a fresh write (no second check)', () => {
    expect(checkUpdate(policy, { namespace: 'shared/a' }, mem({ namespace: 'shared/a' }), 'peer-b')).toBeNull();
    expect(checkUpdate(policy, { namespace: 'secret/a' }, mem({ namespace: 'secret/a' }))).toMatchObject({ code: 'GOVERNANCE_NAMESPACE_DENIED' });
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileGlob } from '../../src/glob.js';
import { checkMemory, checkNamespace, loadPolicy, parsePolicy } from '../../src/governance.js';
import type { Memory } from '../../src/memory/model.js';

function memory(over: Partial<Memory> = {}): Memory {
  return {
    id: 'm1',
    tier: 'mid',
    namespace: 'shared/notes',
    title: 't',
    content: 'c',
    tags: [],
    priority: 5,
    confidence: 0.5,
    source: 'api',
    access_count: 0,
    created_at: '2024-01-01T00:00:00Z',
    updated_at: '2024-01-01T00:00:00Z',
    metadata: {},
    version: 1,
    ...over,
  };
}

describe('namespace globs', () => {
  it('a single * matches within one segment only', () => {
    const re = compileGlob('team/*');
    expect(re.test('team/a')).toBe(true);
    expect(re.test('team/')).toBe(true);
    expect(re.test('team/a/b')).toBe(false);
    expect(re.test('team')).toBe(false);
  });

  it('** matches across segments', () => {
    const re = compileGlob('secret/**');
    expect(re.test('secret/a')).toBe(true);
    expect(re.test('secret/a/b/c')).toBe(true);
    expect(re.test('secret')).toBe(false);
    expect(re.test('public/secret/a')).toBe(false);
  });

  it('a glob is anchored at both ends', () => {
    const re = compileGlob('global');
    expect(re.test('global')).toBe(true);
    expect(re.test('xglobal')).toBe(false);
    expect(re.test('globalx')).toBe(false);
  });

  it('regex metacharacters in a glob match only themselves', () => {
    const re = compileGlob('a.b+c?(d)[e]{f}|g^h$i\\j');
    expect(re.test('a.b+c?(d)[e]{f}|g^h$i\\j')).toBe(true);
    expect(re.test('aXb+c?(d)[e]{f}|g^h$i\\j')).toBe(false);
    expect(re.test('a.bbc?(d)[e]{f}|g^h$i\\j')).toBe(false);
    expect(compileGlob('a|b').test('a')).toBe(false);
  });

  it('mixes * and ** in one glob', () => {
    const re = compileGlob('org/*/private/**');
    expect(re.test('org/x/private/y/z')).toBe(true);
    expect(re.test('org/x/y/private/z')).toBe(false);
  });
});

describe('parsePolicy', () => {
  it('turns the written policy into matchers and keeps the source', () => {
    const p = parsePolicy(
      JSON.stringify({ deny_namespaces: ['secret/**'], max_content_bytes: 10, max_metadata_bytes: 20, peer_namespaces: { 'peer-b': ['shared/**', 'global'] } }),
      'test',
    );
    expect(p.denyNamespaces.map((r) => r.source)).toEqual([compileGlob('secret/**').source]);
    expect(p.maxContentBytes).toBe(10);
    expect(p.maxMetadataBytes).toBe(20);
    expect([...p.peerNamespaces.keys()]).toEqual(['peer-b']);
    expect(p.peerNamespaces.get('peer-b')!.map((r) => r.test('global'))).toEqual([false, true]);
    expect(p.source.deny_namespaces).toEqual(['secret/**']);
  });

  it('an empty policy denies nothing and sets no limits', () => {
    const p = parsePolicy('{}', 'test');
    expect(p.denyNamespaces).toEqual([]);
    expect(p.peerNamespaces.size).toBe(0);
    expect('maxContentBytes' in p).toBe(false);
    expect('maxMetadataBytes' in p).toBe(false);
    expect(checkMemory(p, memory({ content: 'x'.repeat(100_000) }), 'peer-b')).toBeNull();
  });

  it('refuses text that is not JSON, naming where it came from', () => {
    expect(() => parsePolicy('{nope', '/etc/memfed/policy.json')).toThrow(/^governance policy \(\/etc\/memfed\/policy\.json\) is not valid JSON: /);
  });

  it('refuses unknown keys, naming the offending path', () => {
    expect(() => parsePolicy('{"deny_namespace": []}', 'GOVERNANCE_POLICY')).toThrow(/^governance policy \(GOVERNANCE_POLICY\) is invalid: .*deny_namespace/);
  });

  it('refuses a non-positive or fractional size limit', () => {
    expect(() => parsePolicy('{"max_content_bytes": 0}', 'x')).toThrow(/max_content_bytes: /);
    expect(() => parsePolicy('{"max_metadata_bytes": 1.5}', 'x')).toThrow(/max_metadata_bytes: /);
  });

  it('accepts globs up to 512 characters and lists up to 1000 globs, and refuses more', () => {
    const long = 'a'.repeat(512);
    const many = Array.from({ length: 1000 }, (_, i) => `ns${i}`);
    expect(parsePolicy(JSON.stringify({ deny_namespaces: [long], peer_namespaces: { p: many } }), 'x').denyNamespaces).toHaveLength(1);
    expect(parsePolicy(JSON.stringify({ deny_namespaces: many, peer_namespaces: { p: [long] } }), 'x').denyNamespaces).toHaveLength(1000);
    expect(() => parsePolicy(JSON.stringify({ deny_namespaces: [`${long}a`] }), 'x')).toThrow(/deny_namespaces\.0: /);
    expect(() => parsePolicy(JSON.stringify({ deny_namespaces: [...many, 'x'] }), 'x')).toThrow(/deny_namespaces: /);
    expect(() => parsePolicy(JSON.stringify({ peer_namespaces: { p: [`${long}a`] } }), 'x')).toThrow(/peer_namespaces\.p\.0: /);
    expect(() => parsePolicy(JSON.stringify({ peer_namespaces: { p: [...many, 'x'] } }), 'x')).toThrow(/peer_namespaces\.p: /);
  });

  it('refuses empty globs, joining every issue with its path', () => {
    let message = '';
    try {
      parsePolicy('{"deny_namespaces": [""], "peer_namespaces": {"p": [""]}}', 'x');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/deny_namespaces\.0: .+; peer_namespaces\.p\.0: /);
  });
});

describe('loadPolicy', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memfed-governance-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('no file and no inline policy means no governance', async () => {
    expect(await loadPolicy({ file: '', inline: '' })).toBeNull();
  });

  it('reads GOVERNANCE_FILE, which wins over an inline policy', async () => {
    const file = join(dir, 'policy.json');
    await writeFile(file, '{"deny_namespaces": ["from-file"]}');
    const p = await loadPolicy({ file, inline: '{"deny_namespaces": ["inline"]}' });
    expect(p!.source.deny_namespaces).toEqual(['from-file']);
  });

  it('reads the inline policy when there is no file', async () => {
    const p = await loadPolicy({ file: '', inline: '{"deny_namespaces": ["inline"]}' });
    expect(p!.source.deny_namespaces).toEqual(['inline']);
  });

  it('an invalid policy file fails the load with its path in the message', async () => {
    const file = join(dir, 'bad.json');
    await writeFile(file, '{"max_content_bytes": -1}');
    await expect(loadPolicy({ file, inline: '' })).rejects.toThrow(`governance policy (${file}) is invalid`);
    await expect(loadPolicy({ file: '', inline: '[' })).rejects.toThrow('governance policy (GOVERNANCE_POLICY) is not valid JSON');
  });
});

// Policies are parsed inside each test, never at collection time: a mutant that breaks
// parsing must fail tests, not the loading of the file.
describe('checkNamespace', () => {
  const policy = parsePolicy.bind(null, JSON.stringify({ deny_namespaces: ['a/**', 'secret/**'], peer_namespaces: { 'peer-b': ['shared/**', 'global'] } }), 't');

  it('without a policy everything is allowed', () => {
    expect(checkNamespace(null, 'secret/x', 'peer-b')).toBeNull();
  });

  it('names the deny rule that matched, by index', () => {
    expect(checkNamespace(policy(), 'secret/x')).toEqual({
      code: 'GOVERNANCE_NAMESPACE_DENIED',
      rule: 'deny_namespaces[1]',
      reason: 'namespace secret/x is not writable here',
    });
    expect(checkNamespace(policy(), 'a/x')!.rule).toBe('deny_namespaces[0]');
  });

  it('a denied namespace is denied to peers too, before their allow-list is consulted', () => {
    expect(checkNamespace(policy(), 'secret/x', 'peer-b')!.code).toBe('GOVERNANCE_NAMESPACE_DENIED');
  });

  it('a peer with an allow-list may write only matching namespaces', () => {
    expect(checkNamespace(policy(), 'shared/x', 'peer-b')).toBeNull();
    expect(checkNamespace(policy(), 'global', 'peer-b')).toBeNull();
    expect(checkNamespace(policy(), 'private', 'peer-b')).toEqual({
      code: 'GOVERNANCE_PEER_NAMESPACE',
      rule: 'peer_namespaces.peer-b',
      reason: 'peer peer-b may not write namespace private',
    });
  });

  it('a peer without an allow-list, and a local write, are judged by the deny list alone', () => {
    expect(checkNamespace(policy(), 'private', 'peer-c')).toBeNull();
    expect(checkNamespace(policy(), 'private')).toBeNull();
  });
});

describe('checkMemory', () => {
  const policy = parsePolicy.bind(
    null,
    JSON.stringify({ deny_namespaces: ['secret/**'], max_content_bytes: 4, max_metadata_bytes: 9, peer_namespaces: { 'peer-b': ['shared/**'] } }),
    't',
  );

  it('without a policy everything is allowed', () => {
    expect(checkMemory(null, memory({ namespace: 'secret/x' }), 'peer-b')).toBeNull();
  });

  it('allows content of exactly max_content_bytes and refuses one byte more', () => {
    expect(checkMemory(policy(), memory({ content: 'abcd' }))).toBeNull();
    expect(checkMemory(policy(), memory({ content: 'abcde' }))).toEqual({
      code: 'GOVERNANCE_CONTENT_TOO_LARGE',
      rule: 'max_content_bytes',
      reason: 'content exceeds 4 bytes',
    });
  });

  it('counts content in UTF-8 bytes, not characters', () => {
    // Two characters, four bytes: at the limit. Three characters, six bytes: over.
    expect(checkMemory(policy(), memory({ content: 'éé' }))).toBeNull();
    expect(checkMemory(policy(), memory({ content: 'ééé' }))!.code).toBe('GOVERNANCE_CONTENT_TOO_LARGE');
  });

  it('measures metadata as its JSON serialisation, in bytes, allowing exactly the limit', () => {
    // {"a":"b"} is 9 bytes; {"a":"é"} is 10.
    expect(checkMemory(policy(), memory({ metadata: { a: 'b' } }))).toBeNull();
    expect(checkMemory(policy(), memory({ metadata: { a: 'é' } }))).toEqual({
      code: 'GOVERNANCE_METADATA_TOO_LARGE',
      rule: 'max_metadata_bytes',
      reason: 'metadata exceeds 9 bytes',
    });
  });

  it('judges the namespace first, then content, then metadata, then the peer allow-list', () => {
    const big = { content: 'abcdef', metadata: { long: 'value' } };
    expect(checkMemory(policy(), memory({ namespace: 'secret/x', ...big }), 'peer-b')!.code).toBe('GOVERNANCE_NAMESPACE_DENIED');
    expect(checkMemory(policy(), memory({ namespace: 'private', ...big }), 'peer-b')!.code).toBe('GOVERNANCE_CONTENT_TOO_LARGE');
    expect(checkMemory(policy(), memory({ namespace: 'private', metadata: big.metadata }), 'peer-b')!.code).toBe('GOVERNANCE_METADATA_TOO_LARGE');
    expect(checkMemory(policy(), memory({ namespace: 'private' }), 'peer-b')!.code).toBe('GOVERNANCE_PEER_NAMESPACE');
  });

  it('applies the peer allow-list only to replicated rows', () => {
    expect(checkMemory(policy(), memory({ namespace: 'private' }))).toBeNull();
    expect(checkMemory(policy(), memory({ namespace: 'shared/x' }), 'peer-b')).toBeNull();
  });

  it('a policy with only a metadata limit does not limit content, and the reverse', () => {
    const metaOnly = parsePolicy('{"max_metadata_bytes": 2}', 't');
    expect(checkMemory(metaOnly, memory({ content: 'x'.repeat(1000) }))).toBeNull();
    const contentOnly = parsePolicy('{"max_content_bytes": 2}', 't');
    expect(checkMemory(contentOnly, memory({ metadata: { k: 'x'.repeat(1000) } }))).toBeNull();
  });
});

describe('namespaces upstream allows (validated trimmed, stored as sent; upstream src/validate.rs: validate_namespace)', () => {
  const policy = parsePolicy(JSON.stringify({ deny_namespaces: ['secret/**', 'private'], peer_namespaces: { 'peer-b': ['shared/**'] } }), 'test');

  it('** matches across a newline inside a namespace', () => {
    expect(compileGlob('secret/**').test('secret/a\nb')).toBe(true);
    expect(checkNamespace(policy, 'secret/a\nb')?.code).toBe('GOVERNANCE_NAMESPACE_DENIED');
  });

  it('surrounding whitespace does not slip a write past a deny glob', () => {
    for (const ns of [' secret/x', 'secret/x\t', '\u00a0private ', '\u0085private']) {
      expect(checkNamespace(policy, ns)?.code, JSON.stringify(ns)).toBe('GOVERNANCE_NAMESPACE_DENIED');
    }
  });

  it('a peer allowlist judges the trimmed namespace too', () => {
    expect(checkNamespace(policy, ' shared/x ', 'peer-b')).toBeNull();
    expect(checkNamespace(policy, ' other/x', 'peer-b')?.code).toBe('GOVERNANCE_PEER_NAMESPACE');
  });
});

import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Memory } from './memory/model.js';
import { compileGlob, type NamespaceGlob } from './glob.js';
import { rustTrim } from './memory/rules.js';

/**
 * Governance policy (docs/invariants.md, point 10), from GOVERNANCE_FILE or GOVERNANCE_POLICY:
 *   { "deny_namespaces": ["secret/**"], "max_content_bytes": 20000,
 *     "peer_namespaces": { "peer-b": ["shared/**", "global"] } }
 * Namespace globs (src/glob.ts, matched in linear time): `*` matches within one segment,
 * `**` across segments (newlines included).
 * A version that replaces a stored memory is judged by both namespaces (see checkUpdate).
 * A refusal is never silent: 403 with a stable code for clients, a skipped row for
 * peers, and an audit event either way.
 */
const policySchema = z
  .object({
    deny_namespaces: z.array(z.string().min(1).max(512)).max(1000).default([]),
    max_content_bytes: z.number().int().positive().optional(),
    max_metadata_bytes: z.number().int().positive().optional(),
    peer_namespaces: z.record(z.string(), z.array(z.string().min(1).max(512)).max(1000)).default({}),
  })
  .strict();

export interface Policy {
  denyNamespaces: NamespaceGlob[];
  maxContentBytes?: number;
  maxMetadataBytes?: number;
  peerNamespaces: Map<string, NamespaceGlob[]>;
  /** The policy as written, for logs and the admin API. */
  source: z.infer<typeof policySchema>;
}

export interface Refusal {
  code: 'GOVERNANCE_NAMESPACE_DENIED' | 'GOVERNANCE_CONTENT_TOO_LARGE' | 'GOVERNANCE_METADATA_TOO_LARGE' | 'GOVERNANCE_PEER_NAMESPACE';
  rule: string;
  reason: string;
}

export function parsePolicy(json: string, origin: string): Policy {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`governance policy (${origin}) is not valid JSON: ${(err as Error).message}`);
  }
  const r = policySchema.safeParse(raw);
  if (!r.success) throw new Error(`governance policy (${origin}) is invalid: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const p = r.data;
  return {
    denyNamespaces: p.deny_namespaces.map(compileGlob),
    ...(p.max_content_bytes !== undefined ? { maxContentBytes: p.max_content_bytes } : {}),
    ...(p.max_metadata_bytes !== undefined ? { maxMetadataBytes: p.max_metadata_bytes } : {}),
    peerNamespaces: new Map(Object.entries(p.peer_namespaces).map(([peer, globs]) => [peer, globs.map(compileGlob)])),
    source: p,
  };
}

export async function loadPolicy(source: { file: string; inline: string }): Promise<Policy | null> {
  if (source.file) return parsePolicy(await readFile(source.file, 'utf8'), source.file);
  if (source.inline) return parsePolicy(source.inline, 'GOVERNANCE_POLICY');
  return null;
}

/**
 * The namespace rules alone (what a deletion is judged by). A namespace is validated
 * trimmed and stored as sent (upstream src/validate.rs: validate_namespace), so it is
 * judged both as stored and trimmed: padding cannot slip a write past a deny glob.
 */
export function checkNamespace(policy: Policy | null, namespace: string, peerId?: string): Refusal | null {
  if (!policy) return null;
  const trimmed = rustTrim(namespace);
  const matches = (re: NamespaceGlob) => re.test(namespace) || re.test(trimmed);
  const denied = policy.denyNamespaces.findIndex(matches);
  if (denied >= 0) return { code: 'GOVERNANCE_NAMESPACE_DENIED', rule: `deny_namespaces[${denied}]`, reason: `namespace ${namespace} is not writable here` };
  if (peerId !== undefined) {
    const allowed = policy.peerNamespaces.get(peerId);
    if (allowed && !allowed.some(matches)) {
      return { code: 'GOVERNANCE_PEER_NAMESPACE', rule: `peer_namespaces.${peerId}`, reason: `peer ${peerId} may not write namespace ${namespace}` };
    }
  }
  return null;
}

/** Checks a write (local or replicated). `peerId` set = the row came from that peer. */
export function checkMemory(policy: Policy | null, m: Memory, peerId?: string): Refusal | null {
  if (!policy) return null;
  const ns = checkNamespace(policy, m.namespace);
  if (ns) return ns;
  if (policy.maxContentBytes !== undefined && Buffer.byteLength(m.content) > policy.maxContentBytes) {
    return { code: 'GOVERNANCE_CONTENT_TOO_LARGE', rule: 'max_content_bytes', reason: `content exceeds ${policy.maxContentBytes} bytes` };
  }
  if (policy.maxMetadataBytes !== undefined && Buffer.byteLength(JSON.stringify(m.metadata)) > policy.maxMetadataBytes) {
    return { code: 'GOVERNANCE_METADATA_TOO_LARGE', rule: 'max_metadata_bytes', reason: `metadata exceeds ${policy.maxMetadataBytes} bytes` };
  }
  return peerId === undefined ? null : checkNamespace(policy, m.namespace, peerId);
}

/**
 * Checks a version that would replace what is stored under its id (local update, or a
 * replicated row for an id stored here). Moving a memory between namespaces writes both
 * of them: the new version is judged as a write (checkMemory), and the stored namespace
 * by the namespace rules, the same rules a deletion is judged by. So a memory cannot be
 * moved out of a namespace the writer may not write (nor into one, by checkMemory).
 * `stored` is the stored version's namespace, live or deleted; none (or a bare tombstone
 * for an id never seen here, whose namespace is empty) has nothing to protect.
 */
export function checkUpdate(policy: Policy | null, stored: { namespace?: string } | null | undefined, m: Memory, peerId?: string): Refusal | null {
  if (!policy) return null;
  const incoming = checkMemory(policy, m, peerId);
  if (incoming) return incoming;
  const from = stored?.namespace;
  if (!from || from === m.namespace) return null;
  const r = checkNamespace(policy, from, peerId);
  return r ? { ...r, reason: `${r.reason} (moving memory ${m.id} from ${from} to ${m.namespace})` } : null;
}

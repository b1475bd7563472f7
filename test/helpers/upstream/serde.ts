import { type JNode, parseJson, toValue } from './json.js';

/**
 * upstream's serde rules for the federation wire types, as `#[derive(Deserialize)]` applies
 * them: required fields, exact types (an i32 refuses `5.0`), closed enums, defaults, unknown
 * keys ignored (and so not stored), a duplicate known key refused. A serde error anywhere in a
 * push body fails the whole body (src/handlers/federation_receive.rs: sync_push answers
 * `400 {"error":"malformed sync_push body: <serde error>"}`). Messages follow serde's wording
 * without serde_json's " at line L column C" suffix.
 */
export class SerdeError extends Error {}

/** upstream src/models/memory.rs: Memory (26 fields), defaults as in its serde attributes. */
export interface UpMemory {
  id: string;
  tier: 'short' | 'mid' | 'long';
  namespace: string;
  title: string;
  content: string;
  tags: string[];
  priority: number;
  confidence: number;
  source: string;
  access_count: number;
  created_at: string;
  updated_at: string;
  last_accessed_at?: string;
  expires_at?: string;
  metadata: unknown;
  reflection_depth: number;
  memory_kind: string;
  entity_id?: string;
  persona_version?: number;
  citations: Array<{ uri: string; accessed_at: string; hash?: string; span?: { start: number; end: number } }>;
  source_uri?: string;
  source_span?: { start: number; end: number };
  confidence_source: string;
  confidence_signals?: Record<string, unknown>;
  confidence_decayed_at?: string;
  version: number;
}

/** upstream src/models/link.rs: MemoryLink. */
export interface UpLink {
  source_id: string;
  target_id: string;
  relation: string;
  created_at: string;
  signature?: number[];
  observed_by?: string;
  valid_from?: string;
  valid_until?: string;
  attest_level?: string;
}

/** upstream src/handlers/federation_receive.rs: SyncPushBody. */
export interface UpPushBody {
  sender_agent_id: string;
  sender_clock: { entries: Record<string, string> };
  sender_wall_clock?: string;
  memories: Array<{ mem: UpMemory; metadataNode: JNode }>;
  deletions: string[];
  archives: string[];
  restores: string[];
  links: UpLink[];
  pendings: unknown[];
  pending_decisions: unknown[];
  namespace_meta: unknown[];
  namespace_meta_clears: string[];
  dry_run: boolean;
}

// upstream src/models/memory.rs: Tier, MemoryKind, ConfidenceSource (rename_all = snake_case).
export const TIERS = ['short', 'mid', 'long'] as const;
export const MEMORY_KINDS = ['observation', 'reflection', 'persona', 'concept', 'entity', 'claim', 'relation', 'event', 'conversation', 'decision'] as const;
export const CONFIDENCE_SOURCES = ['caller_provided', 'auto_derived', 'calibrated', 'decayed', 'curator_derived'] as const;
// upstream src/models/link.rs: MemoryLinkRelation.
export const LINK_RELATIONS = ['related_to', 'supersedes', 'contradicts', 'derived_from', 'reflects_on', 'derives_from'] as const;

const unexpected = (n: JNode): string => {
  switch (n.t) {
    case 'null':
      return 'null';
    case 'bool':
      return `boolean \`${n.v}\``;
    case 'num':
      // serde's Unexpected::Float prints with a decimal point (WithDecimalPoint): `5.0`.
      return n.int ? `integer \`${n.raw}\`` : `floating point \`${Number.isInteger(Number(n.raw)) ? `${Number(n.raw)}.0` : Number(n.raw)}\``;
    case 'str':
      return `string ${JSON.stringify(n.v)}`;
    case 'arr':
      return 'sequence';
    case 'obj':
      return 'map';
  }
};
const invalidType = (n: JNode, exp: string) => new SerdeError(`invalid type: ${unexpected(n)}, expected ${exp}`);

type De<T> = (n: JNode) => T;

export const deString: De<string> = (n) => {
  if (n.t !== 'str') throw invalidType(n, 'a string');
  return n.v;
};
export const deBool: De<boolean> = (n) => {
  if (n.t !== 'bool') throw invalidType(n, 'a boolean');
  return n.v;
};
/** A Rust integer type: integer lexemes only; out of range is "invalid value". */
const deInt =
  (name: string, min: bigint, max: bigint): De<number> =>
  (n) => {
    if (n.t !== 'num') throw invalidType(n, name);
    // serde_json reads an integer beyond u64 as f64, which no integer type accepts.
    if (!n.int || BigInt(n.raw) > 18446744073709551615n || BigInt(n.raw) < -9223372036854775808n) throw invalidType({ t: 'num', raw: n.raw, int: false }, name);
    const b = BigInt(n.raw);
    if (b < min || b > max) throw new SerdeError(`invalid value: integer \`${n.raw}\`, expected ${name}`);
    return Number(b);
  };
export const deI32 = deInt('i32', -2147483648n, 2147483647n);
export const deI64 = deInt('i64', -9223372036854775808n, 9223372036854775807n);
export const deUsize = deInt('usize', 0n, 18446744073709551615n);
export const deU8 = deInt('u8', 0n, 255n);
/** f64 accepts integer and float lexemes. */
export const deF64: De<number> = (n) => {
  if (n.t !== 'num') throw invalidType(n, 'f64');
  return Number(n.raw);
};
export const deEnum =
  (variants: readonly string[], name: string): De<string> =>
  (n) => {
    if (n.t !== 'str') throw invalidType(n, `enum ${name}`);
    if (!variants.includes(n.v)) throw new SerdeError(`unknown variant \`${n.v}\`, expected one of ${variants.map((v) => `\`${v}\``).join(', ')}`);
    return n.v;
  };
export const deVec =
  <T>(item: De<T>): De<T[]> =>
  (n) => {
    if (n.t !== 'arr') throw invalidType(n, 'a sequence');
    return n.v.map(item);
  };
/** Option<T>: null is None. */
export const deOpt =
  <T>(item: De<T>): De<T | undefined> =>
  (n) =>
    n.t === 'null' ? undefined : item(n);

type FieldSpec = { de: De<unknown>; required?: boolean; dflt?: () => unknown };

/** A derived struct: document order, first error wins, unknown keys ignored, duplicates refused. */
export function deStruct(n: JNode, name: string, fields: Record<string, FieldSpec>): Record<string, unknown> {
  if (n.t !== 'obj') throw invalidType(n, `struct ${name}`);
  const out: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (const [k, v] of n.v) {
    const f = fields[k];
    if (!f) continue;
    if (seen.has(k)) throw new SerdeError(`duplicate field \`${k}\``);
    seen.add(k);
    out[k] = f.de(v);
  }
  for (const [k, f] of Object.entries(fields)) {
    if (seen.has(k)) continue;
    if (f.required) throw new SerdeError(`missing field \`${k}\``);
    const d = f.dflt?.();
    if (d !== undefined) out[k] = d;
  }
  return out;
}

const deSpan: De<{ start: number; end: number }> = (n) => deStruct(n, 'SourceSpan', { start: { de: deUsize, required: true }, end: { de: deUsize, required: true } }) as { start: number; end: number };
const deCitation: De<UpMemory['citations'][number]> = (n) =>
  deStruct(n, 'Citation', {
    uri: { de: deString, required: true },
    accessed_at: { de: deString, required: true },
    hash: { de: deOpt(deString) },
    span: { de: deOpt(deSpan) },
  }) as UpMemory['citations'][number];
// upstream src/models/memory.rs: ConfidenceSignals has no serde defaults: every field required.
const deSignals: De<Record<string, unknown>> = (n) =>
  deStruct(n, 'ConfidenceSignals', {
    source_age_days: { de: deF64, required: true },
    atom_derivation: { de: deBool, required: true },
    prior_corroboration_count: { de: deI64, required: true },
    freshness_factor: { de: deF64, required: true },
    baseline_per_source: { de: deF64, required: true },
  });

/** Deserialises one Memory; also hands back the metadata node (validate_metadata measures it). */
export function deMemory(n: JNode): { mem: UpMemory; metadataNode: JNode } {
  let metadataNode: JNode = { t: 'obj', v: [] };
  const mem = deStruct(n, 'Memory', {
    id: { de: deString, required: true },
    tier: { de: deEnum(TIERS, 'Tier'), required: true },
    namespace: { de: deString, required: true },
    title: { de: deString, required: true },
    content: { de: deString, required: true },
    tags: { de: deVec(deString), required: true },
    priority: { de: deI32, required: true },
    confidence: { de: deF64, required: true },
    source: { de: deString, required: true },
    access_count: { de: deI64, required: true },
    created_at: { de: deString, required: true },
    updated_at: { de: deString, required: true },
    // Option<String> without `default`: serde still treats a missing Option as None.
    last_accessed_at: { de: deOpt(deString) },
    expires_at: { de: deOpt(deString) },
    // `#[serde(default = "default_metadata")] metadata: Value`: any JSON, `{}` when absent.
    metadata: {
      de: (m) => {
        metadataNode = m;
        return toValue(m);
      },
      dflt: () => ({}),
    },
    reflection_depth: { de: deI32, dflt: () => 0 },
    memory_kind: { de: deEnum(MEMORY_KINDS, 'MemoryKind'), dflt: () => 'observation' },
    entity_id: { de: deOpt(deString) },
    persona_version: { de: deOpt(deI32) },
    citations: { de: deVec(deCitation), dflt: () => [] },
    source_uri: { de: deOpt(deString) },
    source_span: { de: deOpt(deSpan) },
    confidence_source: { de: deEnum(CONFIDENCE_SOURCES, 'ConfidenceSource'), dflt: () => 'caller_provided' },
    confidence_signals: { de: deOpt(deSignals) },
    confidence_decayed_at: { de: deOpt(deString) },
    version: { de: deI64, dflt: () => 1 },
  }) as unknown as UpMemory;
  for (const k of Object.keys(mem) as Array<keyof UpMemory>) if (mem[k] === undefined) delete mem[k];
  return { mem, metadataNode };
}

export function deLink(n: JNode): UpLink {
  const l = deStruct(n, 'MemoryLink', {
    source_id: { de: deString, required: true },
    target_id: { de: deString, required: true },
    relation: { de: deEnum(LINK_RELATIONS, 'MemoryLinkRelation'), required: true },
    created_at: { de: deString, required: true },
    signature: { de: deOpt(deVec(deU8)) },
    observed_by: { de: deOpt(deString) },
    valid_from: { de: deOpt(deString) },
    valid_until: { de: deOpt(deString) },
    attest_level: { de: deOpt(deString) },
  }) as unknown as UpLink;
  for (const k of Object.keys(l) as Array<keyof UpLink>) if (l[k] === undefined) delete l[k];
  return l;
}

/** BTreeMap<String, String>: a map; duplicates keep the last (serde's map visitor inserts). */
const deStringMap: De<Record<string, string>> = (n) => {
  if (n.t !== 'obj') throw invalidType(n, 'a map');
  const o: Record<string, string> = {};
  for (const [k, v] of n.v) o[k] = deString(v);
  return o;
};

/** Any JSON element, kept opaque: lanes the peer does not model (pendings, namespace_meta). */
const deAny: De<unknown> = (n) => toValue(n);

export function dePushBody(n: JNode): UpPushBody {
  const b = deStruct(n, 'SyncPushBody', {
    sender_agent_id: { de: deString, required: true },
    sender_clock: { de: (c) => deStruct(c, 'VectorClock', { entries: { de: deStringMap, dflt: () => ({}) } }), dflt: () => ({ entries: {} }) },
    sender_wall_clock: { de: deOpt(deString) },
    memories: { de: deVec(deMemory), required: true },
    deletions: { de: deVec(deString), dflt: () => [] },
    archives: { de: deVec(deString), dflt: () => [] },
    restores: { de: deVec(deString), dflt: () => [] },
    links: { de: deVec(deLink), dflt: () => [] },
    pendings: { de: deVec(deAny), dflt: () => [] },
    pending_decisions: { de: deVec(deAny), dflt: () => [] },
    namespace_meta: { de: deVec(deAny), dflt: () => [] },
    namespace_meta_clears: { de: deVec(deString), dflt: () => [] },
    dry_run: { de: deBool, dflt: () => false },
  });
  return b as unknown as UpPushBody;
}

/** serde_json::from_slice::<SyncPushBody>: a JSON error or a serde error, as one message. */
export function parsePushBody(raw: Uint8Array): { ok: true; body: UpPushBody } | { ok: false; error: string } {
  try {
    return { ok: true, body: dePushBody(parseJson(raw)) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

/** serde_json::from_value::<Memory> of one element (the catch-up poller's per-row parse). */
export function parseMemoryValue(n: JNode): { ok: true; mem: UpMemory; metadataNode: JNode } | { ok: false; error: string } {
  try {
    return { ok: true, ...deMemory(n) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

import { readFile } from 'node:fs/promises';
import type { Checkpoint } from '../audit/chain.js';
import { verifyStoredChain } from '../audit/verify.js';
import type { Config } from '../config.js';
import { createDatabase } from '../db/client.js';
import { loadAuditKeys } from '../federation/keys.js';
import { parseFlags, positiveInt, subcommand } from './args.js';

export const AUDIT_USAGE = `memfed audit verify [--json] [--from N] [--checkpoints FILE]...
                            walk the chain: hashes, links, signatures, sequence, checkpoints
                            (stored ones, plus archived ones from FILE: a saved
                            GET /api/v1/audit/checkpoints answer); exit 0 only when it verifies`;

/** Checkpoints archived off-node: a saved `/api/v1/audit/checkpoints` answer, or a bare array. */
async function readArchivedCheckpoints(file: string, nodeId: string): Promise<Checkpoint[] | string> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    return `--checkpoints ${file}: ${(err as Error).message}`;
  }
  const wrapped = doc !== null && typeof doc === 'object' && !Array.isArray(doc) ? (doc as { node_id?: unknown; checkpoints?: unknown }) : null;
  if (wrapped && wrapped.node_id !== undefined && wrapped.node_id !== nodeId) return `--checkpoints ${file}: checkpoints of node "${String(wrapped.node_id)}", not "${nodeId}"`;
  const list = wrapped ? wrapped.checkpoints : doc;
  if (!Array.isArray(list)) return `--checkpoints ${file}: expected {"checkpoints": [...]} or an array`;
  const out: Checkpoint[] = [];
  for (const c of list as Array<Record<string, unknown>>) {
    if (c === null || typeof c !== 'object' || typeof c.seq !== 'number' || typeof c.hash !== 'string' || typeof c.at !== 'string' || typeof c.keyId !== 'string' || typeof c.signature !== 'string') {
      return `--checkpoints ${file}: each checkpoint needs seq, hash, at, keyId and signature`;
    }
    out.push({ seq: c.seq, hash: c.hash, at: c.at, keyId: c.keyId, signature: c.signature });
  }
  return out;
}

/**
 * A chain whose very first entry is signed by a key this environment does not hold was
 * most likely never tampered with: the tool runs with another node's NODE_ID or key
 * directory. Say so, instead of leaving "unknown_key at seq 1" to be read as an attack.
 */
function environmentHint(r: { kind: string; count: number }, config: Config): string | undefined {
  if (r.kind !== 'unknown_key' || r.count > 0) return undefined;
  return `hint: no entry could be checked against a key of this environment; check the environment: NODE_ID=${config.nodeId} and FED_KEY_DIR=${config.federation.keyDir} must be the node's own (its ${config.nodeId}.pub, and retired/ for rotated keys)`;
}

export async function auditCommand(config: Config, args: string[], out: (s: string) => void): Promise<number> {
  const [sub, ...rest] = args;
  subcommand('audit', sub, ['verify'], 'audit');
  const values = parseFlags('audit verify', rest, { json: { type: 'boolean' }, from: { type: 'string' }, checkpoints: { type: 'string', multiple: true } });
  const from = values.from === undefined ? 1 : positiveInt(values.from, 'audit verify: --from must be a positive integer');
  const archived: Checkpoint[] = [];
  for (const file of values.checkpoints ?? []) {
    const r = await readArchivedCheckpoints(file, config.nodeId);
    if (typeof r === 'string') {
      out(r);
      return 2;
    }
    archived.push(...r);
  }
  const { keys } = await loadAuditKeys(config.federation.keyDir, config.nodeId);
  const database = createDatabase(config.databaseUrl, { max: 2 });
  try {
    const started = Date.now();
    const r = await verifyStoredChain(database.db, { nodeId: config.nodeId, keys, from, extraCheckpoints: archived });
    const ms = Date.now() - started;
    const hint = r.ok ? undefined : environmentHint(r, config);
    if (values.json) out(JSON.stringify({ ...r, node_id: config.nodeId, from, elapsed_ms: ms, ...(hint ? { hint } : {}) }));
    else if (r.ok) out(`ok: ${r.count} entries verified from seq ${from}${r.head ? ` to ${r.head.seq}` : ''}, ${r.checkpointsChecked} checkpoint(s) held, ${ms} ms`);
    else out(`FAILED at seq ${r.seq}: ${r.kind} (${r.detail}); ${r.count} entries verified before it${hint ? `\n${hint}` : ''}`);
    return r.ok ? 0 : 1;
  } finally {
    await database.close();
  }
}

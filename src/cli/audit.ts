import { parseArgs } from 'node:util';
import { verifyStoredChain } from '../audit/verify.js';
import type { Config } from '../config.js';
import { createDatabase } from '../db/client.js';
import { loadAuditKeys } from '../federation/keys.js';

export const AUDIT_USAGE = `memfed audit verify [--json] [--from N]
                            walk the chain: hashes, links, signatures, sequence, checkpoints;
                            exit 0 only when it verifies`;

export async function auditCommand(config: Config, args: string[], out: (s: string) => void): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'verify') {
    out(AUDIT_USAGE);
    return 2;
  }
  const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean' }, from: { type: 'string' } } });
  const from = values.from === undefined ? 1 : Number(values.from);
  if (!Number.isSafeInteger(from) || from < 1) {
    out('--from must be a positive integer');
    return 2;
  }
  const { keys } = await loadAuditKeys(config.federation.keyDir, config.nodeId);
  const database = createDatabase(config.databaseUrl, { max: 2 });
  try {
    const started = Date.now();
    const r = await verifyStoredChain(database.db, { nodeId: config.nodeId, keys, from });
    const ms = Date.now() - started;
    if (values.json) out(JSON.stringify({ ...r, node_id: config.nodeId, from, elapsed_ms: ms }));
    else if (r.ok) out(`ok: ${r.count} entries verified from seq ${from}${r.head ? ` to ${r.head.seq}` : ''}, ${r.checkpointsChecked} checkpoint(s) held, ${ms} ms`);
    else out(`FAILED at seq ${r.seq}: ${r.kind} (${r.detail}); ${r.count} entries verified before it`);
    return r.ok ? 0 : 1;
  } finally {
    await database.close();
  }
}

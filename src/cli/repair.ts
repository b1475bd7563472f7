import { tableRecorder } from '../audit/events.js';
import { configSecrets, type Config } from '../config.js';
import { createDatabase } from '../db/client.js';
import { PeerClient } from '../federation/client.js';
import { KeyRing } from '../federation/keys.js';
import { peersNow } from '../federation/peer-directory.js';
import { loadPolicy } from '../governance.js';
import { createLogger } from '../logger.js';
import { createMetrics } from '../metrics.js';
import { checkRepairPeer } from '../repair/operator.js';
import { repairDepsFrom, repairWithPeer } from '../repair/run.js';
import { insertOutbox } from '../store/audit.js';
import { clientTlsOptions, loadTls } from '../tls.js';
import { asCliError, parseFlags, UsageError } from './args.js';

export const REPAIR_USAGE = `memfed repair <peer> [--json]     anti-entropy repair against a memfed peer, now, in this process`;

/** `memfed repair <peer>`: one repair run, its figures printed (exit 1 if rows were refused or it stopped at its budget). */
export async function repairCommand(config: Config, args: string[], out: (s: string) => void): Promise<number> {
  const [peerId, ...rest] = args;
  if (!peerId || peerId.startsWith('-')) throw new UsageError('repair: a peer id is required (memfed repair <peer>)');
  const values = parseFlags('repair', rest, { json: { type: 'boolean' } });
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, { node: config.nodeId, role: 'cli' }, { secrets: configSecrets(config) });
  const policy = await loadPolicy(config.governance);
  const database = createDatabase(config.databaseUrl, { max: 4 });
  const db = database.db;
  // No queue here: events go to the audit outbox, which the audit worker's drainer appends.
  const audit = tableRecorder((eventId, event) => insertOutbox(db, [{ eventId, event, reason: 'recorded by cli' }]).then(() => undefined), logger);
  let client: PeerClient | null = null;
  try {
    let peer;
    try {
      peer = checkRepairPeer(await peersNow(db, config.federation.peers), peerId);
    } catch (err) {
      throw asCliError('repair', err);
    }
    const keys = await KeyRing.load(config.federation.keyDir, config.nodeId);
    client = new PeerClient({ selfId: config.nodeId, signingKey: keys.signingKey, apiKey: config.apiKey, timeoutMs: config.federation.requestTimeoutMs, tls: clientTlsOptions(await loadTls(config.tls)) });
    const metrics = createMetrics({ nodeId: config.nodeId, role: 'cli', defaultMetrics: false });
    audit.record({ kind: 'repair.operator', actor: 'cli', subject: peer.id, details: { action: 'repair', peer: peer.id } });
    const r = await repairWithPeer(repairDepsFrom(config, { db, client, logger, metrics, audit, policy }), peer, 'operator');
    if (values.json) out(JSON.stringify(r, null, 2));
    else {
      out(`repair with ${r.peer}: ${r.requests} request(s), ${r.bucketsCompared} bucket(s) and ${r.rowsCompared} row key(s) compared in ${r.durationMs} ms`);
      out(`  pulled ${r.pulled}, pushed ${r.pushed}, refused ${r.refused}, dropped ${r.dropped}, beyond grace ${r.beyondGrace.local} here / ${r.beyondGrace.remote} there${r.incomplete ? ' (stopped at REPAIR_RUN_BUDGET_MS: run again)' : ''}`);
    }
    return r.refused > 0 || r.incomplete ? 1 : 0;
  } finally {
    await client?.close();
    await audit.flush();
    await database.close();
  }
}

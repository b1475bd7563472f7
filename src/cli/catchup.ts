import { tableRecorder } from '../audit/events.js';
import { configSecrets, type Config } from '../config.js';
import { createDatabase } from '../db/client.js';
import { reapplyRefusals } from '../federation/catchup-reapply.js';
import { loadPolicy } from '../governance.js';
import { createLogger } from '../logger.js';
import { createMetrics } from '../metrics.js';
import { insertOutbox } from '../store/audit.js';
import { listRefusals, refusalStats } from '../store/catchup-refusals.js';
import { refusalListParams } from '../api/operator-params.js';
import { checkParams, idFlags, parseFlags, subcommand, UsageError } from './args.js';

const REFUSAL_COMMANDS = ['list', 'stats', 'reapply'];

export const CATCHUP_USAGE = `memfed catchup refusals <command>
  list    [--peer P] [--status pending|resolved] [--limit N] [--json]   rows a pull refused for good
  stats   [--json]                                pending per peer, counts per reason code
  reapply [--peer P] [--id N ...]                 re-apply pending rows under today's rules`;

/** `memfed catchup refusals ...`: operator tools straight on the database (no queue needed). */
export async function catchupCommand(config: Config, args: string[], out: (s: string) => void): Promise<number> {
  const [group, sub, ...rest] = args;
  subcommand('catchup', group, ['refusals'], 'catchup');
  subcommand('catchup refusals', sub, REFUSAL_COMMANDS, 'catchup');
  const cmd = `catchup refusals ${sub}`;
  const values = parseFlags(cmd, rest, { peer: { type: 'string' }, status: { type: 'string' }, limit: { type: 'string' }, id: { type: 'string', multiple: true }, json: { type: 'boolean' } });
  const list = checkParams(cmd, refusalListParams, { status: values.status, limit: values.limit, peer: values.peer });
  const ids = idFlags(cmd, values.id);
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, { node: config.nodeId, role: 'cli' }, { secrets: configSecrets(config) });
  // Re-apply judges rows under the policy this node runs with now (an invalid one stops here).
  const policy = sub === 'reapply' ? await loadPolicy(config.governance) : null;
  const database = createDatabase(config.databaseUrl, { max: 2 });
  const db = database.db;
  // No queue here: events go to the audit outbox, which the audit worker's drainer appends.
  const audit = tableRecorder((eventId, event) => insertOutbox(db, [{ eventId, event, reason: 'recorded by cli' }]).then(() => undefined), logger);
  const sel = {
    ...(values.peer ? { peerId: values.peer } : {}),
    ...(ids ? { ids } : {}),
  };
  try {
    switch (sub) {
      case 'list': {
        const rows = await listRefusals(db, { ...sel, ...(list.status ? { status: list.status } : {}), limit: values.limit === undefined ? 50 : list.limit, offset: 0 });
        if (values.json) out(JSON.stringify(rows, null, 2));
        else for (const r of rows) out(`${r.id}\t${r.status}\t${r.peerId}\t${r.memoryId}\tattempts=${r.attempts}\t${r.code}\tfirst=${r.firstSeenAt}\tlast=${r.lastSeenAt}\t${r.reason.slice(0, 120)}`);
        return 0;
      }
      case 'stats': {
        const s = await refusalStats(db);
        if (values.json) out(JSON.stringify(s, null, 2));
        else {
          for (const p of s.byPeer) out(`${p.peerId}: pending ${p.pending}`);
          for (const c of s.byCode) out(`  ${c.code} (${c.status}): ${c.count}`);
        }
        return 0;
      }
      case 'reapply': {
        const metrics = createMetrics({ nodeId: config.nodeId, role: 'cli', defaultMetrics: false });
        const r = await reapplyRefusals({ db, policy, metrics, audit, logger, clockSkewMs: config.federation.clockSkewMs, tombstoneGraceMs: config.expiry.tombstoneGraceMs, memoryMaxBytes: config.limits.memoryMaxBytes }, sel);
        audit.record({ kind: 'catchup.operator', actor: 'cli', details: { action: 'reapply', selector: sel, ...r } });
        out(`re-applied ${r.taken}: applied ${r.applied}, superseded ${r.superseded}, still refused ${r.refused}`);
        return r.refused > 0 ? 1 : 0;
      }
      default:
        throw new UsageError(`unreachable: ${cmd}`);
    }
  } finally {
    await audit.flush();
    await database.close();
  }
}

import { tableRecorder } from '../audit/events.js';
import { insertOutbox } from '../store/audit.js';
import { configSecrets, type Config } from '../config.js';
import { createDatabase } from '../db/client.js';
import { PeerClient } from '../federation/client.js';
import { replayDepsFrom, replayRound } from '../federation/dlq-replay.js';
import { KeyRing } from '../federation/keys.js';
import { checkReplayPeer } from '../federation/peer-admin.js';
import { activeOf, peersNow, type PeerNow } from '../federation/peer-directory.js';
import { createLogger } from '../logger.js';
import { clientTlsOptions, loadTls } from '../tls.js';
import { createMetrics } from '../metrics.js';
import { dlqListParams } from '../api/operator-params.js';
import { asCliError, checkParams, idFlags, parseFlags, subcommand, UsageError } from './args.js';
import { dlqStats, listDlq, purgeDlq, requeueQuarantined, type DlqSelector } from '../store/dlq.js';

export const DLQ_USAGE = `memfed dlq <command>
  list    [--peer P] [--status pending|quarantined|replayed|purged|superseded] [--limit N] [--json]
  stats   [--json]                       per peer, per class, oldest pending age
  replay  [--peer P]                     run replay rounds now, in this process
  requeue (--all | --peer P | --id N ...) release quarantined rows with a fresh attempt budget
  purge   (--peer P | --id N ...) [--yes] without --yes only counts what would be purged`;

const DLQ_COMMANDS = ['list', 'stats', 'replay', 'requeue', 'purge'];

/** `memfed dlq ...`: operator tools straight on the database (no queue needed). */
export async function dlqCommand(config: Config, args: string[], out: (s: string) => void): Promise<number> {
  const [sub, ...rest] = args;
  subcommand('dlq', sub, DLQ_COMMANDS, 'dlq');
  const cmd = `dlq ${sub}`;
  const values = parseFlags(cmd, rest, {
    peer: { type: 'string' },
    status: { type: 'string' },
    limit: { type: 'string' },
    id: { type: 'string', multiple: true },
    all: { type: 'boolean' },
    yes: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  // Checked before anything is opened, by the admin API's rules.
  const list = checkParams(cmd, dlqListParams, { status: values.status, limit: values.limit, peer: values.peer });
  const ids = idFlags(cmd, values.id);
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, { node: config.nodeId, role: 'cli' }, { secrets: configSecrets(config) });
  const database = createDatabase(config.databaseUrl, { max: 2 });
  const db = database.db;
  // No queue here: events go to the audit outbox, which the audit worker's drainer appends.
  const audit = tableRecorder((eventId, event) => insertOutbox(db, [{ eventId, event, reason: 'recorded by cli' }]).then(() => undefined), logger);
  const sel = (): DlqSelector => ({
    ...(values.peer ? { peerId: values.peer } : {}),
    ...(ids ? { ids } : {}),
    ...(values.all ? { all: true } : {}),
  });
  try {
    // The node's peers as they are now (the runtime list, FED_PEERS not yet seeded included).
    const known = sub === 'replay' ? await peersNow(db, config.federation.peers) : new Map<string, PeerNow>();
    if (sub === 'replay' && values.peer !== undefined) {
      try {
        checkReplayPeer(known, values.peer);
      } catch (err) {
        throw asCliError(cmd, err);
      }
    }
    const peers = activeOf(known);
    switch (sub) {
      case 'list': {
        const rows = await listDlq(db, { ...(list.peer ? { peerId: list.peer } : {}), ...(list.status ? { status: list.status } : {}), limit: values.limit === undefined ? 50 : list.limit, offset: 0 });
        if (values.json) out(JSON.stringify(rows, null, 2));
        else for (const r of rows) out(`${r.id}\t${r.status}\t${r.peerId}\t${r.memoryId}\tattempts=${r.attempts}\t${r.failureClass}\t${r.lastError.slice(0, 120)}`);
        return 0;
      }
      case 'stats': {
        const s = await dlqStats(db);
        if (values.json) out(JSON.stringify(s, null, 2));
        else {
          out(`pending ${s.totals.pending}, quarantined ${s.totals.quarantined}, replayed ${s.totals.replayed}, purged ${s.totals.purged}`);
          for (const p of s.byPeer) out(`  ${p.peerId}: pending ${p.pending}, quarantined ${p.quarantined}, oldest pending ${p.oldestPendingAgeSeconds === null ? '-' : `${Math.round(p.oldestPendingAgeSeconds)} s`}`);
          for (const c of s.byClass) out(`  class ${c.failureClass} (${c.status}): ${c.count}`);
        }
        return 0;
      }
      case 'replay': {
        const keys = await KeyRing.load(config.federation.keyDir, config.nodeId);
        const client = new PeerClient({ selfId: config.nodeId, signingKey: keys.signingKey, apiKey: config.apiKey, timeoutMs: config.federation.requestTimeoutMs, tls: clientTlsOptions(await loadTls(config.tls)) });
        const metrics = createMetrics({ nodeId: config.nodeId, role: 'cli', defaultMetrics: false });
        const deps = replayDepsFrom(config, { db, client, logger, metrics, audit, peers });
        let replayed = 0, failed = 0;
        for (;;) {
          const r = await replayRound(deps, values.peer ? { peerId: values.peer } : {});
          replayed += r.replayed;
          failed += r.failed;
          if (r.replayed === 0 || r.taken === 0) break;
        }
        await client.close();
        audit.record({ kind: 'dlq.operator', actor: 'cli', details: { action: 'replay', peer: values.peer ?? null, replayed, failed } });
        out(`replayed ${replayed}, failed ${failed}`);
        return failed > 0 ? 1 : 0;
      }
      case 'requeue': {
        const s = sel();
        if (!s.peerId && !s.ids && !s.all) throw new UsageError(`${cmd}: needs --all, --peer or --id`);
        const r = await requeueQuarantined(db, s);
        audit.record({ kind: 'dlq.operator', actor: 'cli', details: { action: 'requeue', selector: s, ...r } });
        out(`requeued ${r.requeued}, superseded ${r.superseded}`);
        return 0;
      }
      case 'purge': {
        const s = sel();
        if (!s.peerId && !s.ids) throw new UsageError(`${cmd}: needs --peer or --id`);
        const r = await purgeDlq(db, s, !values.yes);
        if (!values.yes) out(`would purge ${r.matched} row(s); run again with --yes to purge`);
        else {
          audit.record({ kind: 'dlq.operator', actor: 'cli', details: { action: 'purge', selector: s, ...r } });
          out(`purged ${r.purged}`);
        }
        return 0;
      }
      default:
        throw new UsageError(`unreachable: ${cmd}`);
    }
  } finally {
    await audit.flush();
    await database.close();
  }
}

import { loadConfig, type Config } from '../config.js';
import { prepareDatabase } from '../db/migrate.js';
import { generateKeyFiles } from '../federation/keys.js';
import { ALERT_RULES_USAGE, alertRulesCommand } from './alert-rules.js';
import { isHelp, parseFlags, subcommand, UsageError } from './args.js';
import { AUDIT_USAGE, auditCommand } from './audit.js';
import { CATCHUP_USAGE, catchupCommand } from './catchup.js';
import { DLQ_USAGE, dlqCommand } from './dlq.js';
import { STATUS_USAGE, statusCommand, type QueueAccess } from './status.js';
import { PEERS_USAGE, peersCommand } from './peers.js';
import { REPAIR_USAGE, repairCommand } from './repair.js';

export const USAGE = `usage: memfed <command> [options]

roles:
  api                       HTTP API (client, federation receive, admin, /metrics)
  worker                    BullMQ workers (WORKER_QUEUES) + /metrics on WORKER_HTTP_PORT
  all                       api and worker in one process (npm start)

tools:
  migrate                   create the database if missing and apply migrations
  keys generate --id <id> [--dir <dir>] [--force]
                            write raw 32-byte <id>.priv / <id>.pub (default dir FED_KEY_DIR)
  ${PEERS_USAGE.replace(/\n/g, '\n  ')}
  ${DLQ_USAGE.replace(/\n/g, '\n  ')}
  ${CATCHUP_USAGE.replace(/\n/g, '\n  ')}
  ${REPAIR_USAGE}
  ${AUDIT_USAGE}
  ${ALERT_RULES_USAGE}
  ${STATUS_USAGE}

configuration comes from environment variables; see README.md.`;

const KEYS_USAGE = `memfed keys generate --id <id> [--dir <dir>] [--force]`;

/** Each tool's own usage (`memfed <tool> --help`). */
const TOOL_USAGE: Record<string, string> = { migrate: 'memfed migrate    create the database if missing and apply migrations', keys: KEYS_USAGE, peers: PEERS_USAGE, dlq: DLQ_USAGE, catchup: CATCHUP_USAGE, repair: REPAIR_USAGE, audit: AUDIT_USAGE, status: STATUS_USAGE, 'alert-rules': ALERT_RULES_USAGE };

/** What tools need from above src/ (wired by workers/main.ts). */
export interface ToolDeps {
  openQueues(config: Config): QueueAccess;
}

/**
 * Commands that need no queues or workers. Returns the exit code; a usage error is thrown
 * as UsageError (one line on stderr, exit 2, from the caller). `--help` anywhere prints
 * the tool's usage and exits 0.
 */
export async function runToolCommand(command: string, args: string[], out: (s: string) => void, tools: ToolDeps): Promise<number> {
  const usage = TOOL_USAGE[command];
  if (usage === undefined) throw new UsageError(`unknown command "${command}" (memfed --help)`);
  if (args.some(isHelp)) {
    out(usage);
    return 0;
  }
  switch (command) {
    case 'migrate': {
      if (args.length > 0) throw new UsageError(`migrate: takes no arguments, got "${args[0]}"`);
      const config = loadConfig();
      await prepareDatabase(config.databaseUrl);
      out('migrations applied');
      return 0;
    }
    case 'keys': {
      const [sub, ...rest] = args;
      subcommand('keys', sub, ['generate'], 'keys');
      const values = parseFlags('keys generate', rest, { id: { type: 'string' }, dir: { type: 'string' }, force: { type: 'boolean' } });
      if (!values.id) throw new UsageError('keys generate: --id <agent id> is required');
      const dir = values.dir ?? loadConfig().federation.keyDir;
      const r = await generateKeyFiles(dir, values.id, { overwrite: values.force === true });
      out(`wrote ${r.privPath} and ${r.pubPath}\npublic key ${r.publicKeyHex}\nenrol this node on a peer by copying ${r.pubPath} into the peer's FED_KEY_DIR`);
      return 0;
    }
    case 'peers':
      return peersCommand(loadConfig(), args, out);
    case 'dlq':
      return dlqCommand(loadConfig(), args, out);
    case 'catchup':
      return catchupCommand(loadConfig(), args, out);
    case 'repair':
      return repairCommand(loadConfig(), args, out);
    case 'audit':
      return auditCommand(loadConfig(), args, out);
    case 'alert-rules':
      // No configuration needed: it only prints a file.
      return alertRulesCommand(args, out);
    case 'status':
      return statusCommand(loadConfig(), args, out, tools.openQueues);
    default:
      throw new UsageError(`unknown command "${command}" (memfed --help)`);
  }
}

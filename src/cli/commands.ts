import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { prepareDatabase } from '../db/migrate.js';
import { generateKeyFiles } from '../federation/keys.js';
import { AUDIT_USAGE, auditCommand } from './audit.js';
import { CATCHUP_USAGE, catchupCommand } from './catchup.js';
import { DLQ_USAGE, dlqCommand } from './dlq.js';

export const USAGE = `usage: memfed <command> [options]

roles:
  api                       HTTP API (client, federation receive, admin, /metrics)
  worker                    BullMQ workers (WORKER_QUEUES) + /metrics on WORKER_HTTP_PORT
  all                       api and worker in one process (npm start)

tools:
  migrate                   create the database if missing and apply migrations
  keys generate --id <id> [--dir <dir>] [--force]
                            write raw 32-byte <id>.priv / <id>.pub (default dir FED_KEY_DIR)
  ${DLQ_USAGE.replace(/\n/g, '\n  ')}
  ${CATCHUP_USAGE.replace(/\n/g, '\n  ')}
  ${AUDIT_USAGE}

configuration comes from environment variables; see README.md.`;

/** Commands that need no queues or workers. Returns the exit code. */
export async function runToolCommand(command: string, args: string[], out: (s: string) => void): Promise<number> {
  switch (command) {
    case 'migrate': {
      const config = loadConfig();
      await prepareDatabase(config.databaseUrl);
      out('migrations applied');
      return 0;
    }
    case 'keys': {
      const [sub, ...rest] = args;
      if (sub !== 'generate') {
        out(USAGE);
        return 2;
      }
      const { values } = parseArgs({ args: rest, options: { id: { type: 'string' }, dir: { type: 'string' }, force: { type: 'boolean' } } });
      if (!values.id) {
        out('keys generate: --id <agent id> is required');
        return 2;
      }
      const dir = values.dir ?? loadConfig().federation.keyDir;
      const r = await generateKeyFiles(dir, values.id, { overwrite: values.force === true });
      out(`wrote ${r.privPath} and ${r.pubPath}\npublic key ${r.publicKeyHex}\nenrol this node on a peer by copying ${r.pubPath} into the peer's FED_KEY_DIR`);
      return 0;
    }
    case 'dlq':
      return dlqCommand(loadConfig(), args, out);
    case 'catchup':
      return catchupCommand(loadConfig(), args, out);
    case 'audit':
      return auditCommand(loadConfig(), args, out);
    default:
      out(USAGE);
      return 2;
  }
}

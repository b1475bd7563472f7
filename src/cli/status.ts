import type { Config } from '../config.js';
import { createDatabase } from '../db/client.js';
import { buildStatusReport, statusPeers, type QueueStatusSource } from '../status/report.js';
import { renderStatus } from '../status/render.js';
import { parseFlags } from './args.js';

export const STATUS_USAGE = `memfed status [--json]     per peer: state (active/paused/failing), last push and pull,
                            push and catch-up lag, DLQ, failure streak, last error; per
                            queue: waiting/active/delayed/failed and live workers; the
                            audit head and last checkpoint (GET /api/v1/admin/status)`;

/** Read access to this node's queues (built in queues/, which src/ does not import). */
export interface QueueAccess {
  source: QueueStatusSource;
  close(): Promise<void>;
}

/** `memfed status`: the report straight from this node's database and Redis. */
export async function statusCommand(config: Config, args: string[], out: (s: string) => void, openQueues: (config: Config) => QueueAccess): Promise<number> {
  const values = parseFlags('status', args, { json: { type: 'boolean' } });
  const database = createDatabase(config.databaseUrl, { max: 2 });
  const queues = openQueues(config);
  try {
    const report = await buildStatusReport({ db: database.db, nodeId: config.nodeId, peers: await statusPeers(database.db, config.federation.peers), queues: queues.source });
    out(values.json ? JSON.stringify(report, null, 2) : renderStatus(report));
    return 0;
  } finally {
    await queues.close();
    await database.close();
  }
}

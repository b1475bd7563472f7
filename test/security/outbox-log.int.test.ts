import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { QueueAuditRecorder } from '../../queues/audit.js';
import { createRedis } from '../../queues/connection.js';
import { closeQueues, createQueues, type Queues } from '../../queues/registry.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL, waitFor } from '../helpers/env.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';

describe('an audit outbox write that Postgres refuses', () => {
  let db: TestDatabase;
  let queues: Queues;
  const prefix = uniquePrefix();
  const redis = createRedis(REDIS_URL, 'producer', 'outbox-log-test');
  beforeAll(async () => {
    db = await createTestDatabase();
    queues = createQueues(redis, prefix);
    // Every insert fails on the server, with the row's values in the error's detail.
    await db.database.sql.unsafe('ALTER TABLE audit_outbox ADD CONSTRAINT refuse_all CHECK (false) NOT VALID');
  });
  afterAll(async () => {
    await closeQueues(queues);
    await redis.quit();
    await db?.drop();
    await dropPrefix(prefix);
  });

  it('is logged with the query fingerprint and Postgres code, never the SQL parameters', async () => {
    const lines: string[] = [];
    const logger = createLogger('info', {}, { destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
    const recorder = new QueueAuditRecorder(queues.audit, db.database, logger);
    recorder.record({ kind: 'federation.refused', actor: 'param-secret-actor', details: { token: 'param-secret-detail' } });
    await waitFor(async () => lines.some((l) => l.includes('audit outbox write failed')), { timeoutMs: 10_000, what: 'the failure log line' });
    const line = lines.find((l) => l.includes('audit outbox write failed'))!;
    expect(line).not.toContain('param-secret');
    expect(line).not.toContain('params:');
    expect(line).toContain('query failed: insert into');
    expect(JSON.parse(line).err.cause).toMatchObject({ code: '23514', constraint_name: 'refuse_all' });
    await db.database.sql.unsafe('ALTER TABLE audit_outbox DROP CONSTRAINT refuse_all');
    await recorder.close();
  });
});

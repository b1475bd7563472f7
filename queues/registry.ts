import { Queue } from 'bullmq';
import { QUEUE_NAMES, type QueueName } from '../src/queue-names.js';
import { auditQueue, type AuditJob } from './audit.js';
import { catchupQueue, type CatchupJob } from './catchup.js';
import type { RedisClient } from './connection.js';
import { queuePrefixFor, type QueueDefinition } from './definition.js';
import { dlqQueue, type DlqJob } from './dlq.js';
import { pushQueue, type PushJob } from './push.js';
import { expiryQueue, type ExpiryJob } from './expiry.js';
import { retentionQueue, type RetentionJob } from './retention.js';
import { repairQueue, type RepairJob } from './repair.js';

/** Each queue's payload type, by name. */
export interface JobPayloads {
  push: PushJob;
  dlq: DlqJob;
  catchup: CatchupJob;
  audit: AuditJob;
  expiry: ExpiryJob;
  retention: RetentionJob;
  repair: RepairJob;
}

/** Every queue's definition; a name in QUEUE_NAMES without one does not compile. */
export const QUEUE_DEFINITIONS: { [Q in QueueName]: QueueDefinition<Q, JobPayloads[Q]> } = {
  push: pushQueue,
  dlq: dlqQueue,
  catchup: catchupQueue,
  audit: auditQueue,
  expiry: expiryQueue,
  retention: retentionQueue,
  repair: repairQueue,
};

export type Queues = { [Q in QueueName]: Queue<JobPayloads[Q]> };

/** One producer-side Queue per definition, sharing a connection; `prefix` is QUEUE_PREFIX. */
export function createQueues(connection: RedisClient, prefix: string): Queues {
  const out = {} as Record<QueueName, Queue>;
  for (const name of QUEUE_NAMES) out[name] = new Queue(name, { connection, prefix: queuePrefixFor(prefix, name), defaultJobOptions: QUEUE_DEFINITIONS[name].jobOptions });
  return out as Queues;
}

export async function closeQueues(queues: Queues): Promise<void> {
  await Promise.allSettled(Object.values(queues).map((q) => q.close()));
}

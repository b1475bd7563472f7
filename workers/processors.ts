import type { QueueName } from '../src/queue-names.js';
import type { JobPayloads } from '../queues/registry.js';
import type { Processor } from '../queues/worker.js';
import type { WorkerContext } from './context.js';
import { auditProcessor } from './audit.worker.js';
import { catchupProcessor } from './catchup.worker.js';
import { dlqProcessor } from './dlq.worker.js';
import { pushProcessor } from './push.worker.js';
import { expiryProcessor } from './expiry.worker.js';
import { retentionProcessor } from './retention.worker.js';
import { repairProcessor } from './repair.worker.js';

/** Typed processor map: a queue without a processor does not compile. */
export type Processors = { [Q in QueueName]: Processor<JobPayloads[Q]> };

export function createProcessors(ctx: WorkerContext): Processors {
  return {
    push: pushProcessor(ctx),
    dlq: dlqProcessor(ctx),
    catchup: catchupProcessor(ctx),
    audit: auditProcessor(ctx),
    expiry: expiryProcessor(ctx),
    retention: retentionProcessor(ctx),
    repair: repairProcessor(ctx),
  };
}

import type { Job } from 'bullmq';
import type { JobPayloads, QueueName } from '../queues/catalogue.js';
import type { WorkerContext } from './context.js';
import { auditProcessor } from './audit.worker.js';
import { catchupProcessor } from './catchup.worker.js';
import { dlqProcessor } from './dlq.worker.js';
import { pushProcessor } from './push.worker.js';

export type Processor<Q extends QueueName> = (job: Job<JobPayloads[Q]>, token?: string) => Promise<unknown>;

/** Typed processor map: a queue in the catalogue without a processor does not compile. */
export type Processors = { [Q in QueueName]: Processor<Q> };

export function createProcessors(ctx: WorkerContext): Processors {
  return {
    push: pushProcessor(ctx),
    dlq: dlqProcessor(ctx),
    catchup: catchupProcessor(ctx),
    audit: auditProcessor(ctx),
  };
}

/** Per-queue concurrency from config (DESIGN.md table). */
export function concurrencyFor(ctx: WorkerContext, queue: QueueName): number {
  const table: { [Q in QueueName]: number } = { push: ctx.config.concurrency.push, dlq: ctx.config.concurrency.dlq, catchup: ctx.config.concurrency.catchup, audit: 1 };
  return table[queue];
}

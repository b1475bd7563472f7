/**
 * The BullMQ queues of a node. These names are Redis keys: never rename one. Config
 * validates WORKER_QUEUES against this list; queues/ has one definition module per name.
 */
export const QUEUE_NAMES = ['push', 'dlq', 'catchup', 'audit', 'expiry', 'retention', 'repair'] as const;

export type QueueName = (typeof QUEUE_NAMES)[number];

export const isQueueName = (s: string): s is QueueName => (QUEUE_NAMES as readonly string[]).includes(s);

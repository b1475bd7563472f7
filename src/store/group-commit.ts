import type { Memory } from '../memory/model.js';
import type { FeedPosition } from './feed.js';

/** What one create came to: committed (with its feed position) or an id that exists. */
export type CreateOutcome = { created: true; position: FeedPosition } | { created: false };

/** Inserts a batch in one transaction (insertMemories' contract). */
export type InsertBatch = (docs: Memory[]) => Promise<{ positions: Map<string, FeedPosition> }>;

export interface GroupCommitOptions {
  /** Creates committed together at most. */
  maxBatch: number;
  /** Batches in flight at once; further creates wait and join the next batch. */
  maxInFlight: number;
  /** Called with each batch's size (a metric). */
  onBatch?: (size: number) => void;
}

interface Waiting {
  memory: Memory;
  resolve(o: CreateOutcome): void;
  reject(err: unknown): void;
}

/** A statement the server refused (it has a SQLSTATE): nothing was committed. */
const refusedByServer = (err: unknown) => typeof (err as { code?: unknown })?.code === 'string' && /^[0-9A-Z]{5}$/.test((err as { code: string }).code);

/**
 * Group commit for single-memory creates. Each create used to be its own transaction
 * (four round trips and a WAL flush per row); under concurrency they now share one. A
 * create joins the batch being gathered while `maxInFlight` batches are committing, so
 * a lone create goes at once (no added latency) and batches grow only with load.
 *
 * Every caller is answered only after the transaction holding its row has committed
 * (nothing acknowledged before its commit), with its own row's feed position. Two
 * creates of one id never share a batch: the second waits for the next, and is a
 * conflict exactly when the first committed. If the server refuses the batch statement
 * (nothing committed), each create is retried alone so one bad row fails only its own
 * request; any other failure (a lost connection: the commit's outcome is unknown) fails
 * every create of the batch.
 */
export class GroupCommit {
  private readonly waiting: Waiting[] = [];
  private inFlight = 0;

  constructor(
    private readonly insert: InsertBatch,
    private readonly opts: GroupCommitOptions,
  ) {}

  create(memory: Memory): Promise<CreateOutcome> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ memory, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.opts.maxInFlight && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.opts.maxBatch);
      this.inFlight++;
      void this.commit(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async commit(batch: Waiting[]): Promise<void> {
    const first = new Map<string, Waiting>();
    const repeats: Waiting[] = [];
    for (const w of batch) {
      if (first.has(w.memory.id)) repeats.push(w);
      else first.set(w.memory.id, w);
    }
    // A second create of an id goes in the next batch, decided by what this one committed.
    this.waiting.unshift(...repeats);
    const members = [...first.values()];
    this.opts.onBatch?.(members.length);
    try {
      const { positions } = await this.insert(members.map((w) => w.memory));
      for (const w of members) settle(w, positions.get(w.memory.id));
    } catch (err) {
      if (members.length === 1 || !refusedByServer(err)) {
        for (const w of members) w.reject(err);
      } else {
        for (const w of members) {
          try {
            settle(w, (await this.insert([w.memory])).positions.get(w.memory.id));
          } catch (one) {
            w.reject(one);
          }
        }
      }
    }
  }
}

function settle(w: Waiting, position: FeedPosition | undefined): void {
  w.resolve(position ? { created: true, position } : { created: false });
}

import type { KeyObject } from 'node:crypto';
import type { Db } from '../db/client.js';
import { listCheckpoints, readAuditPage } from '../store/audit.js';
import { ChainVerifier, type Checkpoint, type VerifyResult } from './chain.js';

const PAGE = 5000;

/**
 * Walks the stored chain from `from` (default 1) in pages, holding it against every
 * stored checkpoint plus any supplied from peers. Memory stays flat for any chain length.
 */
export async function verifyStoredChain(
  db: Db,
  opts: { nodeId: string; keys: Map<string, KeyObject>; from?: number; extraCheckpoints?: Checkpoint[] },
): Promise<VerifyResult> {
  const checkpoints: Checkpoint[] = [...(opts.extraCheckpoints ?? [])];
  for (let after = 0; ; ) {
    const page = await listCheckpoints(db, after, 10_000);
    checkpoints.push(...page);
    if (page.length < 10_000) break;
    after = page.at(-1)!.seq;
  }
  const from = opts.from ?? 1;
  const verifier = new ChainVerifier({ nodeId: opts.nodeId, keys: opts.keys, from, checkpoints });
  // With from > 1 the verifier wants the anchor entry (from - 1) first.
  // The next page is read while the current one is verified. Its failure is handled at
  // once (marked), and thrown where it is awaited; a prefetch nobody awaits is dropped.
  const read = (seq: number) => {
    const p = readAuditPage(db, seq, PAGE);
    p.catch(() => undefined);
    return p;
  };
  let reading = read(from > 1 ? from - 1 : 1);
  for (;;) {
    const page = await reading;
    if (page.length === 0) break;
    const more = page.length === PAGE;
    if (more) reading = read(page.at(-1)!.seq + 1);
    if ((await verifier.pushBatch(page)) || !more) break;
  }
  return verifier.finish();
}

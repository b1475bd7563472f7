import { sql, type SQL } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { memories, memoryLinks } from '../db/schema.js';
import { inTextList } from './lists.js';

/*
 * Anti-entropy digests (docs/wire.md, Anti-entropy repair). Rows are bucketed by the hex
 * MD5 of their id: a bucket is a hex prefix of it, so buckets nest (a bucket's children are
 * its prefix plus one hex digit) and one range scan of memories_repair_bucket_idx reads one.
 * A bucket's digest is the XOR of its rows' 64-bit hashes (order-independent, so both sides
 * get the same value whatever order they read rows in) plus the row count. A row's hash
 * covers its LWW key: (id, tombstone flag, LWW time in microseconds, content digest for a
 * live row). A tombstone's content digest is left out: the apply path keeps the old
 * content's digest on a tombstone, which differs between a node that held the content and
 * one that never did. An expired live row counts as absent on both sides.
 */

/** The hex alphabet of a bucket prefix; an MD5 hex string is 32 of them. */
export const BUCKET_PREFIX = /^[0-9a-f]{0,32}$/;
export const HASH_HEX_LEN = 32;

/** A bucket's count and XOR of row hashes (16 hex digits, two's complement). */
export interface BucketDigest {
  n: number;
  h: string;
}

/** A row's LWW key as repair compares it (time: microseconds since the epoch, decimal). */
export interface RowKey {
  id: string;
  time: string;
  tomb: boolean;
  /** SHA-256 of the canonical doc for a live row; '' for a tombstone. */
  digest: string;
}

const BUCKET = sql`(md5(m.id) COLLATE "C")`;
const VISIBLE = sql`(m.deleted_at IS NOT NULL OR m.expires_at IS NULL OR m.expires_at > now())`;
const TIME_US = sql`((extract(epoch from COALESCE(m.deleted_at, m.updated_at)) * 1000000)::bigint)`;
const ROW_HASH = sql`(('x' || left(md5(m.id || chr(31) || CASE WHEN m.deleted_at IS NULL THEN '0' || chr(31) || ${TIME_US}::text || chr(31) || m.digest ELSE '1' || chr(31) || ${TIME_US}::text END), 16))::bit(64)::bigint)`;

/** Rows of the buckets `prefixes` (all of one length; [''] is every row). */
function inBuckets(prefixes: string[]): { from: SQL; where: SQL } {
  if (prefixes.length === 1 && prefixes[0] === '') return { from: sql`${memories} m`, where: VISIBLE };
  // 'g' sorts after every hex digit in the C collation: [p, p||'g') is exactly the prefix p.
  return {
    from: sql`unnest(${`{${prefixes.join(',')}}`}::text[]) AS q(p) JOIN ${memories} m ON ${BUCKET} >= (q.p COLLATE "C") AND ${BUCKET} < ((q.p || 'g') COLLATE "C")`,
    where: VISIBLE,
  };
}

/**
 * Runs a query over bucket ranges. Postgres estimates a prefix range at a ninth of the table,
 * so on a small table (or with many prefixes) it picks a sequential scan per prefix, which
 * is quadratic (measured: 76 s for 1,000 prefixes over 20,000 rows). Each range is exactly
 * one index range scan, so the scan is pinned to the index (and JIT, which the inflated
 * estimate switches on for a few milliseconds of work, is off). The whole table ([''])
 * keeps the planner's choice.
 */
async function rangeScan<T>(db: Db | Tx, prefixes: string[], run: (q: Db | Tx) => Promise<T>): Promise<T> {
  if (prefixes.length === 1 && prefixes[0] === '') return run(db);
  const inTx = async (tx: Db | Tx) => {
    await tx.execute(sql`SET LOCAL enable_seqscan = off`);
    await tx.execute(sql`SET LOCAL jit = off`);
    return run(tx);
  };
  return db.transaction(inTx);
}

/**
 * The digests of the non-empty child buckets `depth` hex digits below each prefix (every
 * prefix of one length). Empty buckets are not listed: absent means count 0.
 */
export async function bucketDigests(db: Db | Tx, prefixes: string[], depth: number): Promise<Map<string, BucketDigest>> {
  if (prefixes.length === 0) return new Map();
  const len = prefixes[0]!.length + depth;
  const { from, where } = inBuckets(prefixes);
  const rows = await rangeScan(db, prefixes, (q) =>
    q.execute<{ p: string; n: number; h: string }>(sql`
      SELECT left(md5(m.id), ${len}) AS p, count(*)::int AS n, lpad(to_hex(bit_xor(${ROW_HASH})), 16, '0') AS h
      FROM ${from} WHERE ${where} GROUP BY 1`),
  );
  return new Map(rows.map((r) => [r.p, { n: Number(r.n), h: r.h }]));
}

/** The LWW keys of every visible row of the buckets `prefixes` (of one length), by id. */
export async function rowKeys(db: Db | Tx, prefixes: string[], limit = 1_000_000): Promise<RowKey[]> {
  if (prefixes.length === 0) return [];
  const { from, where } = inBuckets(prefixes);
  const rows = await rangeScan(db, prefixes, (q) =>
    q.execute<{ id: string; t: string; tomb: boolean; digest: string }>(sql`
      SELECT m.id, ${TIME_US}::text AS t, (m.deleted_at IS NOT NULL) AS tomb, CASE WHEN m.deleted_at IS NULL THEN m.digest ELSE '' END AS digest
      FROM ${from} WHERE ${where} ORDER BY m.id COLLATE "C" LIMIT ${limit}`),
  );
  return rows.map((r) => ({ id: r.id, time: String(r.t), tomb: r.tomb === true, digest: r.digest }));
}

/**
 * Removes rows this node alone holds and whose LWW time is older than the grace horizon,
 * after a restore from an older backup (its peers may have collected the tombstones that
 * deleted them). Only the exact version compared is removed: a row written since survives.
 * No feed entry: nothing is replicated (the peers hold nothing of these ids).
 */
export async function dropLocalRows(db: Db, keys: RowKey[]): Promise<string[]> {
  if (keys.length === 0) return [];
  const json = JSON.stringify(keys.map((k) => ({ id: k.id, t: k.time, tomb: k.tomb })));
  return db.transaction(async (tx) => {
    const rows = await tx.execute<{ id: string }>(sql`
      DELETE FROM ${memories} m USING jsonb_to_recordset(${json}::jsonb) AS k(id text, t text, tomb boolean)
      WHERE m.id = k.id AND ${TIME_US}::text = k.t AND (m.deleted_at IS NOT NULL) = k.tomb
      RETURNING m.id`);
    const ids = rows.map((r) => r.id);
    if (ids.length > 0) await tx.delete(memoryLinks).where(inTextList(memoryLinks.sourceId, ids));
    return ids;
  });
}

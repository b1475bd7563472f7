import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { auditKeyRing, auditSigner, type AuditSigner } from '../audit/chain.js';
import type { PeerDirectory } from './peer-directory.js';
import { privateKeyObject, publicKeyObject } from './signing.js';

/** Key files are `<id>.priv` / `<id>.pub`, raw 32 bytes (upstream layout). */
export function keyFileBase(dir: string, id: string): string {
  if (id.includes('/') || id.includes('\\') || id === '.' || id === '..' || id.includes('\u0000')) throw new Error(`agent id "${id}" cannot name a key file`);
  return path.join(dir, id);
}

export async function generateKeyFiles(dir: string, id: string, opts: { overwrite?: boolean } = {}): Promise<{ privPath: string; pubPath: string; publicKeyHex: string }> {
  const base = keyFileBase(dir, id);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const refuse = () => Object.assign(new Error(`${base}.priv exists; refusing to overwrite (pass --force)`), { code: 'EEXIST' });
  if (!opts.overwrite && (await exists(`${base}.priv`))) throw refuse();
  const priv = randomBytes(32);
  const pub = await ed.getPublicKeyAsync(priv);
  if (opts.overwrite) {
    await writeFile(`${base}.priv`, priv, { mode: 0o600 });
  } else {
    // Written whole under a temporary name, then linked in: the link fails if the name
    // exists, so of processes generating at once exactly one key wins, and no reader ever
    // sees a half-written .priv.
    const tmp = `${base}.priv.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, priv, { mode: 0o600, flag: 'wx' });
    try {
      await link(tmp, `${base}.priv`).catch((err: NodeJS.ErrnoException) => Promise.reject(err.code === 'EEXIST' ? refuse() : err));
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }
  // The .pub whole or not at all, too (renamed into place).
  const pubTmp = `${base}.pub.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(pubTmp, pub, { mode: 0o644 });
  await rename(pubTmp, `${base}.pub`);
  return { privPath: `${base}.priv`, pubPath: `${base}.pub`, publicKeyHex: Buffer.from(pub).toString('hex') };
}

const PUB_WAIT_MS = 5_000;

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function readKey(file: string): Promise<Buffer | null> {
  try {
    const b = await readFile(file);
    if (b.byteLength !== 32) throw new Error(`${file}: expected 32 raw bytes, found ${b.byteLength}`);
    return b;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * This node's signing key and its peers' enrolled public keys, read from the key dir.
 * Peer keys come from the peers table (enrolled with `memfed peers`) when it holds one,
 * else from `<id>.pub` files, re-read when missing or changed (enrolment = copying a .pub
 * file; no restart needed), with a short negative cache so floods cannot hammer the disk.
 */
export class KeyRing {
  private peers = new Map<string, { key: KeyObject | null; checkedAt: number; mtimeMs: number }>();
  /** Keys enrolled in the peers table, by their bytes (a re-key is a new entry). */
  private tableKeys = new Map<string, KeyObject>();

  private constructor(
    readonly dir: string,
    readonly selfId: string,
    readonly signingKey: KeyObject | null,
    readonly selfPublicKey: Uint8Array | null,
    /** The runtime peer list (src/federation/peer-directory.ts), when the node has one. */
    readonly directory: PeerDirectory | null,
  ) {}

  static async load(dir: string, selfId: string, directory: PeerDirectory | null = null): Promise<KeyRing> {
    const priv = await readKey(`${keyFileBase(dir, selfId)}.priv`);
    const pub = priv ? await ed.getPublicKeyAsync(priv) : null;
    return new KeyRing(dir, selfId, priv ? privateKeyObject(priv) : null, pub, directory);
  }

  /** A removed peer: every request naming it is refused (`peer_removed`), whatever its key. */
  isRemoved(peerId: string): boolean {
    return this.directory?.isRemoved(peerId) ?? false;
  }

  /**
   * A peer's enrolled public key, or null. This node's own id is never an enrolled peer:
   * its `.pub` sits in the same folder, and taking it as a peer's key would let anyone
   * claiming `x-peer-id: <NODE_ID>` past the header checks.
   */
  async peerKey(peerId: string): Promise<KeyObject | null> {
    if (peerId === this.selfId || this.isRemoved(peerId)) return null;
    // A key enrolled through `memfed peers` wins over a file: re-keying takes effect at once.
    const enrolled = this.directory?.get(peerId)?.publicKey;
    if (enrolled) return this.tableKey(enrolled);
    let base: string;
    try {
      base = keyFileBase(this.dir, peerId);
    } catch {
      return null;
    }
    const now = Date.now();
    const cached = this.peers.get(peerId);
    if (cached && now - cached.checkedAt < 2000) return cached.key;
    const file = `${base}.pub`;
    let mtimeMs = -1;
    try {
      mtimeMs = (await stat(file)).mtimeMs;
    } catch {
      /* not enrolled */
    }
    if (cached && cached.mtimeMs === mtimeMs) {
      cached.checkedAt = now;
      return cached.key;
    }
    const raw = mtimeMs >= 0 ? await readKey(file).catch(() => null) : null;
    const key = raw ? publicKeyObject(raw) : null;
    if (this.peers.size > 10_000) this.peers.clear();
    this.peers.set(peerId, { key, checkedAt: now, mtimeMs });
    return key;
  }

  private tableKey(raw: Buffer): KeyObject {
    const hex = raw.toString('hex');
    let key = this.tableKeys.get(hex);
    if (!key) {
      if (this.tableKeys.size > 10_000) this.tableKeys.clear();
      key = publicKeyObject(raw);
      this.tableKeys.set(hex, key);
    }
    return key;
  }
}

/** Loads this node's key pair, generating one on first start (like an SSH host key). */
export async function ensureOwnKey(dir: string, id: string): Promise<{ generated: boolean; pubPath: string }> {
  const base = keyFileBase(dir, id);
  if (await exists(`${base}.priv`)) return { generated: false, pubPath: `${base}.pub` };
  try {
    const r = await generateKeyFiles(dir, id);
    return { generated: true, pubPath: r.pubPath };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Another process of this node generated it a moment ago: its .pub follows the .priv.
    const deadline = Date.now() + PUB_WAIT_MS;
    while (!(await exists(`${base}.pub`)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return { generated: false, pubPath: `${base}.pub` };
  }
}

/**
 * This node's audit signer and the keys its chain verifies against: `<id>.pub` plus any
 * retired key `retired/<id>.<label>.pub` (after a rotation, keep the old public key there
 * so entries signed before it still verify). A separate folder: peers' keys sit beside
 * ours, and a peer id may well start with "<id>.".
 */
export async function loadAuditKeys(dir: string, id: string): Promise<{ signer: AuditSigner | null; keys: Map<string, KeyObject> }> {
  const base = keyFileBase(dir, id);
  const priv = await readKey(`${base}.priv`);
  const pubs: Buffer[] = [];
  const current = await readKey(`${base}.pub`).catch(() => null);
  if (current) pubs.push(current);
  const retiredDir = path.join(dir, 'retired');
  for (const name of await readdir(retiredDir).catch(() => [] as string[])) {
    if (name.startsWith(`${id}.`) && name.endsWith('.pub')) {
      const pub = await readKey(path.join(retiredDir, name)).catch(() => null);
      if (pub) pubs.push(pub);
    }
  }
  return { signer: priv ? auditSigner(priv) : null, keys: auditKeyRing(pubs) };
}

import { readFile } from 'node:fs/promises';
import { tableRecorder } from '../audit/events.js';
import { configSecrets, type Config } from '../config.js';
import { createDatabase } from '../db/client.js';
import { ApiError } from '../errors.js';
import { addPeer, checkNewPeer, checkPeerId, listPeers, parsePublicKey, purgePeer, rekeyPeer, setPeerState, showPeer, updatePeer, type PeerView } from '../federation/peer-admin.js';
import { peerSpecFrom } from '../federation/peers.js';
import { createLogger } from '../logger.js';
import { insertOutbox } from '../store/audit.js';
import { asCliError, parseFlags, subcommand, UsageError } from './args.js';

export const PEERS_USAGE = `memfed peers <command>
  list    [--json]                       every peer: state (active|paused|removed), flavour, URL, key
  show    --id ID [--json]
  add     --id ID --url URL [--flavour memfed|ai-memory-0.7] [--key-file PATH | --key BASE64]
                                         enrol a peer (key: raw 32-byte .pub file, or base64)
  pause   --id ID                        send nothing to it, pull nothing (its cursor holds)
  resume  --id ID                        deliver its backlog and pull from it at once
  remove  --id ID                        stop federating; its requests are refused (cursor and DLQ rows kept)
  update  --id ID [--url URL] [--flavour F]  change its URL or wire flavour (cursor and key kept)
  rekey   --id ID (--key-file PATH | --key BASE64 | --clear)
  purge   --id ID [--yes]                forget a removed peer's cursor and watermark`;

const PEER_COMMANDS = ['list', 'show', 'add', 'pause', 'resume', 'remove', 'update', 'rekey', 'purge'];


async function keyFrom(cmd: string, values: { 'key-file'?: string; key?: string }): Promise<Buffer | null> {
  if (values['key-file'] !== undefined && values.key !== undefined) throw new UsageError(`${cmd}: give --key-file or --key, not both`);
  if (values.key !== undefined) return parsePublicKey(values.key);
  if (values['key-file'] === undefined) return null;
  let bytes: Buffer;
  try {
    bytes = await readFile(values['key-file']);
  } catch (err) {
    throw new UsageError(`${cmd}: cannot read --key-file ${values['key-file']}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parsePublicKey(bytes);
}

const line = (p: PeerView) => `${p.id}\t${p.state}\t${p.flavour}\t${p.url}\tkey=${p.key_id ?? '-'}`;

/** `memfed peers ...`: the peer list straight on the node's database, as the admin API changes it. */
export async function peersCommand(config: Config, args: string[], out: (s: string) => void): Promise<number> {
  const [given, ...rest] = args;
  const sub = subcommand('peers', given, PEER_COMMANDS, 'peers');
  const cmd = `peers ${sub}`;
  const values = parseFlags(cmd, rest, {
    id: { type: 'string' },
    url: { type: 'string' },
    flavour: { type: 'string' },
    'key-file': { type: 'string' },
    key: { type: 'string' },
    clear: { type: 'boolean' },
    yes: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  // Every input is checked before the database is opened, by the admin API's rules.
  const allowed: Record<string, string[]> = {
    list: ['json'],
    show: ['id', 'json'],
    add: ['id', 'url', 'flavour', 'key-file', 'key', 'json'],
    pause: ['id', 'json'],
    resume: ['id', 'json'],
    remove: ['id', 'json'],
    update: ['id', 'url', 'flavour', 'json'],
    rekey: ['id', 'key-file', 'key', 'clear', 'json'],
    purge: ['id', 'yes', 'json'],
  };
  const stray = Object.keys(values).find((k) => allowed[sub]?.includes(k) !== true);
  if (stray !== undefined) throw new UsageError(`${cmd}: --${stray} does not apply here (memfed peers --help)`);
  let key: Buffer | null = null;
  let fields: Record<string, unknown> = {};
  try {
    if (sub !== 'list') {
      if (values.id === undefined) throw new UsageError(`${cmd}: --id is required`);
      checkPeerId(values.id);
    }
    if (sub === 'add' || sub === 'rekey') key = await keyFrom(cmd, values);
    if (sub === 'add') {
      fields = { id: values.id, url: values.url, ...(values.flavour !== undefined ? { flavour: values.flavour } : {}), ...(key ? { key: key.toString('base64') } : {}) };
      checkNewPeer(fields, config.nodeId);
    }
    if (sub === 'update') {
      fields = { ...(values.url !== undefined ? { url: values.url } : {}), ...(values.flavour !== undefined ? { flavour: values.flavour } : {}) };
      if (values.url === undefined && values.flavour === undefined) throw new UsageError(`${cmd}: needs --url and/or --flavour`);
      // The URL or flavour given, by the FED_PEERS rules (what is not given stays as stored).
      const r = peerSpecFrom({ id: values.id!, url: values.url ?? 'http://kept.invalid', ...(values.flavour !== undefined ? { flavour: values.flavour } : {}) });
      if (!r.ok) throw new UsageError(`${cmd}: INVALID_PEER: ${r.problem}`);
    }
    if (sub === 'rekey' && (key === null) === (values.clear !== true)) throw new UsageError(`${cmd}: needs one of --key-file, --key or --clear`);
  } catch (err) {
    throw asCliError(cmd, err);
  }

  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, { node: config.nodeId, role: 'cli' }, { secrets: configSecrets(config) });
  const database = createDatabase(config.databaseUrl, { max: 2 });
  const db = database.db;
  // No queue here: events go to the audit outbox, which the audit worker's drainer appends.
  const audit = tableRecorder((eventId, event) => insertOutbox(db, [{ eventId, event, reason: 'recorded by cli' }]).then(() => undefined), logger);
  const deps = { db, audit, nodeId: config.nodeId };
  const id = values.id!;
  const show = (v: unknown, text: string) => out(values.json ? JSON.stringify(v, null, 2) : text);
  try {
    switch (sub) {
      case 'list': {
        const peers = await listPeers(db);
        if (values.json) out(JSON.stringify(peers, null, 2));
        else for (const p of peers) out(line(p));
        return 0;
      }
      case 'show': {
        const p = await showPeer(db, id);
        show(p, `${line(p)}\tsource=${p.source}\tupdated=${p.updated_at}${p.public_key ? `\npublic key ${p.public_key}` : ''}`);
        return 0;
      }
      case 'add': {
        const p = await addPeer(deps, fields, 'cli');
        show(p, `added ${line(p)}`);
        return 0;
      }
      case 'pause':
      case 'resume':
      case 'remove': {
        const to = sub === 'pause' ? 'paused' : sub === 'resume' ? 'active' : 'removed';
        const r = await setPeerState(deps, id, to, 'cli');
        show(r, r.changed ? `${r.peer.id} is now ${r.peer.state}` : `${r.peer.id} was already ${r.peer.state}`);
        return 0;
      }
      case 'update': {
        const r = await updatePeer(deps, id, fields, 'cli');
        show(r, r.changed ? `updated ${line(r.peer)}` : `${r.peer.id}: unchanged`);
        return 0;
      }
      case 'rekey': {
        const r = await rekeyPeer(deps, id, key, 'cli');
        show(r, r.changed ? `${r.peer.id}: key ${r.peer.key_id ?? 'withdrawn (a key file in FED_KEY_DIR applies, if any)'}` : `${r.peer.id}: key unchanged`);
        return 0;
      }
      case 'purge': {
        const p = await showPeer(db, id);
        if (p.state !== 'removed') throw new ApiError(409, 'PEER_NOT_REMOVED', `peer ${id} is ${p.state}; remove it before purging its state`);
        if (!values.yes) {
          show({ dry_run: true, peer: p }, `would forget the cursor and watermark of removed peer ${id}; run again with --yes (DLQ rows: memfed dlq purge --peer ${id})`);
          return 0;
        }
        const r = await purgePeer(deps, id, 'cli');
        show({ purged: r }, `purged ${id}: cursor ${r.cursor ? 'deleted' : 'none'}, watermark ${r.watermark ? 'deleted' : 'none'}`);
        return 0;
      }
      default:
        throw new UsageError(`unreachable: ${cmd}`);
    }
  } catch (err) {
    throw asCliError(cmd, err);
  } finally {
    await audit.flush();
    await database.close();
  }
}

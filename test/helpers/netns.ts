import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';

/*
 * Real network partitions: each node in a network namespace of its own, linked by a veth
 * pair to a router namespace that forwards between them. A partition is a policy rule in
 * the router (`ip rule ... blackhole`): packets from one node to another are dropped
 * silently, as a dead link or firewall drops them (no RST, no ICMP), so TCP sees timeouts,
 * not refusals. One rule per direction, so a one-way partition is one rule.
 *
 *   node ns  eth0 10.A.(B+1+i).2/24 --- router ns r<i> 10.A.(B+1+i).1/24   (the mesh)
 *   node ns  svc  10.A.B.(10+i)/24  --- root ns bridge 10.A.B.1/24          (services)
 *
 * The services link carries only what the node needs from the root namespace: Postgres
 * and Redis, through TCP forwarders the test process runs on the bridge address (the
 * shared services listen on 127.0.0.1 and are never reconfigured), and the test's own
 * requests to the node. Partitions never touch it.
 *
 * What this kernel lacks (no sch_netem, no tc actions): latency and random loss; the fault
 * proxy (test/helpers/fault-proxy.ts) covers delays, resets and lost responses.
 *
 * Cleanup: every namespace and the bridge are removed by destroy(), at process exit, and,
 * for leftovers of a killed run, by the next run (a pid file per lab under STATE_DIR).
 */
const exec = promisify(execFile);
const STATE_DIR = '/tmp/memfed-netns';
const TAG = /^mf[0-9a-z]{5}$/;

async function ip(...args: string[]): Promise<void> {
  await exec('ip', args);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

function removeLabSync(tag: string): void {
  for (const ns of listNamespaces().filter((n) => n.startsWith(`${tag}-`))) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
  try {
    execFileSync('ip', ['link', 'del', `${tag}br`], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
  rmSync(`${STATE_DIR}/${tag}.pid`, { force: true });
}

function listNamespaces(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** Removes the namespaces of labs whose process is gone (a run killed before its cleanup). */
export function sweepStaleLabs(): void {
  let files: string[] = [];
  try {
    files = readdirSync(STATE_DIR);
  } catch {
    return;
  }
  for (const f of files) {
    const tag = f.replace(/\.pid$/, '');
    if (!TAG.test(tag)) continue;
    const pid = Number(readFileSync(`${STATE_DIR}/${f}`, 'utf8'));
    if (!alive(pid)) removeLabSync(tag);
  }
}

/**
 * Why namespaces cannot be used here, or null when they can: creates and deletes a probe
 * namespace with a veth pair (needs root or CAP_NET_ADMIN and the ip tool).
 */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  const probe = `mfprobe${process.pid % 100000}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
  } catch (err) {
    return `cannot create a network namespace (ip netns add: ${String((err as { stderr?: Buffer }).stderr ?? err).trim().split('\n')[0]}); run as root or with CAP_NET_ADMIN`;
  }
  try {
    execFileSync('ip', ['link', 'add', 'p0', 'netns', probe, 'type', 'veth', 'peer', 'name', 'p1', 'netns', probe], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `cannot create a veth pair (${String((err as { stderr?: Buffer }).stderr ?? err).trim().split('\n')[0]})`;
  } finally {
    try {
      execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
    } catch {
      /* gone */
    }
  }
}

/** A TCP forwarder on `host` (port chosen by the OS) to 127.0.0.1:`targetPort`. */
async function forwarder(host: string, targetPort: number): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const up = connect(targetPort, '127.0.0.1');
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        up.destroy();
      });
    }
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  server.unref();
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0, sockets };
}

export interface LabNode {
  name: string;
  /** The namespace the node's processes run in. */
  ns: string;
  /** The node's address on the mesh (what its peers dial, through the router). */
  meshIp: string;
  /** The node's address on the services link (what the test process dials). */
  svcIp: string;
}

export class NetnsLab {
  readonly nodes: LabNode[] = [];
  private readonly rules = new Map<string, number>();
  private nextPref = 100;
  private readonly forwarders: Array<Awaited<ReturnType<typeof forwarder>>> = [];
  private readonly onExit = () => removeLabSync(this.tag);
  private destroyed = false;

  private constructor(
    readonly tag: string,
    readonly net: string,
    private readonly octet: number,
  ) {}

  get router(): string {
    return `${this.tag}-rt`;
  }

  /** The root namespace's address on the services bridge (forwarders listen here). */
  get hostIp(): string {
    return `${this.net}.${this.octet}.1`;
  }

  /** Namespaces for `names` (at most 40), each linked to the router and the services bridge. */
  static async create(names: string[]): Promise<NetnsLab> {
    sweepStaleLabs();
    mkdirSync(STATE_DIR, { recursive: true });
    const tag = `mf${(process.pid % 36 ** 3).toString(36).padStart(3, '0')}${Math.floor(Math.random() * 36 ** 2).toString(36).padStart(2, '0')}`;
    const used = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' });
    let a = 0;
    let b = 0;
    for (let i = 0; i < 50; i++) {
      a = 200 + Math.floor(Math.random() * 50);
      b = Math.floor(Math.random() * 200);
      if (!used.includes(` 10.${a}.`)) break;
    }
    const lab = new NetnsLab(tag, `10.${a}`, b);
    writeFileSync(`${STATE_DIR}/${tag}.pid`, String(process.pid));
    process.once('exit', lab.onExit);
    try {
      await lab.build(names);
      return lab;
    } catch (err) {
      await lab.destroy();
      throw err;
    }
  }

  private async build(names: string[]): Promise<void> {
    const br = `${this.tag}br`;
    await ip('netns', 'add', this.router);
    await ip('-n', this.router, 'link', 'set', 'lo', 'up');
    await exec('ip', ['netns', 'exec', this.router, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
    await ip('link', 'add', br, 'type', 'bridge');
    await ip('addr', 'add', `${this.hostIp}/24`, 'dev', br);
    await ip('link', 'set', br, 'up');
    for (const [i, name] of names.entries()) {
      const ns = `${this.tag}-n${i}`;
      const sub = `${this.net}.${this.octet + 1 + i}`;
      const node: LabNode = { name, ns, meshIp: `${sub}.2`, svcIp: `${this.net}.${this.octet}.${10 + i}` };
      await ip('netns', 'add', ns);
      this.nodes.push(node);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('link', 'add', `r${i}`, 'netns', this.router, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await ip('-n', this.router, 'addr', 'add', `${sub}.1/24`, 'dev', `r${i}`);
      await ip('-n', this.router, 'link', 'set', `r${i}`, 'up');
      await ip('-n', ns, 'addr', 'add', `${sub}.2/24`, 'dev', 'eth0');
      await ip('-n', ns, 'link', 'set', 'eth0', 'up');
      await ip('-n', ns, 'route', 'add', 'default', 'via', `${sub}.1`);
      const host = `${this.tag}s${i}`;
      await ip('link', 'add', host, 'type', 'veth', 'peer', 'name', 'svc', 'netns', ns);
      await ip('link', 'set', host, 'master', br);
      await ip('link', 'set', host, 'up');
      await ip('-n', ns, 'addr', 'add', `${node.svcIp}/24`, 'dev', 'svc');
      await ip('-n', ns, 'link', 'set', 'svc', 'up');
    }
  }

  node(name: string): LabNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no lab node ${name}`);
    return n;
  }

  /** The command prefix that runs a program inside a node's namespace. */
  wrap(name: string): string[] {
    return ['ip', 'netns', 'exec', this.node(name).ns];
  }

  /**
   * A URL the nodes reach from inside their namespaces for a service on the root
   * namespace's 127.0.0.1 (Postgres, Redis): the host rewritten to a forwarder on the bridge.
   */
  async expose(url: string): Promise<string> {
    const u = new URL(url);
    const port = Number(u.port || (u.protocol.startsWith('postgres') ? 5432 : 6379));
    const f = await forwarder(this.hostIp, port);
    this.forwarders.push(f);
    u.hostname = this.hostIp;
    u.port = String(f.port);
    return u.toString();
  }

  /** Drops every packet `from` sends to `to` (silently, in the router); `to` still reaches `from`. */
  async partitionOneWay(from: string, to: string): Promise<void> {
    const key = `${from}->${to}`;
    if (this.rules.has(key)) return;
    const pref = this.nextPref++;
    await ip('-n', this.router, 'rule', 'add', 'from', this.node(from).meshIp, 'to', this.node(to).meshIp, 'blackhole', 'pref', String(pref));
    this.rules.set(key, pref);
  }

  /** Cuts `a` and `b` apart both ways. */
  async partition(a: string, b: string): Promise<void> {
    await this.partitionOneWay(a, b);
    await this.partitionOneWay(b, a);
  }

  /** Cuts `name` off from every other node, both ways. */
  async isolate(name: string): Promise<void> {
    for (const o of this.nodes) if (o.name !== name) await this.partition(name, o.name);
  }

  /** The directed links currently cut, as `from->to`. */
  cut(): string[] {
    return [...this.rules.keys()];
  }

  /** Removes every partition rule. */
  async heal(): Promise<void> {
    for (const [key, pref] of this.rules) {
      await ip('-n', this.router, 'rule', 'del', 'pref', String(pref));
      this.rules.delete(key);
    }
  }

  /**
   * Whether a TCP connection from inside `from`'s namespace to `to`'s mesh address and
   * `port` completes within `timeoutMs` (the proof a partition is real, and healed).
   */
  async canConnect(from: string, to: string, port: number, timeoutMs = 1500): Promise<boolean> {
    const script = `const s=require('net').connect(${port},'${this.node(to).meshIp}');s.setTimeout(${timeoutMs},()=>process.exit(2));s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1))`;
    try {
      await exec('ip', [...['netns', 'exec', this.node(from).ns], process.execPath, '-e', script]);
      return true;
    } catch {
      return false;
    }
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const f of this.forwarders) {
      for (const s of f.sockets) s.destroy();
      await new Promise((r) => f.server.close(r));
    }
    removeLabSync(this.tag);
    process.removeListener('exit', this.onExit);
  }
}

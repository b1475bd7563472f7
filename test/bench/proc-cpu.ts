import { readFile, readdir } from 'node:fs/promises';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux build we run on). */
const TICKS_PER_SEC = 100;

interface Stat {
  pid: number;
  ppid: number;
  /** utime + stime, in ticks. */
  ticks: number;
}

async function readStat(pid: number): Promise<Stat | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: fields count from after it.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { pid, ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return null;
  }
}

/**
 * CPU seconds (user + system) used so far by each root process and all its descendants
 * (a child that has exited and been waited for is counted in its parent's cstime, which
 * this leaves out: the bench's processes keep their helpers alive).
 */
export async function cpuSeconds(roots: number[]): Promise<Map<number, number>> {
  const stats = (await Promise.all((await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map((d) => readStat(Number(d))))).filter((s): s is Stat => s !== null);
  const children = new Map<number, Stat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const byPid = new Map(stats.map((s) => [s.pid, s]));
  const out = new Map<number, number>();
  for (const root of roots) {
    let ticks = 0;
    const todo = byPid.has(root) ? [byPid.get(root)!] : [];
    while (todo.length > 0) {
      const s = todo.pop()!;
      ticks += s.ticks;
      todo.push(...(children.get(s.pid) ?? []));
    }
    out.set(root, ticks / TICKS_PER_SEC);
  }
  return out;
}

/** Resident set size of a process in MB (VmRSS), NaN once it is gone. */
export async function rssMb(pid: number): Promise<number> {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}
